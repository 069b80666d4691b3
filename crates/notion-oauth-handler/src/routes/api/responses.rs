//! The error answers routes list in the OpenAPI document, as shared sets: a route names the sets
//! that apply to it instead of listing statuses one by one, and a test holds the sets to what the
//! error mapping can answer.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// Statuses and their descriptions; each answer's body is an `ErrorBody`.
type Table = &'static [(u16, &'static str)];

fn responses(table: Table) -> BTreeMap<String, RefOr<Response>> {
    table
        .iter()
        .map(|(status, description)| {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody")));
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", body.build())
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Every route behind an API key.
pub(super) struct Keyed;

impl Keyed {
    pub(super) const TABLE: Table =
        &[(401, "No valid API key"), (500, "Something failed on our side")];
}

impl IntoResponses for Keyed {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(Self::TABLE)
    }
}

/// Routes with a query string or a body to check.
pub(super) struct Invalid;

impl Invalid {
    pub(super) const TABLE: Table = &[(400, "The query or body is not valid")];
}

impl IntoResponses for Invalid {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(Self::TABLE)
    }
}

/// Routes on one connection that only read it.
pub(super) struct UnknownConnection;

impl UnknownConnection {
    pub(super) const TABLE: Table = &[(404, "No such connection")];
}

impl IntoResponses for UnknownConnection {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(Self::TABLE)
    }
}

/// Routes that go through the token lifecycle: every answer a lifecycle failure can become
/// (besides 500, in [`Keyed`]).
pub(super) struct LifecycleFailures;

impl LifecycleFailures {
    pub(super) const TABLE: Table = &[
        (404, "No such connection"),
        (409, "The user has to connect again: send them to connect_url"),
        (502, "Notion failed; the message says whether the stored pair is still usable"),
        (503, "Busy, or Notion asks to slow down: see Retry-After"),
        (504, "Notion did not answer in time"),
    ];
}

impl IntoResponses for LifecycleFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(Self::TABLE)
    }
}

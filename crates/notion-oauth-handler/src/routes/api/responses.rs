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

/// Declares a shared set: a type whose `IntoResponses` lists its table.
macro_rules! response_set {
    ($(#[$doc:meta])* $name:ident: [$(($status:literal, $description:literal)),+ $(,)?]) => {
        $(#[$doc])*
        pub(super) struct $name;

        impl $name {
            pub(super) const TABLE: Table = &[$(($status, $description)),+];
        }

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                responses(Self::TABLE)
            }
        }
    };
}

response_set! {
    /// Every route behind an API key.
    Keyed: [
        (401, "No valid API key"),
        (429, "Too many requests with a key that is not valid from this address: see Retry-After"),
        (500, "Something failed on our side"),
    ]
}

response_set! {
    /// Routes with a query string or a body to check.
    Invalid: [(400, "The query or body is not valid")]
}

response_set! {
    /// Routes with a body to read.
    SlowBody: [(408, "The body stopped coming for server.header_timeout_seconds")]
}

response_set! {
    /// Routes on one connection that only read it.
    UnknownConnection: [(404, "No such connection")]
}

response_set! {
    /// Routes that go through the token lifecycle: every answer a lifecycle failure can become
    /// (besides 500, in [`Keyed`]). Revoking never needs the user, so it never answers 409; it
    /// lists it with the others rather than keep a set of its own that could drift.
    LifecycleFailures: [
        (404, "No such connection"),
        (409, "The user has to connect again: send them to connect_url"),
        (502, "Notion failed; the message says whether the stored pair is still usable"),
        (503, "Busy, or Notion asks to slow down: see Retry-After"),
        (504, "Notion did not answer in time"),
    ]
}

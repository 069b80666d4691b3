//! The emulator's own control surface, under `/_mock/`: its settings, faults and what it
//! received, so that a test in any language can steer it over HTTP. Not part of Notion's API,
//! never recorded, never faulted or rate limited.
//!
//! - `GET /_mock/settings`, `PATCH /_mock/settings` (a [`Settings`] object, any subset)
//! - `PUT /_mock/faults/{endpoint}` (a fault, below), `DELETE /_mock/faults[/{endpoint}]`
//! - `GET /_mock/requests[?endpoint=token]`, `DELETE /_mock/requests`
//! - `POST /_mock/tokens/expire` `{"access_token": "…"}`: Notion no longer accepts it
//! - `POST /_mock/bots/{bot_id}/revoke`: the user removed the connection

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    Emulator, EmulatorConfig, Endpoint, ErrorShape, Fault, RateLimit, ReauthMode, Revocation,
    limits,
};

/// The most workspaces the consent page offers.
const MAX_WORKSPACES: usize = 50;

/// Every switchable behaviour, as the `mock-notion` configuration file, its flags and
/// `PATCH /_mock/settings` give them; an absent field is left as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Approve at once instead of showing the consent page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<bool>,
    /// The error body of `/v1/oauth/*`: `oauth` (RFC 6749, default) or `notion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_shape: Option<ErrorShape>,
    /// A repeated authorization gets a `fresh_pair` (default) or the `same_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reauth: Option<ReauthMode>,
    /// Revoking a token ends the `whole_pair` (default) or `only_that_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
    /// How long a code may be exchanged (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_ttl_seconds: Option<u64>,
    /// How long the previous access token still works after a refresh (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_token_grace_seconds: Option<u64>,
    /// On Cancel, send the app's `state` back (default) or an empty `state=` as Notion's
    /// documented example does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_state_on_deny: Option<bool>,
    /// Workspaces offered on the consent page; the first is the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<String>>,
    /// The API's rate limit; `requests_per_second = 0` turns it off (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Refuse an authorize URL without `owner=user` (default: accept it, see the README).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_owner: Option<bool>,
    /// Access tokens stop working this long after they were issued; 0 is never (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl_seconds: Option<u64>,
}

impl Settings {
    /// The keys a file or request may hold.
    pub const KEYS: &'static [&'static str] = &[
        "auto_approve",
        "error_shape",
        "reauth",
        "revocation",
        "code_ttl_seconds",
        "old_token_grace_seconds",
        "echo_state_on_deny",
        "workspaces",
        "rate_limit",
        "require_owner",
        "access_token_ttl_seconds",
    ];

    /// Every setting as `config` has it.
    pub fn of(config: &EmulatorConfig) -> Self {
        let off = RateLimit { requests_per_second: 0, burst: 0, per: crate::RateLimitScope::Token };
        Self {
            auto_approve: Some(config.auto_approve),
            error_shape: Some(config.error_shape),
            reauth: Some(config.reauth),
            revocation: Some(config.revocation),
            code_ttl_seconds: Some(config.code_ttl.as_secs()),
            old_token_grace_seconds: Some(config.old_token_grace.as_secs()),
            echo_state_on_deny: Some(config.echo_state_on_deny),
            workspaces: Some(config.workspaces.clone()),
            rate_limit: Some(config.rate_limit.unwrap_or(off)),
            require_owner: Some(config.require_owner),
            access_token_ttl_seconds: Some(config.access_token_ttl.map_or(0, |ttl| ttl.as_secs())),
        }
    }

    /// `self`, with what it leaves unset taken from `base`.
    #[must_use]
    pub fn or(self, base: Self) -> Self {
        Self {
            auto_approve: self.auto_approve.or(base.auto_approve),
            error_shape: self.error_shape.or(base.error_shape),
            reauth: self.reauth.or(base.reauth),
            revocation: self.revocation.or(base.revocation),
            code_ttl_seconds: self.code_ttl_seconds.or(base.code_ttl_seconds),
            old_token_grace_seconds: self.old_token_grace_seconds.or(base.old_token_grace_seconds),
            echo_state_on_deny: self.echo_state_on_deny.or(base.echo_state_on_deny),
            workspaces: self.workspaces.or(base.workspaces),
            rate_limit: self.rate_limit.or(base.rate_limit),
            require_owner: self.require_owner.or(base.require_owner),
            access_token_ttl_seconds: self
                .access_token_ttl_seconds
                .or(base.access_token_ttl_seconds),
        }
    }

    /// Writes the fields that are set into `config`, all or none.
    ///
    /// # Errors
    /// A value out of range, with the key and what is allowed.
    pub fn apply_to(&self, config: &mut EmulatorConfig) -> Result<(), String> {
        let mut next = config.clone();
        if let Some(on) = self.auto_approve {
            next.auto_approve = on;
        }
        if let Some(shape) = self.error_shape {
            next.error_shape = shape;
        }
        if let Some(reauth) = self.reauth {
            next.reauth = reauth;
        }
        if let Some(revocation) = self.revocation {
            next.revocation = revocation;
        }
        if let Some(seconds) = self.code_ttl_seconds {
            if !(1..=86_400).contains(&seconds) {
                return Err(format!("code_ttl_seconds: {seconds} is not between 1 and 86400"));
            }
            next.code_ttl = Duration::from_secs(seconds);
        }
        if let Some(seconds) = self.old_token_grace_seconds {
            if seconds > 86_400 {
                return Err(format!("old_token_grace_seconds: {seconds} is over 86400"));
            }
            next.old_token_grace = Duration::from_secs(seconds);
        }
        if let Some(echo) = self.echo_state_on_deny {
            next.echo_state_on_deny = echo;
        }
        if let Some(workspaces) = &self.workspaces {
            let bad = workspaces.iter().any(|w| {
                w.trim().is_empty() || w.chars().count() > 100 || w.chars().any(char::is_control)
            });
            let repeated = workspaces.iter().enumerate().any(|(i, w)| workspaces[..i].contains(w));
            if workspaces.is_empty() || workspaces.len() > MAX_WORKSPACES || bad || repeated {
                return Err(format!(
                    "workspaces: give 1 to {MAX_WORKSPACES} different names, each 1 to 100 characters"
                ));
            }
            next.workspaces.clone_from(workspaces);
        }
        if let Some(strict) = self.require_owner {
            next.require_owner = strict;
        }
        if let Some(seconds) = self.access_token_ttl_seconds {
            if seconds > 366 * 86_400 {
                return Err(format!(
                    "access_token_ttl_seconds: {seconds} is over a year (0 is never)"
                ));
            }
            next.access_token_ttl = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Some(limit) = self.rate_limit {
            if limit.requests_per_second > 10_000 || limit.burst > 10_000 {
                return Err(
                    "rate_limit: requests_per_second and burst are at most 10000".to_owned()
                );
            }
            // A burst of 0 would refuse everything: it is 1, and reported so.
            let limit = RateLimit { burst: limit.burst.max(1), ..limit };
            next.rate_limit = (limit.requests_per_second > 0).then_some(limit);
        }
        *config = next;
        Ok(())
    }
}

impl Emulator {
    /// Every setting as it is now.
    pub fn settings(&self) -> Settings {
        self.with(|s| Settings::of(&s.config))
    }

    /// Changes the settings that `settings` sets, at once for the following requests.
    ///
    /// # Errors
    /// A value out of range; nothing is changed then.
    pub fn apply(&self, settings: &Settings) -> Result<(), String> {
        self.with(|s| {
            settings.apply_to(&mut s.config)?;
            if settings.rate_limit.is_some() {
                s.limiter = s.config.rate_limit.and_then(limits::Limiter::new);
            }
            s.store.access_ttl = s.config.access_token_ttl;
            Ok(())
        })
    }
}

/// A fault as JSON: `{"kind": "error", "status": 500, "code": "internal_server_error",
/// "message": "…"}`, `{"kind": "non_json"}`, `{"kind": "missing_fields"}`,
/// `{"kind": "delay", "ms": 3000}`, `{"kind": "stall", "ms": 3000}`,
/// `{"kind": "rate_limited", "retry_after": 2}`, `{"kind": "overloaded", "retry_after": 2}`,
/// `{"kind": "drop"}`; each with optional `times` (default: until cleared) and `skip`. In
/// `mock-notion`'s file and flags it also names its `endpoint`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Which endpoint (`token`, `users_me`, …); the URL says it on `/_mock/faults/{endpoint}`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// error, non_json, missing_fields, delay, stall, rate_limited, overloaded or drop.
    pub kind: String,
    /// `error`: the HTTP status, 400–599.
    pub status: Option<u16>,
    /// `error`: Notion's error code.
    pub code: Option<String>,
    /// `error`: the message.
    pub message: Option<String>,
    /// `delay` and `stall`: milliseconds.
    pub ms: Option<u64>,
    /// `rate_limited` and `overloaded`: the Retry-After seconds (default 1).
    pub retry_after: Option<u64>,
    /// How many requests it hits (default: until cleared).
    pub times: Option<u32>,
    /// Requests let through first.
    #[serde(default)]
    pub skip: u32,
}

impl Emulator {
    /// Arms the fault `spec` on `endpoint` (by name).
    ///
    /// # Errors
    /// An unknown endpoint or fault, or values out of range: nothing is armed then.
    pub fn arm(&self, endpoint: &str, spec: &FaultSpec) -> Result<(), String> {
        let Some(target) = Endpoint::from_name(endpoint) else {
            return Err(format!(
                "`{endpoint}` is not an endpoint: authorize, token, introspect, revoke, users_me, search, pages, databases or data_sources"
            ));
        };
        let fault = spec.fault()?;
        self.with(|s| s.faults.set(target, fault, spec.times, spec.skip));
        Ok(())
    }
}

impl FaultSpec {
    fn fault(&self) -> Result<Fault, String> {
        let ms = || {
            self.ms
                .filter(|ms| *ms <= 600_000)
                .map(Duration::from_millis)
                .ok_or_else(|| format!("{}: give ms, at most 600000", self.kind))
        };
        let retry_after = self.retry_after.unwrap_or(1);
        if retry_after > 3600 {
            return Err(format!("{}: retry_after is at most 3600 seconds", self.kind));
        }
        Ok(match self.kind.as_str() {
            "error" => Fault::Error {
                status: self.status.filter(|s| (400..=599).contains(s)).ok_or(
                    "error: give status, an HTTP error status between 400 and 599".to_owned(),
                )?,
                code: self.code.clone().unwrap_or_else(|| "internal_server_error".to_owned()),
                message: self.message.clone().unwrap_or_else(|| "Injected fault.".to_owned()),
            },
            "non_json" => Fault::NonJson,
            "missing_fields" => Fault::MissingFields,
            "delay" => Fault::Delay(ms()?),
            "stall" => Fault::Stall(ms()?),
            "rate_limited" => Fault::RateLimited { retry_after },
            "overloaded" => Fault::Overloaded { retry_after },
            "drop" => Fault::Drop,
            other => {
                return Err(format!(
                    "`{other}` is not a fault: error, non_json, missing_fields, delay, stall, \
                     rate_limited, overloaded or drop"
                ));
            }
        })
    }
}

#[derive(Debug, Deserialize)]
struct EndpointQuery {
    endpoint: Option<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireRequest {
    access_token: String,
}

fn refused(message: impl Into<String>) -> Response {
    let body = json!({ "object": "error", "status": 400, "code": "validation_error", "message": message.into() });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(crate) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/settings", get(settings).patch(patch_settings))
        .route("/faults", axum::routing::delete(clear_faults))
        .route("/faults/{endpoint}", put(set_fault).delete(clear_fault))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/tokens/expire", post(expire))
        .route("/bots/{bot_id}/revoke", post(revoke_bot))
        .route("/icons/{name}", get(icon))
        // A mistyped control path is the test's mistake, never a call to Notion.
        .fallback(|| async {
            let body = json!({ "object": "error", "status": 404, "code": "object_not_found",
                "message": "No such /_mock/ path: see the README's emulator section." });
            (StatusCode::NOT_FOUND, Json(body))
        })
        .with_state(emulator)
}

async fn settings(State(emulator): State<Emulator>) -> Json<Settings> {
    Json(emulator.settings())
}

async fn patch_settings(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let settings: Settings = match serde_json::from_slice(&body) {
        Ok(settings) => settings,
        Err(error) => return refused(format!("not a settings object: {error}")),
    };
    match emulator.apply(&settings) {
        Ok(()) => Json(emulator.settings()).into_response(),
        Err(message) => refused(message),
    }
}

async fn set_fault(
    State(emulator): State<Emulator>,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => return refused(format!("not a fault: {error}")),
    };
    match emulator.arm(&endpoint, &spec) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => refused(message),
    }
}

async fn clear_fault(State(emulator): State<Emulator>, Path(endpoint): Path<String>) -> Response {
    let Some(endpoint) = Endpoint::from_name(&endpoint) else {
        return refused(format!("`{endpoint}` is not an endpoint"));
    };
    emulator.with(|s| s.faults.set(endpoint, Fault::NonJson, Some(0), 0));
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_faults();
    StatusCode::NO_CONTENT
}

async fn requests(
    State(emulator): State<Emulator>,
    Query(query): Query<EndpointQuery>,
) -> Json<Vec<crate::RecordedRequest>> {
    Json(match query.endpoint {
        Some(endpoint) => emulator.requests_to(endpoint),
        None => emulator.requests(),
    })
}

async fn clear_requests(State(emulator): State<Emulator>) -> StatusCode {
    emulator.with(|s| s.log.clear());
    StatusCode::NO_CONTENT
}

async fn expire(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<ExpireRequest>(&body) {
        Ok(request) => {
            emulator.expire_access_token(&request.access_token);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => refused(format!("give {{\"access_token\": \"…\"}}: {error}")),
    }
}

/// A workspace icon: its initial on Notion's blue, what `workspace_icon` points at.
async fn icon(Path(name): Path<String>) -> Response {
    let initial = name
        .strip_suffix(".svg")
        .and_then(|n| n.chars().next())
        .filter(char::is_ascii_alphanumeric)
        .unwrap_or('N');
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 48 48'><rect width='48' height='48' rx='8' fill='#2383e2'/>\
         <text x='24' y='32' font-family='sans-serif' font-size='24' fill='#fff' text-anchor='middle'>{initial}</text></svg>"
    );
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "max-age=86400"),
        ],
        svg,
    )
        .into_response()
}

async fn revoke_bot(State(emulator): State<Emulator>, Path(bot_id): Path<String>) -> StatusCode {
    emulator.revoke_all_for_bot(&bot_id);
    StatusCode::NO_CONTENT
}

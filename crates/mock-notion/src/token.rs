//! The back-channel endpoints `/v1/oauth/token`, `/introspect` and `/revoke` (§2–§4).

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::body::{self, Fields};
use crate::errors::ApiError;
use crate::middleware::RequestId;
use crate::store::{Identity, TokenPair};
use crate::{Emulator, Inner, credentials};

/// What introspection reports for every token: the connection's capabilities (§4.1).
const SCOPE: &str = "read_content insert_content update_content read_user_with_email";

fn invalid_code() -> ApiError {
    ApiError::invalid_grant("Invalid code: this code has been revoked.")
}

/// The §2.3 rule: `redirect_uri` is required if the authorize URL had it or several URIs are
/// registered, forbidden otherwise, and when present must equal the authorize value.
pub(crate) fn check_redirect_uri(
    sent_in_authorize: bool,
    authorize_uri: &str,
    registered: usize,
    in_body: Option<&str>,
) -> Result<(), ApiError> {
    let required = sent_in_authorize || registered > 1;
    match in_body {
        None if required => Err(ApiError::missing_field("redirect_uri")),
        None => Ok(()),
        // Notion says "not allowed" here without documenting the error; this wording is UNCONFIRMED.
        Some(uri) if !required => Err(ApiError::invalid_request(format!(
            "body failed validation: body.redirect_uri should be not present, instead was `{uri}`."
        ))),
        Some(uri) if uri == authorize_uri => Ok(()),
        // RFC 6749 §5.2 makes a mismatch `invalid_grant`; Notion's wording is UNCONFIRMED.
        Some(_) => Err(ApiError::invalid_grant(
            "Invalid redirect_uri: it does not match the redirect_uri of the authorization request.",
        )),
    }
}

/// The §2.4 success body; refreshes reuse it with the same bot, workspace and owner.
///
/// Typed rather than a `json!` tree: building, writing and dropping the tree of maps was half of
/// the emulator's work per exchange, which a benchmark's every callback pays. It is written
/// through [`TokenJson`], whose fields are in alphabetical order, as the tree (a sorted map)
/// wrote them, so the bytes are the same.
pub(crate) struct TokenBody<'r> {
    identity: Identity,
    pair: TokenPair,
    duplicated_template_id: Option<Uuid>,
    request_id: &'r str,
}

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    bot_id: Uuid,
    duplicated_template_id: Option<Uuid>,
    owner: Owner<'a>,
    refresh_token: &'a str,
    request_id: &'a str,
    token_type: &'static str,
    workspace_icon: Option<&'a str>,
    workspace_id: Uuid,
    workspace_name: &'a str,
}

impl Serialize for TokenBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let identity = &self.identity;
        TokenJson {
            access_token: &self.pair.access_token,
            bot_id: identity.bot_id,
            duplicated_template_id: self.duplicated_template_id,
            owner: Owner::of(identity),
            refresh_token: &self.pair.refresh_token,
            request_id: self.request_id,
            token_type: "bearer",
            workspace_icon: identity.workspace_icon.as_deref(),
            workspace_id: identity.workspace_id,
            workspace_name: &identity.workspace_name,
        }
        .serialize(serializer)
    }
}

fn token_body(
    identity: Identity,
    pair: TokenPair,
    duplicated_template_id: Option<Uuid>,
    request_id: &str,
) -> TokenBody<'_> {
    TokenBody { identity, pair, duplicated_template_id, request_id }
}

/// The authorizing person (or, for a legacy install, the workspace), keys in alphabetical order.
#[derive(Serialize)]
#[serde(untagged)]
enum Owner<'a> {
    Workspace {
        #[serde(rename = "type")]
        kind: &'static str,
        workspace: bool,
    },
    User {
        #[serde(rename = "type")]
        kind: &'static str,
        user: Person<'a>,
    },
}

#[derive(Serialize)]
struct Person<'a> {
    avatar_url: Option<&'a str>,
    id: Uuid,
    name: &'a str,
    object: &'static str,
    person: Email<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `{"email": …}`, or `{}` for a person whose email the integration may not read.
#[derive(Serialize)]
struct Email<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

impl<'a> Owner<'a> {
    fn of(identity: &'a Identity) -> Self {
        if identity.workspace_owned {
            return Self::Workspace { kind: "workspace", workspace: true };
        }
        Self::User {
            kind: "user",
            user: Person {
                avatar_url: None,
                id: identity.user_id,
                name: &identity.user_name,
                object: "user",
                person: Email { email: identity.email.as_deref() },
                kind: "person",
            },
        }
    }
}

/// Real Notion answers a URL or null (§2.4). The emulator answers a URL it serves itself (at the
/// address the client reached it by, so it loads offline), or null for a workspace without an
/// icon.
fn workspace_icon(origin: Option<&str>, workspace_name: &str, has_icon: bool) -> Option<String> {
    let origin = origin.filter(|_| has_icon)?;
    let initial: String = workspace_name
        .chars()
        .find(|c| c.is_ascii_alphanumeric())
        .map_or_else(|| "N".to_owned(), |c| c.to_ascii_uppercase().to_string());
    Some(format!("{origin}/_mock/icons/{initial}.svg"))
}

/// The authorizing person, as in the token response and under `bot.owner` of `/v1/users/me`.
pub(crate) fn owner_json(identity: &Identity) -> Value {
    serde_json::to_value(Owner::of(identity)).unwrap_or(Value::Null)
}

fn exchange_code<'r>(
    s: &mut Inner,
    fields: &Fields,
    request_id: &'r str,
    origin: Option<&str>,
) -> Result<TokenBody<'r>, ApiError> {
    let code = fields.required_str("code")?;
    let redirect_uri = fields.str("redirect_uri")?;
    let grant = s
        .store
        .code(code, Instant::now())
        .filter(|g| g.client_id == s.config.client_id)
        .ok_or_else(invalid_code)?;
    check_redirect_uri(
        grant.redirect_uri_sent,
        &grant.redirect_uri,
        s.config.redirect_uris.len(),
        redirect_uri,
    )?;
    // Used up only on success, so a client can fix a bad redirect_uri and retry within the TTL.
    s.store.consume_code(code);
    let mut identity = if grant.pinned {
        Identity::new(&grant.client_id, &grant.user_name, &grant.workspace_name)
    } else {
        Identity::unpinned(&grant.client_id, &grant.user_name, &grant.workspace_name)
    };
    if !grant.email {
        identity.email = None;
    }
    identity.workspace_owned = grant.workspace_owned;
    let has_icon = s.content.has_icon(&grant.workspace_name);
    identity.workspace_icon = workspace_icon(origin, &grant.workspace_name, has_icon);
    let mut shared = grant.shared;
    // The copy of the template is a real page, shared with the bot like the picked ones.
    let template = grant.template.then(|| s.content.duplicate_template(&grant.workspace_name));
    shared.extend(template);
    let pair = s.store.authorize(identity.clone(), s.config.reauth, shared);
    Ok(token_body(identity, pair, template, request_id))
}

/// Bench mode's exchange: any non-empty code stands for its own install (see
/// [`crate::EmulatorConfig::bench`]); nothing about it was issued, so nothing is checked.
fn exchange_bench_code<'r>(
    s: &mut Inner,
    fields: &Fields,
    request_id: &'r str,
) -> Result<TokenBody<'r>, ApiError> {
    let code = fields.required_str("code")?;
    if code.is_empty() {
        return Err(invalid_code());
    }
    let identity = Identity::for_bench_code(&s.config.client_id, code);
    let pair = s.store.authorize_bench(identity.clone());
    Ok(token_body(identity, pair, None, request_id))
}

fn refresh<'r>(
    s: &mut Inner,
    fields: &Fields,
    request_id: &'r str,
) -> Result<TokenBody<'r>, ApiError> {
    let token = fields.required_str("refresh_token")?;
    let grace = s.config.old_token_grace;
    let (identity, pair) = s
        .store
        .refresh(token, grace)
        .ok_or_else(|| ApiError::invalid_grant("Invalid refresh token"))?;
    // The template was duplicated at authorization; a refresh creates nothing new.
    Ok(token_body(identity, pair, None, request_id))
}

fn grant_type_error(got: Option<&str>) -> ApiError {
    let got = got.map_or_else(|| "`undefined`".to_owned(), |g| format!("\"{g}\""));
    ApiError::invalid_request(format!(
        "body.grant_type should be \"authorization_code\" or \"refresh_token\", instead was {got}."
    ))
}

impl Emulator {
    /// HTTP Basic with the current secret, checked before the body so a rotated secret always reads
    /// as `invalid_client` (§7 pitfall 8).
    fn check_client(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let (id, secret) = credentials::basic(headers).ok_or_else(ApiError::invalid_client)?;
        let ok = self.with(|s| id == s.config.client_id && secret == s.config.client_secret);
        if ok { Ok(()) } else { Err(ApiError::invalid_client()) }
    }

    /// Runs a back-channel handler and renders its error in the configured shape.
    fn oauth_json<T: Serialize>(
        &self,
        request_id: &str,
        headers: &HeaderMap,
        body: &[u8],
        handle: impl FnOnce(&mut Inner, &Fields) -> Result<T, ApiError>,
    ) -> Response {
        let result = self.check_client(headers).and_then(|()| {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let fields = body::parse(content_type, body)?;
            // One lock for look-up and update, so two exchanges of one code cannot both win.
            self.with(|s| handle(s, &fields))
        });
        let mut response = match result {
            Ok(value) => (StatusCode::OK, Json(value)).into_response(),
            Err(error) => {
                let shape = self.with(|s| s.config.error_shape);
                error.into_response(shape, request_id)
            }
        };
        // RFC 6749 §5.1: token answers must not be cached.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        response
    }
}

pub(crate) async fn token(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Notion-Version is deliberately not required here: many working clients omit it (§2.3).
    let origin = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .map(|host| format!("http://{host}"));
    emulator.oauth_json(&request_id, &headers, &body, |s, fields| {
        match fields.str("grant_type")? {
            Some("authorization_code") if s.config.bench => {
                exchange_bench_code(s, fields, &request_id)
            }
            Some("authorization_code") => exchange_code(s, fields, &request_id, origin.as_deref()),
            Some("refresh_token") => refresh(s, fields, &request_id),
            other => Err(grant_type_error(other)),
        }
    })
}

pub(crate) async fn introspect(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    emulator.oauth_json(&request_id, &headers, &body, |s, fields| {
        let token = fields.required_str("token")?;
        // Refresh tokens and dead tokens read as inactive, as RFC 7662 does; Notion's body is UNCONFIRMED.
        Ok(match s.store.access_token_iat(token) {
            Some(iat) => {
                json!({ "active": true, "scope": SCOPE, "iat": iat, "request_id": request_id })
            }
            None => json!({ "active": false, "request_id": request_id }),
        })
    })
}

pub(crate) async fn revoke(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    emulator.oauth_json(&request_id, &headers, &body, |s, fields| {
        let token = fields.required_str("token")?;
        // Unknown or already revoked tokens also get 200 (idempotent, like RFC 7009); Notion's
        // behaviour for them, and whether the refresh token dies too, is UNCONFIRMED (§4.2).
        // A refresh token is taken as RFC 7009 allows.
        let revocation = s.config.revocation;
        s.store.revoke_token(token, revocation);
        Ok(json!({ "request_id": request_id }))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::random;

    const URI: &str = "http://localhost/cb";

    fn code_of(result: Result<(), ApiError>) -> Option<String> {
        result.err().map(|e| e.code)
    }

    #[test]
    fn redirect_uri_required_when_sent_in_authorize() {
        assert_eq!(code_of(check_redirect_uri(true, URI, 1, Some(URI))), None);
        let missing = check_redirect_uri(true, URI, 1, None).unwrap_err();
        assert_eq!(missing.code, "invalid_request");
        assert_eq!(
            missing.message,
            "body failed validation: body.redirect_uri should be defined, instead was `undefined`."
        );
        assert_eq!(
            code_of(check_redirect_uri(true, URI, 1, Some("http://localhost/other"))).as_deref(),
            Some("invalid_grant")
        );
    }

    #[test]
    fn redirect_uri_required_when_several_registered() {
        assert_eq!(
            code_of(check_redirect_uri(false, URI, 2, None)).as_deref(),
            Some("invalid_request")
        );
        assert_eq!(code_of(check_redirect_uri(false, URI, 2, Some(URI))), None);
    }

    #[test]
    fn redirect_uri_forbidden_when_one_registered_and_omitted() {
        assert_eq!(code_of(check_redirect_uri(false, URI, 1, None)), None);
        assert_eq!(
            code_of(check_redirect_uri(false, URI, 1, Some(URI))).as_deref(),
            Some("invalid_request")
        );
    }

    #[test]
    fn grant_type_messages() {
        assert_eq!(
            grant_type_error(Some("client_credentials")).message,
            "body.grant_type should be \"authorization_code\" or \"refresh_token\", instead was \"client_credentials\"."
        );
        assert!(grant_type_error(None).message.ends_with("instead was `undefined`."));
    }

    #[test]
    fn token_body_has_every_required_key() {
        let identity = Identity::new("cid", "Ada Lovelace", "Acme Corp");
        let pair = TokenPair {
            access_token: random::access_token(),
            refresh_token: random::refresh_token(),
        };
        let body = serde_json::to_value(token_body(identity, pair, None, "rid")).unwrap();
        for key in [
            "access_token",
            "token_type",
            "refresh_token",
            "bot_id",
            "workspace_icon",
            "workspace_name",
            "workspace_id",
            "owner",
            "duplicated_template_id",
            "request_id",
        ] {
            assert!(body.get(key).is_some(), "{key}");
        }
        assert!(body.get("expires_in").is_none());
        assert_eq!(body["owner"]["user"]["person"]["email"], "ada.lovelace@example.com");
        assert!(body["duplicated_template_id"].is_null());
    }

    /// The typed body writes the bytes the `json!` tree (a sorted map) wrote before it.
    #[test]
    fn token_body_is_written_as_the_sorted_tree_was() {
        let mut identities = vec![Identity::new("cid", "Ada Lovelace", "Acme Corp")];
        let mut no_email = Identity::new("cid", "Bo", "Beta");
        no_email.email = None;
        no_email.workspace_icon = Some("http://127.0.0.1:1/_mock/icons/B.svg".to_owned());
        let mut workspace = Identity::new("cid", "Cy", "Gamma");
        workspace.workspace_owned = true;
        identities.extend([no_email, workspace]);
        for identity in identities {
            let pair = TokenPair {
                access_token: random::access_token(),
                refresh_token: random::refresh_token(),
            };
            let template = Some(Uuid::nil());
            let owner = if identity.workspace_owned {
                json!({ "type": "workspace", "workspace": true })
            } else {
                let person = match &identity.email {
                    Some(email) => json!({ "email": email }),
                    None => json!({}),
                };
                json!({ "type": "user", "user": {
                    "object": "user", "id": identity.user_id, "name": identity.user_name,
                    "avatar_url": null, "type": "person", "person": person,
                } })
            };
            let tree = json!({
                "access_token": pair.access_token,
                "token_type": "bearer",
                "refresh_token": pair.refresh_token,
                "bot_id": identity.bot_id,
                "workspace_id": identity.workspace_id,
                "workspace_name": identity.workspace_name,
                "workspace_icon": identity.workspace_icon,
                "owner": owner,
                "duplicated_template_id": template,
                "request_id": "rid",
            });
            let typed =
                serde_json::to_string(&token_body(identity, pair, template, "rid")).unwrap();
            assert_eq!(typed, serde_json::to_string(&tree).unwrap());
        }
    }
}

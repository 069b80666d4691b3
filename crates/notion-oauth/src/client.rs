//! The HTTP client for Notion's OAuth endpoints.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::error::{BuildError, NotionError, parse_error_body};
use crate::secret::{AccessToken, AuthorizationCode, ClientId, ClientSecret, RefreshToken};
use crate::types::{Introspection, Revocation, SharedObject, TokenResponse};

/// Where Notion's API lives.
pub const DEFAULT_API_BASE_URL: &str = "https://api.notion.com";
/// The `Notion-Version` sent when none is configured: the latest documented version.
pub const DEFAULT_NOTION_VERSION: &str = "2026-03-11";

/// Notion's answers are small JSON documents; anything bigger is not one of them.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// How to reach Notion and who the integration is.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The integration's client id.
    pub client_id: ClientId,
    /// The integration's client secret.
    pub client_secret: ClientSecret,
    /// `https://api.notion.com`, or an emulator's address in development and tests.
    pub api_base_url: Url,
    /// The `Notion-Version` header to send.
    pub notion_version: String,
    /// Upper bound for a whole call, connection included.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A configuration with the default `Notion-Version` and a 10 s timeout. `api_base_url` is
    /// [`DEFAULT_API_BASE_URL`] in production.
    pub fn new(client_id: ClientId, client_secret: ClientSecret, api_base_url: Url) -> Self {
        Self {
            client_id,
            client_secret,
            api_base_url,
            notion_version: DEFAULT_NOTION_VERSION.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Calls Notion's OAuth endpoints for one integration. Cheap to clone: the connection pool is
/// shared.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    http: reqwest::Client,
    config: ClientConfig,
    authorize: Url,
    token: Url,
    introspect: Url,
    revoke: Url,
    search: Url,
    /// `Authorization: Basic …` for the integration's own calls, made once: reqwest's
    /// `basic_auth` formatted and encoded the credentials again on every code exchange. Marked
    /// sensitive, so `Debug` shows no credential.
    integration_auth: HeaderValue,
}

/// How a call proves who it is: the integration (its OAuth endpoints) or one connection (the
/// rest of the API).
enum Credentials<'a> {
    Integration,
    Connection(&'a AccessToken),
}

impl OAuthClient {
    /// Builds the client and its connection pool.
    ///
    /// It follows no redirects (a token endpoint that redirects is misconfigured or hostile, and
    /// following it would resend credentials) and gives up on any call after `config.timeout`.
    ///
    /// # Errors
    /// When the base URL cannot take paths or the TLS stack cannot start.
    pub fn new(config: ClientConfig) -> Result<Self, BuildError> {
        // reqwest is built without a default crypto provider so that only ring is compiled in;
        // installing it twice is harmless, and a provider the application chose wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = |path: &str| {
            let mut base = config.api_base_url.clone();
            if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
                return Err(BuildError::BaseUrl(config.api_base_url.to_string()));
            }
            let prefix = base.path().trim_end_matches('/').to_owned();
            base.set_path(&format!("{prefix}{path}"));
            base.set_query(None);
            Ok(base)
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("notion-oauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self {
            authorize: endpoint("/v1/oauth/authorize")?,
            token: endpoint("/v1/oauth/token")?,
            introspect: endpoint("/v1/oauth/introspect")?,
            revoke: endpoint("/v1/oauth/revoke")?,
            search: endpoint("/v1/search")?,
            integration_auth: basic_authorization(&config)?,
            http,
            config,
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The URL to send the user's browser to: `{api_base_url}/v1/oauth/authorize` with
    /// `client_id`, `response_type=code`, `owner=user`, `redirect_uri` and `state`.
    ///
    /// Pass the same `redirect_uri` to [`OAuthClient::exchange_code`]: Notion requires the two
    /// to match once the authorize URL names one.
    pub fn authorize_url(&self, redirect_uri: &Url, state: Option<&str>) -> Url {
        let mut url = self.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", self.config.client_id.as_str())
                .append_pair("response_type", "code")
                .append_pair("owner", "user")
                .append_pair("redirect_uri", redirect_uri.as_str());
            if let Some(state) = state {
                query.append_pair("state", state);
            }
        }
        url
    }

    /// Exchanges the code from the callback for the connection's tokens. Never retry this call:
    /// a code works once, and a second try after a lost answer gets `invalid_grant`.
    ///
    /// # Errors
    /// [`NotionError`]; `invalid_grant` means the code was used, expired or revoked.
    #[tracing::instrument(name = "notion.exchange_code", skip_all, err(level = "debug", Display))]
    pub async fn exchange_code(
        &self,
        code: AuthorizationCode,
        redirect_uri: Option<&Url>,
    ) -> Result<TokenResponse, NotionError> {
        let mut body = json!({ "grant_type": "authorization_code", "code": code.expose_secret() });
        if let Some(uri) = redirect_uri {
            body["redirect_uri"] = Value::String(uri.to_string());
        }
        let response: TokenResponse =
            self.post(&self.token, Credentials::Integration, &body).await?;
        check_token_response(response)
    }

    /// Exchanges a refresh token for a new pair. Notion rotates the pair: once this succeeds the
    /// old refresh token is dead, so store the new one before anything else.
    ///
    /// # Errors
    /// [`NotionError`]; `invalid_grant` means the refresh token is dead (rotated away, revoked,
    /// or the user removed the connection) and the user has to authorize again.
    #[tracing::instrument(name = "notion.refresh", skip_all, err(level = "debug", Display))]
    pub async fn refresh(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<TokenResponse, NotionError> {
        let body = json!({ "grant_type": "refresh_token", "refresh_token": refresh_token.expose_secret() });
        let response: TokenResponse =
            self.post(&self.token, Credentials::Integration, &body).await?;
        check_token_response(response)
    }

    /// Asks Notion whether an access token still works.
    ///
    /// # Errors
    /// [`NotionError`].
    #[tracing::instrument(name = "notion.introspect", skip_all, err(level = "debug", Display))]
    pub async fn introspect(&self, token: &AccessToken) -> Result<Introspection, NotionError> {
        self.post(
            &self.introspect,
            Credentials::Integration,
            &json!({ "token": token.expose_secret() }),
        )
        .await
    }

    /// Revokes an access token at Notion.
    ///
    /// # Errors
    /// [`NotionError`].
    #[tracing::instrument(name = "notion.revoke", skip_all, err(level = "debug", Display))]
    pub async fn revoke(&self, token: &AccessToken) -> Result<Revocation, NotionError> {
        self.post(
            &self.revoke,
            Credentials::Integration,
            &json!({ "token": token.expose_secret() }),
        )
        .await
    }

    /// Revokes a refresh token at Notion, as RFC 7009 lets a revocation endpoint take either
    /// token. Notion documents only the access token here, and whether revoking that one ends
    /// its refresh token too is UNCONFIRMED: revoking both is the way to be sure, and a refusal
    /// of this call means there was nothing left to revoke.
    ///
    /// # Errors
    /// [`NotionError`].
    #[tracing::instrument(
        name = "notion.revoke_refresh_token",
        skip_all,
        err(level = "debug", Display)
    )]
    pub async fn revoke_refresh_token(
        &self,
        token: &RefreshToken,
    ) -> Result<Revocation, NotionError> {
        self.post(
            &self.revoke,
            Credentials::Integration,
            &json!({ "token": token.expose_secret() }),
        )
        .await
    }

    /// Up to `limit` (1 to 100) of the pages, databases and data sources the user shared with a
    /// connection, most recently edited first: what a page can show right after the user
    /// picked them. Notion's search is eventually consistent, so something picked a moment ago
    /// may be missing; objects that do not read as one of these are left out rather than
    /// failing the call.
    ///
    /// # Errors
    /// [`NotionError`]; `unauthorized` means the token no longer works.
    #[tracing::instrument(name = "notion.search", skip_all, err(level = "debug", Display))]
    pub async fn shared_objects(
        &self,
        token: &AccessToken,
        limit: u8,
    ) -> Result<Vec<SharedObject>, NotionError> {
        let body = json!({
            "page_size": limit.clamp(1, 100),
            "sort": { "direction": "descending", "timestamp": "last_edited_time" },
        });
        let found: Value = self.post(&self.search, Credentials::Connection(token), &body).await?;
        let results = found.get("results").and_then(Value::as_array).map(Vec::as_slice);
        Ok(results.unwrap_or_default().iter().filter_map(SharedObject::read).collect())
    }

    async fn post<T: DeserializeOwned>(
        &self,
        url: &Url,
        credentials: Credentials<'_>,
        body: &Value,
    ) -> Result<T, NotionError> {
        let request = self.http.post(url.clone());
        let request = match credentials {
            Credentials::Integration => {
                request.header(AUTHORIZATION, self.integration_auth.clone())
            }
            Credentials::Connection(token) => request.bearer_auth(token.expose_secret()),
        };
        let result =
            request.header("Notion-Version", &self.config.notion_version).json(body).send().await;
        let mut response = result.map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let request_id = header_text(response.headers(), "x-notion-request-id");
        let retry_after = header_text(response.headers(), RETRY_AFTER.as_str())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|error| self.transport_error(error))?
        {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(NotionError::InvalidResponse {
                    status,
                    reason: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                    request_id,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        tracing::debug!(status, request_id = request_id.as_deref(), "Notion answered");
        if !(200..300).contains(&status) {
            return Err(match parse_error_body(status, &bytes, request_id.clone(), retry_after) {
                Some(api) => NotionError::Api(api),
                None => NotionError::UnexpectedStatus { status, request_id },
            });
        }
        serde_json::from_slice(&bytes).map_err(|error| NotionError::InvalidResponse {
            status,
            reason: describe_json_error(&error),
            request_id,
        })
    }

    fn transport_error(&self, error: reqwest::Error) -> NotionError {
        if error.is_timeout() {
            NotionError::Timeout(self.config.timeout)
        } else {
            NotionError::Network(error.without_url())
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|text| text.chars().take(100).collect())
}

/// serde_json's messages quote the offending value ("invalid type: string \"ntn_…\""), which
/// could be a token; keep only the kind of problem and, for missing fields, the field's name.
fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if let Some((field, _)) =
        text.strip_prefix("missing field `").and_then(|rest| rest.split_once('`'))
    {
        return format!("the required field `{field}` is missing");
    }
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            "the body is not JSON".to_owned()
        }
        serde_json::error::Category::Data => "a field has an unexpected type or value".to_owned(),
        serde_json::error::Category::Io => "the body could not be read".to_owned(),
    }
}

/// Refuses answers that parse but cannot be stored safely: empty tokens or ids, or ids that are
/// not plain text (they end up in URLs, pages and database keys).
fn check_token_response(mut response: TokenResponse) -> Result<TokenResponse, NotionError> {
    response.request_id = response.request_id.map(|id| crate::error::sanitize(&id, 100));
    let invalid = |reason: &str| NotionError::InvalidResponse {
        status: 200,
        reason: reason.to_owned(),
        request_id: response.request_id.clone(),
    };
    let plain_id = |id: &str| {
        !id.is_empty()
            && id.len() <= 100
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if response.access_token.expose_secret().trim().is_empty() {
        return Err(invalid("the access token is empty"));
    }
    if !plain_id(response.bot_id.as_str()) {
        return Err(invalid("bot_id is not a Notion id"));
    }
    if !plain_id(response.workspace_id.as_str()) {
        return Err(invalid("workspace_id is not a Notion id"));
    }
    if !response.token_type.eq_ignore_ascii_case("bearer") {
        return Err(invalid("token_type is not bearer"));
    }
    Ok(response)
}

/// HTTP Basic credentials (RFC 7617) of the integration, as its OAuth endpoints take them.
fn basic_authorization(config: &ClientConfig) -> Result<HeaderValue, BuildError> {
    let pair = secrecy::zeroize::Zeroizing::new(format!(
        "{}:{}",
        config.client_id.as_str(),
        config.client_secret.expose_secret()
    ));
    let mut line = String::with_capacity(6 + 4 * pair.len().div_ceil(3));
    line.push_str("Basic ");
    STANDARD.encode_string(pair.as_bytes(), &mut line);
    // `Basic ` and base64 are always a valid header value: this error is not expected.
    let mut value = HeaderValue::try_from(line).map_err(|_| BuildError::Credentials)?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn client(base: &str) -> OAuthClient {
        let config = ClientConfig::new(
            ClientId::new("client-1"),
            ClientSecret::new("s3cret"),
            Url::parse(base).unwrap(),
        );
        OAuthClient::new(config).unwrap()
    }

    #[test]
    fn the_authorize_url_carries_every_documented_parameter_encoded() {
        let redirect = Url::parse("https://app.example.com/notion/callback?x=1").unwrap();
        let url = client("https://api.notion.com").authorize_url(&redirect, Some("st.ate"));
        assert_eq!(url.path(), "/v1/oauth/authorize");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("client_id", "client-1"),
                ("response_type", "code"),
                ("owner", "user"),
                ("redirect_uri", "https://app.example.com/notion/callback?x=1"),
                ("state", "st.ate"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(url.as_str().contains("redirect_uri=https%3A%2F%2Fapp.example.com"));
    }

    #[test]
    fn a_base_url_with_a_path_keeps_it() {
        let url = client("http://127.0.0.1:9/mock/")
            .authorize_url(&Url::parse("http://localhost/cb").unwrap(), None);
        assert_eq!(url.path(), "/mock/v1/oauth/authorize");
        assert!(url.query_pairs().all(|(k, _)| k != "state"));
    }

    #[test]
    fn the_integration_signs_in_with_basic_credentials_that_debug_never_shows() {
        let client = client("https://api.notion.com");
        // RFC 7617: base64 of `id:secret`.
        assert_eq!(client.integration_auth, "Basic Y2xpZW50LTE6czNjcmV0");
        assert!(client.integration_auth.is_sensitive());
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("Y2xpZW50LTE6czNjcmV0"), "{shown}");
    }

    #[test]
    fn json_errors_are_described_without_quoting_values() {
        let error =
            serde_json::from_str::<TokenResponse>(r#"{"access_token": 12345678}"#).unwrap_err();
        let described = describe_json_error(&error);
        assert!(!described.contains("12345678"), "{described}");
        let missing = serde_json::from_str::<TokenResponse>(r#"{"access_token":"a"}"#).unwrap_err();
        assert!(describe_json_error(&missing).contains("is missing"));
    }
}

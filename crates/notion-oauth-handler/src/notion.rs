//! Notion's OAuth endpoints as this server calls them: the library's client, with each call
//! counted and timed for the metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use notion_oauth::{
    AccessToken, AuthorizationCode, Introspection, NotionError, OAuthClient, RefreshToken,
    Revocation, SharedObject, TokenResponse,
};

use crate::metrics::{Metrics, NotionEndpoint, NotionOutcome};

/// The Notion client the services share.
#[derive(Clone)]
pub(crate) struct Notion {
    client: OAuthClient,
    metrics: Arc<Metrics>,
}

impl Notion {
    pub(crate) fn new(client: OAuthClient, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics }
    }

    /// See [`OAuthClient::authorize_url`] (no call: the browser goes there).
    pub(crate) fn authorize_url(&self, redirect_uri: &url::Url, state: Option<&str>) -> url::Url {
        self.client.authorize_url(redirect_uri, state)
    }

    async fn observed<T>(
        &self,
        endpoint: NotionEndpoint,
        call: impl Future<Output = Result<T, NotionError>>,
    ) -> Result<T, NotionError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.notion_call(endpoint, NotionOutcome::of(&result), started.elapsed());
        result
    }

    /// See [`OAuthClient::exchange_code`].
    pub(crate) async fn exchange_code(
        &self,
        code: AuthorizationCode,
        redirect_uri: Option<&url::Url>,
    ) -> Result<TokenResponse, NotionError> {
        self.observed(NotionEndpoint::Token, self.client.exchange_code(code, redirect_uri)).await
    }

    /// See [`OAuthClient::refresh`].
    pub(crate) async fn refresh(&self, token: &RefreshToken) -> Result<TokenResponse, NotionError> {
        self.observed(NotionEndpoint::Refresh, self.client.refresh(token)).await
    }

    /// See [`OAuthClient::introspect`].
    pub(crate) async fn introspect(
        &self,
        token: &AccessToken,
    ) -> Result<Introspection, NotionError> {
        self.observed(NotionEndpoint::Introspect, self.client.introspect(token)).await
    }

    /// See [`OAuthClient::revoke`].
    pub(crate) async fn revoke(&self, token: &AccessToken) -> Result<Revocation, NotionError> {
        self.observed(NotionEndpoint::Revoke, self.client.revoke(token)).await
    }

    /// See [`OAuthClient::revoke_refresh_token`].
    pub(crate) async fn revoke_refresh_token(
        &self,
        token: &RefreshToken,
    ) -> Result<Revocation, NotionError> {
        self.observed(NotionEndpoint::Revoke, self.client.revoke_refresh_token(token)).await
    }

    /// See [`OAuthClient::shared_objects`].
    pub(crate) async fn shared_objects(
        &self,
        token: &AccessToken,
        limit: u8,
    ) -> Result<Vec<SharedObject>, NotionError> {
        self.observed(NotionEndpoint::Search, self.client.shared_objects(token, limit)).await
    }
}

//! The "Add to Notion" flow itself: start it, then finish it when Notion sends the browser back.
//!
//! The order in [`Flow::finish`] is what makes it safe: parameters are checked before the state,
//! the state before Notion is called, and the state's nonce is recorded as used *before* the
//! code is exchanged, so a replayed or double-submitted callback never reaches Notion a second
//! time.
//!
//! The browser's binding cookie arrives here as a value only: how it travels (its name and
//! attributes) is the routes' business.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use notion_oauth::{
    AuthorizationCode, NotionError, SharedObject, StateClaims, StateError, StateSigner,
    TokenResponse,
};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Config;
use crate::crypto::{decode_hex, hex, hmac_sha256};
use crate::domain::{
    BotId, ConnectionStatus, InvalidReference, RefSource, Reference, Upserted, WorkspaceId,
};
use crate::notion::Notion;
use crate::store::{SealedGrant, Store, StoreError};
use crate::telemetry::Chain;
use crate::vault::Vault;

/// Callback parameters we know, with the longest value accepted for each. Notion documents
/// `code`, `state` and `error`; the others are standard OAuth names it may add.
const CALLBACK_PARAMS: [(&str, usize); 6] = [
    ("code", 512),
    ("state", notion_oauth::MAX_STATE_LEN),
    ("error", 64),
    ("error_description", 1024),
    ("error_uri", 1024),
    ("iss", 512),
];
const MAX_QUERY_BYTES: usize = 8192;

/// Everything that can stop a flow, each with its own page and status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    #[error("the callback's query string is longer than {MAX_QUERY_BYTES} bytes")]
    QueryTooLong,
    #[error("the parameter `{0}` appears more than once")]
    RepeatedParameter(String),
    #[error("the parameter `{0}` is not one Notion sends")]
    UnexpectedParameter(String),
    #[error("the parameter `{0}` is too long")]
    ParameterTooLong(String),
    #[error("the callback carries both a code and an error")]
    CodeAndError,
    #[error("the callback carries neither a code nor an error")]
    MissingCode,
    #[error(
        "the callback carries a code but no state, and Notion-initiated installs are not allowed"
    )]
    MissingState,
    #[error("the state was refused: {0}")]
    BadState(StateError),
    #[error("the state belongs to another browser, or the browser sent no cookie")]
    OtherBrowser,
    #[error("the state was used before")]
    Replayed,
    #[error(transparent)]
    BadRef(#[from] InvalidReference),
    #[error("return_to is not at one of connect.return_to_origins")]
    ReturnToNotAllowed,
    #[error(
        "the link carries a ref or return_to without a signature, and connect.require_signed_ref is on"
    )]
    UnsignedLink,
    #[error("the link's signature does not match, or the link is malformed")]
    InvalidLink,
    #[error("the signed link has expired")]
    ExpiredLink,
    #[error("the one-time link is unknown, used or expired")]
    UsedLink,
    #[error("the link's ref and return_to together are too long to carry through Notion")]
    LinkTooLong,
    #[error("Notion reported `{0}` on the callback")]
    NotionReported(String),
    /// An error other than a cancel, without a state of this server's and this browser's:
    /// anyone can type that URL, so it is not taken as Notion's word.
    #[error("the callback reports an error but carries no state this browser was given")]
    UnknownFlow,
    #[error("the code exchange failed: {0}")]
    Exchange(#[source] NotionError),
    #[error("storing the connection failed: {0}")]
    Store(#[from] StoreError),
    #[error("the operating system gave no randomness: {0}")]
    Randomness(#[source] getrandom::Error),
}

impl FlowError {
    /// Notion's request id, when Notion caused the failure.
    pub(crate) fn request_id(&self) -> Option<&str> {
        match self {
            FlowError::Exchange(error) => error.request_id(),
            _ => None,
        }
    }

    /// Whether the cause is on our side or Notion's (logged louder) rather than the visitor's.
    pub(crate) fn is_server_side(&self) -> bool {
        matches!(self, FlowError::Store(_) | FlowError::Randomness(_))
            || matches!(self, FlowError::Exchange(e) if !e.is_invalid_grant())
    }
}

/// What a link to `/connect` asks for, once trusted: the app's `ref` and where to return.
#[derive(Debug, Default)]
pub(crate) struct ConnectRequest {
    pub(crate) reference: Option<Reference>,
    /// Whether the link that carried `reference` was the app's own.
    pub(crate) source: RefSource,
    /// Checked against the allowed origins already.
    pub(crate) return_to: Option<String>,
    /// Until when the app's signed or one-time link worked, when one started the flow.
    pub(crate) link_expires: Option<i64>,
}

/// A connection the user approved, stored: what the page and the app are told (never tokens).
pub(crate) struct Connected {
    pub(crate) bot_id: BotId,
    pub(crate) workspace_id: WorkspaceId,
    pub(crate) workspace_name: Option<String>,
    pub(crate) workspace_icon: Option<String>,
    /// The page duplicated from the integration's template, if the user ticked that box.
    pub(crate) template_id: Option<String>,
    pub(crate) outcome: Upserted,
    pub(crate) reference: Option<String>,
    pub(crate) return_to: Option<String>,
    /// Some of what the user shared, for the success page; empty when Notion did not say in
    /// time, or nobody will see the page.
    pub(crate) shared: Vec<SharedObject>,
    /// Set in the browser that finished the flow, so that it alone may see the success page
    /// again (see [`Flow::finished_proof`]). `None` for an install started from Notion.
    pub(crate) proof: Option<String>,
}

/// How a flow was started, from a state this browser was given: enough to start it again with
/// the same `ref` and `return_to`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restart {
    pub(crate) reference: Option<String>,
    pub(crate) return_to: Option<String>,
    pub(crate) source: RefSource,
    /// Until when the app's link that started the flow worked: links to start it again keep
    /// to it.
    pub(crate) link_expires: Option<i64>,
}

impl Restart {
    fn of(claims: &StateClaims) -> Self {
        Self {
            reference: claims.reference.clone(),
            return_to: claims.return_to.clone(),
            source: if claims.ref_signed { RefSource::Vouched } else { RefSource::Plain },
            link_expires: claims.link_expires.and_then(|at| i64::try_from(at).ok()),
        }
    }
}

/// What a finished callback did.
pub(crate) enum Finished {
    Connected(Connected),
    /// The browser that finished this flow brought its callback back (a reload, or Back then
    /// Allow on Notion's page): the connection stored then, with nothing new stored or asked.
    Reloaded(Connected),
    Denied(Restart),
    /// A cancelled flow's callback again (a reload), or one whose state has expired: its page
    /// again, reported once only.
    DeniedAgain(Restart),
}

/// A flow that could not go on.
pub(crate) struct Refused {
    pub(crate) error: FlowError,
    /// Present when the state was this browser's own: the page's "Start again" keeps the flow's
    /// `ref` and `return_to`. Absent when it may be anyone's (no state, a forged or foreign
    /// one): a link's `ref` is not handed to another browser.
    pub(crate) restart: Option<Restart>,
}

impl<E: Into<FlowError>> From<E> for Refused {
    fn from(error: E) -> Self {
        Self { error: error.into(), restart: None }
    }
}

/// The browser's cookies a callback reads, as values.
#[derive(Default, Clone, Copy)]
pub(crate) struct BrowserCookies<'a> {
    /// The binding cookie set by `/connect`.
    pub(crate) binding: Option<&'a str>,
    /// The proof of the last flow this browser finished ([`Connected::proof`]).
    pub(crate) finished: Option<&'a str>,
}

/// A state verified and recorded as used: the first time, or again.
enum Consumed {
    First(StateClaims),
    Again(StateClaims),
}

/// How much of what was shared the success page lists, and how long Notion gets to say: the
/// page waits for it, and a slow answer costs only the list.
const SHARED_LIMIT: u8 = 12;
const SHARED_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// A started flow: where to send the browser, and the binding cookie's value to set.
pub(crate) struct Started {
    pub(crate) authorize_url: String,
    pub(crate) browser_cookie: String,
}

/// Starts flows and finishes them: signs states, exchanges codes, stores connections.
pub(crate) struct Flow {
    client: Notion,
    signer: StateSigner,
    /// Signers of the previous master keys, for states issued before a rotation.
    previous_signers: Vec<StateSigner>,
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    redirect_uri: Url,
    /// The authorize URL without its state: the same for every flow, so built once (encoding
    /// its query took a tenth of `/connect`).
    authorize_base: String,
    allow_notion_initiated: bool,
    /// Whether the success page lists what was shared (`pages.show_shared`, and no
    /// `connect.success_redirect` sending every browser elsewhere).
    list_shared: bool,
}

/// The callback's parameters, checked for shape only.
#[derive(Default)]
pub(crate) struct CallbackParams {
    code: Option<AuthorizationCode>,
    state: Option<String>,
    error: Option<String>,
}

impl CallbackParams {
    /// Parses a raw query string strictly: each known parameter at most once and within its
    /// length, nothing unknown.
    ///
    /// # Errors
    /// The first problem found.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, FlowError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY_BYTES {
            return Err(FlowError::QueryTooLong);
        }
        let mut params = CallbackParams::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some((known, max_len)) = CALLBACK_PARAMS.iter().find(|(known, _)| *known == name)
            else {
                return Err(FlowError::UnexpectedParameter(printable(&name)));
            };
            if seen.iter().any(|s| s == known) {
                return Err(FlowError::RepeatedParameter((*known).to_owned()));
            }
            seen.push((*known).to_owned());
            if value.len() > *max_len {
                return Err(FlowError::ParameterTooLong((*known).to_owned()));
            }
            match *known {
                "code" => {
                    params.code = Some(AuthorizationCode::new(value.into_owned()))
                        .filter(|c| !c.expose_secret().is_empty())
                }
                "state" => params.state = Some(value.into_owned()).filter(|s| !s.is_empty()),
                "error" => params.error = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(params)
    }
}

impl Flow {
    /// A flow calling Notion with `client`, storing into `store` with tokens sealed by `vault`
    /// (whose state key also signs states). `list_shared` is false when the success page is not
    /// ours to show (an embedding app's view shows its own), so nobody waits for the list.
    pub(crate) fn new(
        config: &Config,
        client: Notion,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        list_shared: bool,
    ) -> Self {
        let redirect_uri = config.redirect_uri();
        Self {
            signer: StateSigner::new(vault.state_key(), config.state_ttl),
            previous_signers: vault
                .previous_state_keys()
                .map(|key| StateSigner::new(key, config.state_ttl))
                .collect(),
            authorize_base: client.authorize_url(&redirect_uri, None).into(),
            client,
            store,
            vault,
            redirect_uri,
            allow_notion_initiated: config.allow_notion_initiated,
            list_shared: list_shared
                && config.show_shared
                && config.connect.success_redirect.is_none(),
        }
    }

    /// Makes a state for a new flow and the authorize URL that carries it. The browser keeps its
    /// binding cookie if it has a well-formed one, so several tabs can each run a flow.
    ///
    /// # Errors
    /// No randomness, or a state too long for the callback to accept.
    #[tracing::instrument(name = "flow.start", level = "debug", skip_all)]
    pub(crate) fn start(
        &self,
        existing_cookie: Option<&str>,
        request: ConnectRequest,
    ) -> Result<Started, FlowError> {
        let browser_cookie = match existing_cookie.filter(|c| is_cookie_value(c)) {
            Some(cookie) => cookie.to_owned(),
            None => {
                let mut bytes = [0u8; 32];
                notion_oauth::random::fill(&mut bytes).map_err(FlowError::Randomness)?;
                URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        let reference = request.reference.map(Reference::into_string);
        let mut claims = StateClaims::new(Some(browser_digest(&browser_cookie)), reference)
            .map_err(FlowError::Randomness)?;
        claims.return_to = request.return_to;
        claims.ref_signed = request.source == RefSource::Vouched;
        claims.link_expires = request.link_expires.and_then(|at| u64::try_from(at).ok());
        let state = self.signer.sign(&claims);
        // A state the callback would refuse as too long would lose a connection the user
        // approved.
        if state.len() > notion_oauth::MAX_STATE_LEN {
            return Err(FlowError::LinkTooLong);
        }
        Ok(Started { authorize_url: with_state(&self.authorize_base, &state), browser_cookie })
    }

    /// Finishes a flow from the callback's parameters and the browser's cookies.
    ///
    /// # Errors
    /// See [`FlowError`]; nothing is stored unless Notion granted a connection.
    #[tracing::instrument(name = "flow.finish", level = "debug", skip_all)]
    pub(crate) async fn finish(
        &self,
        params: CallbackParams,
        cookies: BrowserCookies<'_>,
    ) -> Result<Finished, Refused> {
        if let Some(error) = params.error {
            return self
                .refused(&error, params.code.is_some(), params.state, cookies.binding)
                .await;
        }
        let code = params.code.ok_or(FlowError::MissingCode)?;
        let claims = match &params.state {
            Some(state) => match self.accept_state(state, cookies.binding).await? {
                Consumed::First(claims) => Some(claims),
                Consumed::Again(claims) => return self.again(claims, cookies.finished).await,
            },
            None if self.allow_notion_initiated => None,
            None => return Err(FlowError::MissingState.into()),
        };
        let restart = claims.as_ref().map(Restart::of);
        let refused = |error: FlowError| Refused { error, restart: restart.clone() };
        let response = if claims.is_some() {
            self.client.exchange_code(code, Some(&self.redirect_uri)).await
        } else {
            self.exchange_notion_initiated(code).await
        };
        let response = response.map_err(|error| refused(FlowError::Exchange(error)))?;
        let grant = SealedGrant::seal(&self.vault, &response).map_err(|e| refused(e.into()))?;
        let (reference, return_to) =
            claims.as_ref().map_or((None, None), |c| (c.reference.clone(), c.return_to.clone()));
        let outcome = self
            .store
            .upsert_connection(&grant, reference.as_deref())
            .await
            .map_err(|e| refused(e.into()))?;
        tracing::info!(
            bot_id = %response.bot_id,
            workspace_id = %response.workspace_id,
            outcome = %outcome,
            request_id = response.request_id.as_deref(),
            "connection stored"
        );
        // Only after the write committed: the list is for the page, never a reason to fail.
        let shared = if self.list_shared && return_to.is_none() {
            self.shared_objects(&response.access_token).await
        } else {
            Vec::new()
        };
        let proof =
            claims.map(|claims| self.finished_proof(&claims.nonce, &response.bot_id, outcome));
        let TokenResponse {
            bot_id,
            workspace_id,
            workspace_name,
            workspace_icon,
            duplicated_template_id,
            ..
        } = response;
        Ok(Finished::Connected(Connected {
            bot_id,
            workspace_id,
            workspace_name,
            workspace_icon,
            template_id: duplicated_template_id,
            outcome,
            reference,
            return_to,
            shared,
            proof,
        }))
    }

    /// Some of what the user shared, if Notion says within [`SHARED_TIMEOUT`]; else nothing.
    async fn shared_objects(&self, token: &notion_oauth::AccessToken) -> Vec<SharedObject> {
        let search = self.client.shared_objects(token, SHARED_LIMIT);
        match tokio::time::timeout(SHARED_TIMEOUT, search).await {
            Ok(Ok(shared)) => shared,
            Ok(Err(error)) => {
                tracing::info!(error = %Chain(&error), "Notion did not list the shared pages; the success page goes without");
                Vec::new()
            }
            Err(_) => {
                tracing::info!(
                    "Notion took longer than {SHARED_TIMEOUT:?} to list the shared pages; the success page goes without"
                );
                Vec::new()
            }
        }
    }

    /// A callback whose state was used before. From the browser that finished that flow (it
    /// holds the proof), the success page again, from what was stored; from anywhere else, a
    /// replay.
    async fn again(&self, claims: StateClaims, proof: Option<&str>) -> Result<Finished, Refused> {
        let restart = Restart::of(&claims);
        let replayed =
            |restart: Restart| Refused { error: FlowError::Replayed, restart: Some(restart) };
        let Some((bot_id, outcome)) = proof.and_then(|proof| self.proven(proof, &claims.nonce))
        else {
            return Err(replayed(restart));
        };
        let connection = match self.store.connection(&bot_id).await {
            // Removed or revoked since, or connected again under another `ref`: this flow no
            // longer says what the connection is.
            Ok(Some(connection))
                if connection.status == ConnectionStatus::Active
                    && (claims.reference.is_none() || connection.reference == claims.reference) =>
            {
                connection
            }
            Ok(_) => return Err(replayed(restart)),
            Err(error) => return Err(Refused { error: error.into(), restart: Some(restart) }),
        };
        tracing::debug!(bot_id = %bot_id, "a finished flow's callback came back; showing its success page again");
        Ok(Finished::Reloaded(Connected {
            bot_id: connection.bot_id,
            workspace_id: connection.workspace_id,
            workspace_name: connection.workspace_name,
            workspace_icon: connection.workspace_icon,
            template_id: connection.duplicated_template_id,
            outcome,
            reference: claims.reference,
            return_to: claims.return_to,
            shared: Vec::new(),
            proof: None,
        }))
    }

    /// What the browser that finished the flow with `nonce` keeps: the bot it connected, what
    /// the flow did (the page said so then, and says the same again), and a MAC over them and
    /// the nonce under the state key, so no other value (or browser) can claim a flow.
    fn finished_proof(&self, nonce: &str, bot_id: &BotId, outcome: Upserted) -> String {
        let outcome = outcome.as_str();
        let mac = finished_mac(self.vault.state_key(), nonce, bot_id.as_str(), outcome);
        format!("{}.{outcome}.{}", bot_id.as_str(), hex(&mac.finalize().into_bytes()))
    }

    /// The bot and outcome a proof names, if it is this server's proof for the flow with
    /// `nonce`.
    fn proven(&self, proof: &str, nonce: &str) -> Option<(BotId, Upserted)> {
        let (rest, mac) = proof.rsplit_once('.')?;
        let (bot, outcome) = rest.rsplit_once('.')?;
        let mac = decode_hex(mac, 32)?;
        finished_mac(self.vault.state_key(), nonce, bot, outcome).verify_slice(&mac).ok()?;
        let outcome = match outcome {
            "created" => Upserted::Created,
            "reauthorized" => Upserted::Reauthorized,
            _ => return None,
        };
        Some((BotId::new(bot), outcome))
    }

    /// A callback carrying `error`: the user cancelled (`access_denied`), or Notion failed.
    async fn refused(
        &self,
        error: &str,
        with_code: bool,
        state: Option<String>,
        browser_cookie: Option<&str>,
    ) -> Result<Finished, Refused> {
        if with_code {
            return Err(FlowError::CodeAndError.into());
        }
        // Notion's own example sends `state=` empty on cancel, so a missing state is normal
        // here; a valid one is consumed so its link cannot be reused, and gives back the ref.
        // The state, if it is this browser's: its first use (`first`), or a later one (a reload,
        // Back then Cancel again, an expired flow), which still offers to start it again.
        let (first, restart) = match &state {
            Some(state) => match self.accept_state(state, browser_cookie).await {
                Ok(Consumed::First(claims)) => (true, Some(Restart::of(&claims))),
                Ok(Consumed::Again(claims)) => (false, Some(Restart::of(&claims))),
                Err(refused) => (false, refused.restart),
            },
            None => (false, None),
        };
        if error != "access_denied" {
            if !first {
                return Err(Refused { error: FlowError::UnknownFlow, restart });
            }
            let code = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            return Err(Refused { error: FlowError::NotionReported(code), restart });
        }
        // Only a flow we started is reported (and logged at info, as a flow's end), and only
        // once: anyone can request this URL, and a browser can come back to it.
        match (first, restart) {
            (true, Some(restart)) => {
                self.store.record_denied(restart.reference.as_deref(), restart.source).await?;
                tracing::info!("the user did not grant access");
                Ok(Finished::Denied(restart))
            }
            (false, Some(restart)) => Ok(Finished::DeniedAgain(restart)),
            (_, None) => {
                tracing::debug!("a denial with no state of ours");
                Ok(Finished::Denied(Restart::default()))
            }
        }
    }

    /// An install started from Notion comes from an authorize URL we did not build, so whether
    /// Notion expects `redirect_uri` in the exchange is unknown (it is required when the
    /// authorize URL had one, refused when it had none and one URI is registered). Send it; if
    /// Notion refuses the request's shape over `redirect_uri`, try once without. A request that
    /// fails validation does not spend the code, so this is not the retry of an exchange that
    /// must never be repeated.
    async fn exchange_notion_initiated(
        &self,
        code: AuthorizationCode,
    ) -> Result<TokenResponse, NotionError> {
        let again = AuthorizationCode::new(code.expose_secret());
        match self.client.exchange_code(code, Some(&self.redirect_uri)).await {
            Err(NotionError::Api(error))
                if error.code == "invalid_request" && error.message.contains("redirect_uri") =>
            {
                tracing::info!(
                    "Notion wants no redirect_uri for this install; exchanging without it"
                );
                self.client.exchange_code(again, None).await
            }
            other => other,
        }
    }

    /// Verifies a state's signature, age and browser, then records it as used.
    async fn accept_state(
        &self,
        state: &str,
        browser_cookie: Option<&str>,
    ) -> Result<Consumed, Refused> {
        let now = SystemTime::now();
        let bound = |claims: &StateClaims| {
            browser_cookie.is_some_and(|cookie| claims.is_bound_to(&browser_digest(cookie)))
        };
        let claims = match self.verify(state, now) {
            Ok(claims) => claims,
            Err(error @ StateError::Expired(_)) => {
                // An expired flow of this browser's may start again as it was started.
                let restart = self.verify_ignoring_age(state).ok().filter(bound);
                let restart = restart.as_ref().map(Restart::of);
                return Err(Refused { error: FlowError::BadState(error), restart });
            }
            Err(error) => return Err(FlowError::BadState(error).into()),
        };
        if !bound(&claims) {
            return Err(FlowError::OtherBrowser.into());
        }
        // Keep the nonce a little past the state's own expiry, after which the state is refused
        // as expired anyway.
        let keep_until =
            claims.issued_at.saturating_add(self.signer.max_age().as_secs()).saturating_add(60);
        let keep_until = i64::try_from(keep_until).unwrap_or(i64::MAX);
        if self.store.consume_state(&claims.nonce, keep_until).await? {
            Ok(Consumed::First(claims))
        } else {
            Ok(Consumed::Again(claims))
        }
    }

    /// A state's claims if one of our signers, current or before a rotation, signed it and it
    /// is valid at `now`.
    fn verify(&self, state: &str, now: SystemTime) -> Result<StateClaims, StateError> {
        self.with_signers(|signer| signer.verify(state, now))
    }

    /// Like [`Flow::verify`], at any age.
    fn verify_ignoring_age(&self, state: &str) -> Result<StateClaims, StateError> {
        self.with_signers(|signer| signer.verify_ignoring_age(state))
    }

    /// `verify` with the current signer, else the first previous one whose signature matches.
    fn with_signers(
        &self,
        verify: impl Fn(&StateSigner) -> Result<StateClaims, StateError>,
    ) -> Result<StateClaims, StateError> {
        match verify(&self.signer) {
            Err(StateError::BadSignature) => self
                .previous_signers
                .iter()
                .find_map(|signer| match verify(signer) {
                    Err(StateError::BadSignature) => None,
                    verified => Some(verified),
                })
                .unwrap_or(Err(StateError::BadSignature)),
            verified => verified,
        }
    }
}

/// The MAC of a finished-flow proof. The state key with its own prefix: a state's signed
/// payload is JSON, so it never starts with this text.
fn finished_mac(key: &[u8], nonce: &str, bot_id: &str, outcome: &str) -> hmac::Hmac<sha2::Sha256> {
    let parts: [&[u8]; 6] = [
        b"noh finished flow\n",
        nonce.as_bytes(),
        b"\n",
        bot_id.as_bytes(),
        b"\n",
        outcome.as_bytes(),
    ];
    hmac_sha256(key, &parts)
}

/// An authorize URL without a state, given one (as the client's `authorize_url` would).
fn with_state(authorize_base: &str, state: &str) -> String {
    let mut url = String::with_capacity(authorize_base.len() + 7 + state.len());
    url.push_str(authorize_base);
    url.push_str("&state=");
    // A signed state is base64url and dots, none of which form encoding changes: copied as it
    // is (the encoder's walk was 4 % of `/connect`'s CPU).
    if state.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        url.push_str(state);
    } else {
        url.extend(url::form_urlencoded::byte_serialize(state.as_bytes()));
    }
    url
}

/// What the state carries in place of the cookie itself: a digest, so the state (which travels
/// through Notion and browser history) does not reveal the cookie.
fn browser_digest(cookie: &str) -> String {
    URL_SAFE_NO_PAD
        .encode(Sha256::new_with_prefix(b"noh browser binding\0").chain_update(cookie).finalize())
}

fn is_cookie_value(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A parameter name fit for a page and a log line.
fn printable(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_graphic()).take(40).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(query: &str) -> Result<CallbackParams, FlowError> {
        CallbackParams::parse(Some(query))
    }

    #[test]
    fn the_authorize_url_built_once_and_given_a_state_is_the_clients() {
        use notion_oauth::{ClientConfig, ClientId, ClientSecret, OAuthClient};
        let base = Url::parse("http://127.0.0.1:9/notion").unwrap();
        let config = ClientConfig::new(
            ClientId::new("client"),
            ClientSecret::new("secret".to_owned()),
            base,
        );
        let client = OAuthClient::new(config).unwrap();
        let redirect = Url::parse("https://app.example/callback?x=1&y=a b").unwrap();
        let base: String = client.authorize_url(&redirect, None).into();
        for state in ["eyJub25jZSI6IngifQ.c2ln-_", "odd &=+/?#é"] {
            assert_eq!(
                with_state(&base, state),
                client.authorize_url(&redirect, Some(state)).as_str(),
                "{state}"
            );
        }
    }

    #[test]
    fn repeated_unknown_and_long_parameters_are_refused() {
        assert!(
            matches!(parse("code=a&code=b&state=s"), Err(FlowError::RepeatedParameter(p)) if p == "code")
        );
        assert!(
            matches!(parse("code=a&state=s&evil=1"), Err(FlowError::UnexpectedParameter(p)) if p == "evil")
        );
        let long = format!("code={}&state=s", "a".repeat(600));
        assert!(matches!(parse(&long), Err(FlowError::ParameterTooLong(p)) if p == "code"));
        assert!(matches!(parse(&"x".repeat(9000)), Err(FlowError::QueryTooLong)));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let params = parse("error=access_denied&state=").unwrap();
        assert!(params.state.is_none());
        assert_eq!(params.error.as_deref(), Some("access_denied"));
        assert!(parse("code=&state=x").unwrap().code.is_none());
    }

    #[test]
    fn browser_digests_hide_the_cookie_and_differ_per_browser() {
        let (a, b) = ("a".repeat(43), "b".repeat(43));
        assert!(!browser_digest(&a).contains(&a));
        assert_ne!(browser_digest(&a), browser_digest(&b));
        assert!(
            is_cookie_value(&a) && !is_cookie_value("short") && !is_cookie_value(&"é".repeat(22))
        );
    }
}

//! Notion's OAuth for public connections, as a small typed client.
//!
//! Everything a program needs to let a user "Add to Notion" and keep the resulting connection
//! alive, without a web framework or a database:
//!
//! - [`OAuthClient::authorize_url`] builds the URL the browser is sent to;
//! - [`StateSigner`] makes and checks the signed, expiring `state` that ties the callback to the
//!   browser that started the flow (single use is the caller's job: record each nonce once);
//! - [`OAuthClient::exchange_code`], [`OAuthClient::refresh`], [`OAuthClient::introspect`] and
//!   [`OAuthClient::revoke`] call Notion's token endpoints with HTTP Basic client authentication, a
//!   JSON body and a `Notion-Version` header, as Notion documents them;
//! - [`TokenResponse`] keeps every field of Notion's answer, including ones this crate does not
//!   know yet, and [`NotionError`] reads both error shapes Notion is known to send.
//!
//! Secrets ([`ClientSecret`], [`AuthorizationCode`], [`AccessToken`], [`RefreshToken`]) are
//! wrapped so that `Debug` output, logs and panics never show them; read one with
//! `expose_secret()` only where it must leave the process.
#![warn(missing_docs)]

mod client;
mod error;
pub mod random;
mod secret;
mod state;
mod types;

pub use client::{ClientConfig, DEFAULT_API_BASE_URL, DEFAULT_NOTION_VERSION, OAuthClient};
pub use error::{BuildError, NotionApiError, NotionError};
pub use secret::{AccessToken, AuthorizationCode, ClientId, ClientSecret, RefreshToken};
pub use state::{MAX_STATE_LEN, StateClaims, StateError, StateSigner};
pub use types::{
    BotId, Icon, Introspection, Owner, Person, Revocation, SharedKind, SharedObject, TokenResponse,
    User, WorkspaceId,
};

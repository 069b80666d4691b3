//! Newtypes for the values that must never be printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Deserialize)]
        #[serde(transparent)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a value received from Notion, a user or a configuration file.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The value itself.
            ///
            /// # Security
            /// Leaking this value may let someone act as the connection or the integration:
            /// call it only where the value must leave the process (an HTTP request, an
            /// encryption routine), never to print or log it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// The integration's OAuth client secret, from Notion's Developer portal.
    #[derive(Clone)]
    ClientSecret
);
secret_type!(
    /// The temporary code Notion puts on the redirect URI. It is exchanged once, so it is not
    /// `Clone`: [`crate::OAuthClient::exchange_code`] takes it by value.
    AuthorizationCode
);
secret_type!(
    /// A connection's access token (`ntn_…`, older ones `secret_…`); treat it as opaque.
    #[derive(Clone)]
    AccessToken
);
secret_type!(
    /// A connection's refresh token (`nrt_…`). Notion rotates it: each refresh kills the old one.
    #[derive(Clone)]
    RefreshToken
);

/// The integration's OAuth client id (not a secret: it appears in every authorize URL).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a client id as shown in Notion's Developer portal.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let secret = AccessToken::new("ntn_very_secret_value");
        let shown = format!("{secret:?} {:?}", Some(RefreshToken::new("nrt_other")));
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(!shown.contains("nrt_other"), "{shown}");
        assert!(shown.contains("AccessToken([redacted])"), "{shown}");
    }
}

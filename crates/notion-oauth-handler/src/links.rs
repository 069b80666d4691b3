//! Links to `/connect` the app can vouch for, so a `ref` in a link cannot be swapped by whoever
//! edits it: signed links (see [`crate::signatures`] for the signature), and one-time links from
//! the API, `/connect?link=T`, of which only a digest of `T` is stored.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Config;
use crate::config::{Connect, check_return_to};
use crate::domain::{BotId, RefSource, Reference};
use crate::flow::{ConnectRequest, FlowError, Restart};
use crate::signatures::{connect_link, connect_link_matches};
use crate::store::{Store, now};
use crate::telemetry::Chain;

/// How long a link made to bring a user back lives.
const RECONNECT_TTL_SECONDS: i64 = 3600;

/// A link to `/connect`, in each form the server trusts. The one place such URLs are built: for
/// the API, the CLI and the pages that send a user back.
pub(crate) enum ConnectLink<'a> {
    /// `ref` and `return_to` as given; trusted only where signatures are not required.
    Plain { reference: Option<&'a str>, return_to: Option<&'a str> },
    /// Signed with the link secret, until `expires`.
    Signed { reference: &'a str, return_to: &'a str, expires: i64, secret: &'a SecretString },
    /// A one-time link, stored by its digest.
    OneTime { token: &'a str },
}

impl ConnectLink<'_> {
    /// The link, on the server's public `/connect` URL.
    pub(crate) fn url(&self, connect_url: &Url) -> Url {
        let mut url = connect_url.clone();
        let mut query = url.query_pairs_mut();
        match *self {
            Self::Plain { reference, return_to } => {
                if let Some(reference) = reference {
                    query.append_pair("ref", reference);
                }
                if let Some(return_to) = return_to {
                    query.append_pair("return_to", return_to);
                }
            }
            Self::Signed { reference, return_to, expires, secret } => {
                if !reference.is_empty() {
                    query.append_pair("ref", reference);
                }
                if !return_to.is_empty() {
                    query.append_pair("return_to", return_to);
                }
                query
                    .append_pair("expires", &expires.to_string())
                    .append_pair("sig", &connect_link(secret, reference, return_to, expires));
            }
            Self::OneTime { token } => {
                query.append_pair("link", token);
            }
        }
        drop(query);
        // A plain link without a ref has an empty query: show it as `/connect`, not `/connect?`.
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }
}

/// A new one-time link token and the digest stored for it.
fn new_token() -> Result<(String, [u8; 32]), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&token);
    Ok((token, digest))
}

/// What is stored for a one-time link token.
fn token_digest(token: &str) -> [u8; 32] {
    Sha256::new_with_prefix(b"noh connect link\0").chain_update(token).finalize().into()
}

/// Reads links to `/connect`, and makes them: to bring a user back, and one-time links.
pub(crate) struct Links {
    store: Arc<dyn Store>,
    /// Which links are trusted: origins for `return_to`, whether a `ref` must be signed, and
    /// the secret to check signatures with.
    trust: Connect,
    connect_url: Url,
}

impl Links {
    /// Links as `config` trusts them; one-time links kept in `store`.
    pub(crate) fn new(config: &Config, store: Arc<dyn Store>) -> Self {
        Self { store, trust: config.connect.clone(), connect_url: config.public_link("/connect") }
    }

    /// The bare `/connect`, at the public URL.
    pub(crate) fn connect_url(&self) -> &Url {
        &self.connect_url
    }

    /// The origins `return_to` may point at (`connect.return_to_origins`).
    pub(crate) fn return_to_origins(&self) -> &[url::Origin] {
        &self.trust.return_to_origins
    }

    /// `return_to`, parsed, if it is at one of the allowed origins.
    pub(crate) fn check_return_to(&self, return_to: &str) -> Option<Url> {
        check_return_to(return_to, &self.trust.return_to_origins)
    }

    /// Reads `/connect`'s query: a plain link (`ref`, `return_to`), a signed one (plus `expires`
    /// and `sig`), or a one-time link (`link`). Other parameters (campaign tags and the like)
    /// are ignored; a repeated one of ours is ambiguous and refused.
    ///
    /// # Errors
    /// A link that is malformed, unsigned where signatures are required, tampered, expired or
    /// used, or whose `return_to` is not an allowed origin.
    #[tracing::instrument(name = "links.read", level = "debug", skip_all)]
    pub(crate) async fn read(&self, query: Option<&str>) -> Result<ConnectRequest, FlowError> {
        let mut found: [Option<String>; 5] = Default::default();
        const NAMES: [&str; 5] = ["ref", "return_to", "expires", "sig", "link"];
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if let Some(index) = NAMES.iter().position(|n| *n == name) {
                if found[index].is_some() {
                    return Err(FlowError::InvalidLink);
                }
                found[index] = Some(value.into_owned()).filter(|v| !v.is_empty());
            }
        }
        let [reference, return_to, expires, sig, link] = found;
        // Checked first: a bad ref is refused whatever form the link has.
        let parse = |reference: Option<String>| reference.map(Reference::parse).transpose();
        let reference = parse(reference)?;
        let (reference, return_to, source, link_expires) = match (link, sig) {
            (Some(_), _) if reference.is_some() || return_to.is_some() || expires.is_some() => {
                return Err(FlowError::InvalidLink);
            }
            (Some(_), Some(_)) => return Err(FlowError::InvalidLink),
            (Some(link), None) => {
                let used = self.store.use_connect_link(&token_digest(&link)).await?;
                let used = used.ok_or(FlowError::UsedLink)?;
                (parse(used.reference)?, used.return_to, RefSource::Vouched, Some(used.expires_at))
            }
            (None, Some(sig)) => {
                let signed = reference.as_ref().map(Reference::as_str);
                let expires = self.check_signature(signed, return_to.as_deref(), expires, &sig)?;
                (reference, return_to, RefSource::Vouched, Some(expires))
            }
            (None, None)
                if self.trust.require_signed_ref
                    && (reference.is_some() || return_to.is_some()) =>
            {
                return Err(FlowError::UnsignedLink);
            }
            (None, None) => (reference, return_to, RefSource::Plain, None),
        };
        // Keep the URL as parsed and checked, not as written.
        let return_to = return_to
            .map(|raw| self.check_return_to(&raw).ok_or(FlowError::ReturnToNotAllowed))
            .transpose()?
            .map(|url| url.to_string());
        Ok(ConnectRequest { reference, return_to, source, link_expires })
    }

    fn check_signature(
        &self,
        reference: Option<&str>,
        return_to: Option<&str>,
        expires: Option<String>,
        sig: &str,
    ) -> Result<i64, FlowError> {
        let secret = self.trust.link_secret.as_ref().ok_or(FlowError::InvalidLink)?;
        let expires: i64 =
            expires.as_deref().and_then(|e| e.parse().ok()).ok_or(FlowError::InvalidLink)?;
        let (reference, return_to) = (reference.unwrap_or(""), return_to.unwrap_or(""));
        if !connect_link_matches(secret, reference, return_to, expires, sig) {
            return Err(FlowError::InvalidLink);
        }
        if expires < now() {
            return Err(FlowError::ExpiredLink);
        }
        Ok(expires)
    }

    /// A link that sends `reference`'s user back through `/connect`, for the app (which vouches
    /// for its own users): see [`Links::again`].
    ///
    /// # Errors
    /// Storing a one-time link failed, or no randomness.
    pub(crate) async fn reconnect_url(&self, reference: Option<&str>) -> Result<Url, FlowError> {
        let restart = Restart {
            reference: reference.map(str::to_owned),
            return_to: None,
            source: RefSource::Vouched,
            link_expires: None,
        };
        let url = self.again(Some(&restart)).await?;
        // Without an app link's expiry to keep to, there is always a link.
        Ok(url.unwrap_or_else(|| self.connect_url.clone()))
    }

    /// The one way a page or an answer offers to start a flow again: a link to `/connect` with
    /// the flow's `ref` and `return_to`, in a form this server accepts and that vouches for no
    /// more than the flow did. A vouched `ref` is signed when a link secret is set, one-time when
    /// unsigned ones are refused and there is none, else plain; a plain `ref` stays plain (it
    /// was accepted as such). Without a flow, or one with neither, the bare `/connect`. Signed
    /// and one-time links live an hour, and never past the app's own link that started the flow:
    /// `None` once that has expired, as only the app can make a new one (a link handed out
    /// again and again must not outlive it).
    ///
    /// # Errors
    /// Storing a one-time link failed, or no randomness.
    #[tracing::instrument(name = "links.again", level = "debug", skip_all)]
    pub(crate) async fn again(&self, restart: Option<&Restart>) -> Result<Option<Url>, FlowError> {
        let (reference, return_to, source) = match restart {
            Some(r) => (r.reference.as_deref(), r.return_to.as_deref(), r.source),
            None => (None, None, RefSource::Plain),
        };
        let mut expires = now() + RECONNECT_TTL_SECONDS;
        if let Some(link_expires) = restart.and_then(|r| r.link_expires) {
            if link_expires <= now() && source == RefSource::Vouched {
                return Ok(None);
            }
            expires = expires.min(link_expires);
        }
        let link = match (source, &self.trust.link_secret) {
            _ if reference.is_none() && return_to.is_none() => {
                ConnectLink::Plain { reference: None, return_to: None }
            }
            (RefSource::Vouched, Some(secret)) => ConnectLink::Signed {
                reference: reference.unwrap_or(""),
                return_to: return_to.unwrap_or(""),
                expires,
                secret,
            },
            (RefSource::Vouched, None) if self.trust.require_signed_ref => {
                return self.one_time(reference, return_to, expires).await.map(Some);
            }
            _ => ConnectLink::Plain { reference, return_to },
        };
        Ok(Some(link.url(&self.connect_url)))
    }

    /// [`Links::reconnect_url`] for the user of a connection, or `None` (logged) when it cannot
    /// be made: for an answer that would merely be less helpful without it.
    pub(crate) async fn reconnect_url_for(&self, bot_id: &BotId) -> Option<Url> {
        let reference = match self.store.connection(bot_id).await {
            Ok(connection) => connection.and_then(|c| c.reference),
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "could not read the connection's ref for its reconnect link");
                None
            }
        };
        self.reconnect_url(reference.as_deref())
            .await
            .inspect_err(|error| {
                tracing::warn!(error = %Chain(error), "could not make a reconnect link");
            })
            .ok()
    }

    /// A one-time link bound to `reference` and `return_to` (both checked by the caller), that
    /// works until `expires_at`.
    ///
    /// # Errors
    /// Storing it failed, or no randomness.
    #[tracing::instrument(name = "links.one_time", level = "debug", skip_all)]
    pub(crate) async fn one_time(
        &self,
        reference: Option<&str>,
        return_to: Option<&str>,
        expires_at: i64,
    ) -> Result<Url, FlowError> {
        let (token, digest) = new_token().map_err(FlowError::Randomness)?;
        self.store.insert_connect_link(&digest, reference, return_to, expires_at).await?;
        Ok(ConnectLink::OneTime { token: &token }.url(&self.connect_url))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_form_of_link_carries_what_it_needs_and_no_more() {
        let connect = Url::parse("https://notion.example.com/base/connect").unwrap();
        let plain = ConnectLink::Plain { reference: Some("a&b"), return_to: None }.url(&connect);
        assert_eq!(plain.as_str(), "https://notion.example.com/base/connect?ref=a%26b");
        let bare = ConnectLink::Plain { reference: None, return_to: None }.url(&connect);
        assert_eq!(bare.as_str(), "https://notion.example.com/base/connect");
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let signed =
            ConnectLink::Signed { reference: "u", return_to: "", expires: 7, secret: &secret }
                .url(&connect);
        let sig = connect_link(&secret, "u", "", 7);
        assert_eq!(signed.query(), Some(format!("ref=u&expires=7&sig={sig}").as_str()));
        let once = ConnectLink::OneTime { token: "t" }.url(&connect);
        assert_eq!(once.query(), Some("link=t"));
    }
}

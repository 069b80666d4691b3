//! Connect links the app can vouch for, so a `ref` in a link cannot be swapped by whoever edits it.
//!
//! Signed links: `/connect?ref=R&return_to=U&expires=E&sig=S` where `S` is the lowercase hex
//! HMAC-SHA256, under `connect.link_secret`, of `"noh-connect-link-v1\n" + R + "\n" + U + "\n" + E`
//! (an absent `ref` or `return_to` counts as empty; `E` is Unix seconds). Neither field may hold
//! a newline (`ref` refuses control characters, `return_to` whitespace), so the separator is
//! unambiguous. One-time links come
//! from the API instead: `/connect?link=T`, where only a digest of `T` is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::connect::check_return_to;
use crate::flow::{FlowError, MAX_REF_CHARS};
use crate::startup::AppState;

fn mac(secret: &SecretString, reference: &str, return_to: &str, expires: i64) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the fallback cannot happen.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(format!("noh-connect-link-v1\n{reference}\n{return_to}\n{expires}").as_bytes());
    mac
}

/// The `sig` of a link.
pub fn sign(secret: &SecretString, reference: &str, return_to: &str, expires: i64) -> String {
    mac(secret, reference, return_to, expires)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `sig` is the link's signature (compared in constant time).
pub fn is_signed(
    secret: &SecretString,
    reference: &str,
    return_to: &str,
    expires: i64,
    sig: &str,
) -> bool {
    let Some(bytes) = decode_hex(sig) else {
        return false;
    };
    mac(secret, reference, return_to, expires).verify_slice(&bytes).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// A new one-time link token and the digest stored for it.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn new_token() -> Result<(String, [u8; 32]), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&token);
    Ok((token, digest))
}

/// What is stored for a one-time link token.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::new_with_prefix(b"noh connect link\0").chain_update(token).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field() {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let sig = sign(&secret, "user-1", "https://app.example.com/", 1_700_000_000);
        assert!(is_signed(&secret, "user-1", "https://app.example.com/", 1_700_000_000, &sig));
        assert!(!is_signed(&secret, "user-2", "https://app.example.com/", 1_700_000_000, &sig));
        assert!(!is_signed(&secret, "user-1", "https://evil.example.com/", 1_700_000_000, &sig));
        assert!(!is_signed(&secret, "user-1", "https://app.example.com/", 1_800_000_000, &sig));
        assert!(!is_signed(&secret, "user-1", "https://app.example.com/", 1_700_000_000, "zz"));
    }
}

/// What a link to `/connect` asks for, once trusted: the app's `ref` and where to return.
#[derive(Debug, Default)]
pub struct ConnectRequest {
    pub reference: Option<String>,
    pub return_to: Option<String>,
}

/// Reads `/connect`'s query: a plain link (`ref`, `return_to`), a signed one (plus `expires` and
/// `sig`), or a one-time link (`link`). Other parameters (campaign tags and the like) are
/// ignored; a repeated one of ours is ambiguous and refused.
///
/// # Errors
/// A link that is malformed, unsigned where signatures are required, tampered, expired or used,
/// or whose `return_to` is not an allowed origin.
pub async fn read_connect_request(
    app: &AppState,
    query: Option<&str>,
) -> Result<ConnectRequest, FlowError> {
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
    if reference
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REF_CHARS || r.chars().any(char::is_control))
    {
        return Err(FlowError::BadRef);
    }
    let connect = &app.config.connect;
    let request = match (link, sig) {
        (Some(_), _) if reference.is_some() || return_to.is_some() || expires.is_some() => {
            return Err(FlowError::InvalidLink);
        }
        (Some(link), None) => {
            let (reference, return_to) = app
                .store
                .use_connect_link(&token_digest(&link))
                .await?
                .ok_or(FlowError::UsedLink)?;
            ConnectRequest { reference, return_to }
        }
        (Some(_), Some(_)) => return Err(FlowError::InvalidLink),
        (None, Some(sig)) => {
            let secret = connect.link_secret.as_ref().ok_or(FlowError::InvalidLink)?;
            let expires: i64 =
                expires.as_deref().and_then(|e| e.parse().ok()).ok_or(FlowError::InvalidLink)?;
            let signed = is_signed(
                secret,
                reference.as_deref().unwrap_or(""),
                return_to.as_deref().unwrap_or(""),
                expires,
                &sig,
            );
            if !signed {
                return Err(FlowError::InvalidLink);
            }
            if expires < crate::store::now() {
                return Err(FlowError::ExpiredLink);
            }
            ConnectRequest { reference, return_to }
        }
        (None, None)
            if connect.require_signed_ref && (reference.is_some() || return_to.is_some()) =>
        {
            return Err(FlowError::UnsignedLink);
        }
        (None, None) => ConnectRequest { reference, return_to },
    };
    let mut request = request;
    if let Some(return_to) = &request.return_to {
        // Keep the URL as parsed and checked, not as written.
        let url = check_return_to(return_to, &connect.return_to_origins)
            .ok_or(FlowError::ReturnToNotAllowed)?;
        request.return_to = Some(url.to_string());
    }
    Ok(request)
}

/// A link that sends `reference`'s user back through `/connect` and that this server will accept:
/// signed when a link secret is set, a one-time link when unsigned ones are refused and there is
/// no secret, else plain. Lives an hour.
///
/// # Errors
/// Storing a one-time link failed, or no randomness.
pub async fn reconnect_url(app: &AppState, reference: Option<&str>) -> Result<url::Url, FlowError> {
    let connect = &app.config.connect;
    let mut url = app.config.public_link("/connect");
    let Some(reference) = reference else {
        return Ok(url);
    };
    let expires = crate::store::now() + 3600;
    if let Some(secret) = &connect.link_secret {
        url.query_pairs_mut()
            .append_pair("ref", reference)
            .append_pair("expires", &expires.to_string())
            .append_pair("sig", &sign(secret, reference, "", expires));
    } else if connect.require_signed_ref {
        let (token, digest) = new_token().map_err(FlowError::Randomness)?;
        app.store.insert_connect_link(&digest, Some(reference), None, expires).await?;
        url.query_pairs_mut().append_pair("link", &token);
    } else {
        url.query_pairs_mut().append_pair("ref", reference);
    }
    Ok(url)
}

//! Connect links the app can vouch for, so a `ref` in a link cannot be swapped by whoever edits it:
//! signed links (see [`crate::signatures`] for the signature), and one-time links from the API,
//! `/connect?link=T`, of which only a digest of `T` is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::connect::check_return_to;
use crate::flow::{ConnectRequest, FlowError, MAX_REF_CHARS};
use crate::startup::AppState;

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
            let signed = crate::signatures::connect_link_matches(
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
            .append_pair("sig", &crate::signatures::connect_link(secret, reference, "", expires));
    } else if connect.require_signed_ref {
        let (token, digest) = new_token().map_err(FlowError::Randomness)?;
        app.store.insert_connect_link(&digest, Some(reference), None, expires).await?;
        url.query_pairs_mut().append_pair("link", &token);
    } else {
        url.query_pairs_mut().append_pair("ref", reference);
    }
    Ok(url)
}

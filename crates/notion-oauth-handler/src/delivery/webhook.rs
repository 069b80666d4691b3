//! Signed webhook calls.
//!
//! `Notion-OAuth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
//! timestamp is signed with the body, so a receiver that checks it is recent (five minutes)
//! rejects replays of an old delivery.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use crate::store::{Delivery, now};

pub const SIGNATURE_HEADER: &str = "Notion-OAuth-Signature";

/// The signature header's value for `body` at `timestamp`.
pub fn sign(secret: &SecretString, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length; the fallback cannot happen.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={digest}")
}

/// One POST; any 2xx is success.
pub async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: &SecretString,
    delivery: &Delivery,
    body: &str,
) -> Result<(), String> {
    let response = client
        .post(url.clone())
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sign(secret, now(), body))
        .header("Notion-OAuth-Event-Id", &delivery.event_id)
        .header("Notion-OAuth-Event-Type", &delivery.event_type)
        .header("Notion-OAuth-Delivery-Attempt", (delivery.attempts + 1).to_string())
        .body(body.to_owned())
        .send()
        .await
        // No URL in the message: it may carry a secret path segment or query.
        .map_err(|e| {
            if e.is_timeout() {
                "the receiver did not answer in time".to_owned()
            } else {
                format!("could not reach the receiver: {}", e.without_url())
            }
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let secret = SecretString::from("0123456789abcdef");
        let signed = sign(&secret, 1_700_000_000, r#"{"a":1}"#);
        assert!(
            signed.starts_with("t=1700000000,v1=") && signed.len() == "t=1700000000,v1=".len() + 64
        );
        assert_ne!(signed, sign(&secret, 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(signed, sign(&secret, 1_700_000_000, r#"{"a":2}"#));
        assert_ne!(
            signed,
            sign(&SecretString::from("another secret!!"), 1_700_000_000, r#"{"a":1}"#)
        );
    }
}

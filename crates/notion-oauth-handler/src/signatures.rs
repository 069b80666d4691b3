//! The two signatures an app checks or makes itself, as the README's recipes show: the webhook
//! signature a receiver verifies, and the connect-link signature an app signs links with.
//!
//! - Webhooks: `Notion-OAuth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!   The timestamp is signed with the body, so a receiver that checks it is recent (five
//!   minutes) rejects replays of an old delivery.
//! - Connect links: `/connect?ref=R&return_to=U&expires=E&sig=S` where `S` is the lowercase hex
//!   HMAC-SHA256, under `connect.link_secret`, of `"noh-connect-link-v1\n" + R + "\n" + U + "\n" + E`
//!   (an absent `ref` or `return_to` counts as empty; `E` is Unix seconds). Neither field may
//!   hold a newline (`ref` refuses control characters, `return_to` whitespace), so the
//!   separator is unambiguous.

use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{decode_hex, hex, hmac_sha256};

/// The header that carries a webhook's signature.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "Notion-OAuth-Signature";

/// The webhook signature header's value for `body` sent at `timestamp`.
pub fn webhook(secret: &SecretString, timestamp: i64, body: &str) -> String {
    let prefix = format!("{timestamp}.");
    let mac = hmac_sha256(secret.expose_secret().as_bytes(), &[prefix.as_bytes(), body.as_bytes()]);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

fn link_mac(
    secret: &SecretString,
    reference: &str,
    return_to: &str,
    expires: i64,
) -> hmac::Hmac<sha2::Sha256> {
    let message = format!("noh-connect-link-v1\n{reference}\n{return_to}\n{expires}");
    hmac_sha256(secret.expose_secret().as_bytes(), &[message.as_bytes()])
}

/// The `sig` of a connect link.
pub fn connect_link(
    secret: &SecretString,
    reference: &str,
    return_to: &str,
    expires: i64,
) -> String {
    hex(&link_mac(secret, reference, return_to, expires).finalize().into_bytes())
}

/// Whether `sig` is the connect link's signature (compared in constant time).
pub fn connect_link_matches(
    secret: &SecretString,
    reference: &str,
    return_to: &str,
    expires: i64,
    sig: &str,
) -> bool {
    decode_hex(sig, 32).is_some_and(|bytes| {
        link_mac(secret, reference, return_to, expires).verify_slice(&bytes).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signature_covers_every_field() {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let sig = connect_link(&secret, "user-1", "https://app.example.com/", 1_700_000_000);
        let matches = |r: &str, u: &str, e: i64, s: &str| connect_link_matches(&secret, r, u, e, s);
        assert!(matches("user-1", "https://app.example.com/", 1_700_000_000, &sig));
        assert!(!matches("user-2", "https://app.example.com/", 1_700_000_000, &sig));
        assert!(!matches("user-1", "https://evil.example.com/", 1_700_000_000, &sig));
        assert!(!matches("user-1", "https://app.example.com/", 1_800_000_000, &sig));
        assert!(!matches("user-1", "https://app.example.com/", 1_700_000_000, "zz"));
    }

    #[test]
    fn a_webhook_signature_covers_timestamp_and_body() {
        let secret = SecretString::from("0123456789abcdef");
        let signed = webhook(&secret, 1_700_000_000, r#"{"a":1}"#);
        assert!(
            signed.starts_with("t=1700000000,v1=") && signed.len() == "t=1700000000,v1=".len() + 64
        );
        assert_ne!(signed, webhook(&secret, 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(signed, webhook(&secret, 1_700_000_000, r#"{"a":2}"#));
        let other = SecretString::from("another secret!!");
        assert_ne!(signed, webhook(&other, 1_700_000_000, r#"{"a":1}"#));
    }
}

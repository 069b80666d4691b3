//! API keys for the developer's backend: `noh_<id>_<secret>`.
//!
//! The id finds the row; only a SHA-256 digest of the secret is stored, and it is compared in
//! constant time. A 256-bit random secret needs no slow hash: there is nothing to brute-force.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "noh_";

/// A freshly made key: shown once, then only its digest exists.
pub struct NewApiKey {
    /// The public part, which finds the row: shown in listings, used to revoke.
    pub id: String,
    /// The whole key, `noh_<id>_<secret>`, for the app's secrets.
    pub key: SecretString,
    /// What is stored of the secret.
    pub digest: [u8; 32],
}

/// Makes a new key.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn generate() -> Result<NewApiKey, getrandom::Error> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = crate::crypto::hex(&id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    Ok(NewApiKey {
        key: SecretString::from(format!("{PREFIX}{id}_{secret}")),
        digest: digest(&secret),
        id,
    })
}

/// Splits a presented key into its id and secret; `None` when it is not of our shape.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    let hex = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id) && secret.len() == 43).then_some((id, secret))
}

/// The stored form of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::new_with_prefix(b"noh api key v1\0").chain_update(secret).finalize().into()
}

/// Whether `secret` is the one behind `stored`, in constant time.
pub fn matches(stored: &[u8], secret: &str) -> bool {
    bool::from(digest(secret).as_slice().ct_eq(stored))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_generated_key_parses_and_matches_only_its_own_digest() {
        let made = generate().unwrap();
        let (id, secret) = parse(made.key.expose_secret()).unwrap();
        assert_eq!(id, made.id);
        assert!(matches(&made.digest, secret));
        let other = generate().unwrap();
        assert!(!matches(&other.digest, secret));
    }

    #[test]
    fn keys_of_another_shape_do_not_parse() {
        for key in [
            "",
            "noh_",
            "noh_abc_def",
            "Bearer x",
            "noh_zzzzzzzzzzzz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(parse(key).is_none(), "{key}");
        }
    }
}

//! The OAuth `state`: signed, expiring, and bound to one browser.
//!
//! Format: `base64url(claims JSON) "." base64url(HMAC-SHA256(key, claims JSON))`. The MAC is
//! checked (in constant time) before anything in the claims is parsed, so a forged state costs
//! one HMAC and nothing else. Single use is not something a stateless token can promise: callers
//! record [`StateClaims::nonce`] when they accept a state and refuse a nonce seen before.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest state accepted: above what [`StateSigner::sign`] makes for a 256-character
/// reference and a 1024-byte return URL, far below what would make parsing costly.
pub const MAX_STATE_LEN: usize = 4096;

/// Clock skew tolerated between instances that share a key.
const FUTURE_SKEW_SECS: u64 = 60;

/// What a state carries. Everything here is readable by whoever holds the state (it travels
/// through Notion and the browser's history); it is signed, not encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    /// Unique per flow: the value to record as consumed. The time in milliseconds, then 96
    /// random bits: nonces recorded together then sit together in a database index, instead of
    /// each changing a page of its own (the state is signed, so nothing rests on guessing it).
    #[serde(rename = "n")]
    pub nonce: String,
    /// Seconds since the Unix epoch when the flow started.
    #[serde(rename = "t")]
    pub issued_at: u64,
    /// A digest of the browser's binding cookie; see [`StateClaims::is_bound_to`].
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// The application's own reference for the user who started the flow.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Where to send the browser when the flow ends (checked by the caller before signing).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    /// Whether `reference` came from a link the app signed (or made for one use), rather than
    /// from a plain `?ref=` anyone can type.
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    pub ref_signed: bool,
    /// Until when the app's signed or one-time link that started the flow worked (seconds
    /// since the Unix epoch): a link to start the flow again lives no longer.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub link_expires: Option<u64>,
}

impl StateClaims {
    /// Claims for a flow starting now, with a fresh random nonce.
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn new(
        browser: Option<String>,
        reference: Option<String>,
    ) -> Result<Self, getrandom::Error> {
        let now = SystemTime::now();
        let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let mut nonce = [0u8; 18];
        // Six bytes of milliseconds last until the year 10889.
        nonce[..6].copy_from_slice(&millis.to_be_bytes()[10..]);
        crate::random::fill(&mut nonce[6..])?;
        Ok(Self {
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            issued_at: unix_seconds(now),
            browser,
            reference,
            return_to: None,
            ref_signed: false,
            link_expires: None,
        })
    }

    /// Whether the state was issued to the browser presenting `browser` (compared in constant
    /// time). A state issued without a binding is bound to nothing and never matches.
    pub fn is_bound_to(&self, browser: &str) -> bool {
        match &self.browser {
            Some(expected) => bool::from(expected.as_bytes().ct_eq(browser.as_bytes())),
            None => false,
        }
    }
}

/// Why a state was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not of the form this signer makes (truncated, mangled, too long, not base64).
    #[error("the state is malformed")]
    Malformed,
    /// Well-formed but not signed with this key: forged or edited.
    #[error("the state's signature does not match")]
    BadSignature,
    /// Signed by us but older than the allowed age.
    #[error("the state expired {0} seconds ago")]
    Expired(u64),
    /// Signed by us with an issue time in the future: clocks are far apart.
    #[error("the state was issued in the future")]
    NotYetValid,
}

/// Signs and checks states with one HMAC-SHA256 key.
pub struct StateSigner {
    /// The MAC with the key and the domain prefix already absorbed, cloned for each state: the
    /// key's two blocks are hashed once, not on every `/connect` and callback. It stands for
    /// the key, so it is never shown (see `Debug`).
    keyed: Hmac<Sha256>,
    max_age: Duration,
}

impl std::fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSigner").field("max_age", &self.max_age).finish_non_exhaustive()
    }
}

impl StateSigner {
    /// A signer with `key` (use at least 32 random bytes, e.g. derived from a master key) that
    /// accepts states up to `max_age` old.
    pub fn new(key: &[u8], max_age: Duration) -> Self {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps it panic-free.
        let mut keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        keyed.update(b"notion-oauth state v1\0");
        Self { keyed, max_age }
    }

    /// How long a state stays valid.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The state string for `claims`.
    pub fn sign(&self, claims: &StateClaims) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let mut payload = Vec::with_capacity(256);
        serde_json::to_writer(&mut payload, claims).unwrap_or_default();
        let tag = self.mac(&payload).finalize().into_bytes();
        // One string of the final size: a state is made on every `/connect`.
        let mut state = String::with_capacity(4 * (payload.len() + tag.len()).div_ceil(3) + 1);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut state);
        state.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut state);
        state
    }

    /// Checks `state`'s signature and age at time `now` and returns its claims.
    ///
    /// # Errors
    /// See [`StateError`]; the caller still has to check the browser binding and single use.
    pub fn verify(&self, state: &str, now: SystemTime) -> Result<StateClaims, StateError> {
        let claims = self.signed_claims(state)?;
        let now = unix_seconds(now);
        if claims.issued_at > now + FUTURE_SKEW_SECS {
            return Err(StateError::NotYetValid);
        }
        let age = now.saturating_sub(claims.issued_at);
        if age > self.max_age.as_secs() {
            return Err(StateError::Expired(age - self.max_age.as_secs()));
        }
        Ok(claims)
    }

    /// The claims of a state this signer made, whatever its age: for offering to start an
    /// expired flow again as it was started (same `ref`, same browser), never for finishing it.
    ///
    /// # Errors
    /// [`StateError::Malformed`] or [`StateError::BadSignature`].
    pub fn verify_ignoring_age(&self, state: &str) -> Result<StateClaims, StateError> {
        self.signed_claims(state)
    }

    fn signed_claims(&self, state: &str) -> Result<StateClaims, StateError> {
        if state.len() > MAX_STATE_LEN {
            return Err(StateError::Malformed);
        }
        let (payload, tag) = state.split_once('.').ok_or(StateError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| StateError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StateError::Malformed)?;
        if payload.is_empty() || tag.len() != 32 {
            return Err(StateError::Malformed);
        }
        self.mac(&payload).verify_slice(&tag).map_err(|_| StateError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|_| StateError::Malformed)
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn signer() -> StateSigner {
        StateSigner::new(&[7u8; 32], Duration::from_secs(600))
    }

    #[test]
    fn a_signed_state_verifies_and_round_trips_its_claims() {
        let claims = StateClaims::new(Some("browser".into()), Some("user-42".into())).unwrap();
        let state = signer().sign(&claims);
        assert_eq!(signer().verify(&state, SystemTime::now()).unwrap(), claims);
    }

    #[test]
    fn nonces_differ_between_flows_and_those_made_together_share_a_prefix() {
        let a = StateClaims::new(None, None).unwrap();
        let b = StateClaims::new(None, None).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 24);
        // Within about a second, the first six characters (36 bits of time) are the same.
        let later = StateClaims::new(None, None).unwrap();
        let shared = a.nonce.chars().zip(later.nonce.chars()).take_while(|(x, y)| x == y).count();
        assert!(shared >= 5, "{} and {}", a.nonce, later.nonce);
    }

    #[test]
    fn an_edited_payload_or_another_key_is_a_bad_signature() {
        let state = signer().sign(&StateClaims::new(None, Some("alice".into())).unwrap());
        let (_, tag) = state.split_once('.').unwrap();
        let forged_claims = StateClaims::new(None, Some("mallory".into())).unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{forged_payload}.{tag}");
        assert_eq!(signer().verify(&forged, SystemTime::now()), Err(StateError::BadSignature));
        let other = StateSigner::new(&[8u8; 32], Duration::from_secs(600));
        assert_eq!(other.verify(&state, SystemTime::now()), Err(StateError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", ".", "abc", "a.b.c", "!!!.???", &"a".repeat(MAX_STATE_LEN + 1)] {
            assert_eq!(signer().verify(garbage, SystemTime::now()), Err(StateError::Malformed));
        }
    }

    #[test]
    fn old_and_future_states_are_refused() {
        let state = signer().sign(&StateClaims::new(None, None).unwrap());
        let later = SystemTime::now() + Duration::from_secs(601 + 5);
        assert!(matches!(signer().verify(&state, later), Err(StateError::Expired(_))));
        let expired = signer().verify_ignoring_age(&state).unwrap();
        assert_eq!(expired.nonce, signer().verify(&state, SystemTime::now()).unwrap().nonce);
        let at = state.len() - 10;
        let swapped = if &state[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &state[..at], &state[at + 1..]);
        assert!(signer().verify_ignoring_age(&forged).is_err());
        let earlier = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(signer().verify(&state, earlier), Err(StateError::NotYetValid));
    }

    #[test]
    fn the_browser_binding_must_match_exactly() {
        let claims = StateClaims::new(Some("digest-a".into()), None).unwrap();
        assert!(claims.is_bound_to("digest-a"));
        assert!(!claims.is_bound_to("digest-b"));
        assert!(!StateClaims::new(None, None).unwrap().is_bound_to(""));
    }
}

//! `StateSigner::verify` on arbitrary text, on arbitrary claims bytes that carry a valid MAC, and
//! the round trip: a state made by `sign` verifies to the same claims (unless it is too long).
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use notion_oauth::{MAX_STATE_LEN, StateClaims, StateError, StateSigner};
use sha2::Sha256;

const KEY: [u8; 32] = [7u8; 32];
const MAX_AGE: u64 = 600;
/// A fixed "now", so that every run of an input does the same thing.
const NOW_SECS: u64 = 1_700_000_000;

static SIGNER: LazyLock<StateSigner> =
    LazyLock::new(|| StateSigner::new(&KEY, Duration::from_secs(MAX_AGE)));

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// The state for an arbitrary claims payload, MAC'd as `StateSigner` does (see state.rs), so
/// that the claims parser and the time checks behind the MAC are reached.
fn signed(payload: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).expect("any key length");
    mac.update(b"notion-oauth state v1\0");
    mac.update(payload);
    let tag = mac.finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = SIGNER.verify(text, now());
            }
        }
        1 => {
            let _ = SIGNER.verify(&signed(rest), now());
        }
        _ => {
            let mut u = Unstructured::new(rest);
            type Fields =
                (String, u16, Option<String>, Option<String>, Option<String>, bool, Option<u64>);
            let Ok((nonce, age, browser, reference, return_to, ref_signed, link_expires)) =
                Fields::arbitrary(&mut u)
            else {
                return;
            };
            let claims = StateClaims {
                nonce,
                issued_at: NOW_SECS - u64::from(age) % (MAX_AGE + 1),
                browser,
                reference,
                return_to,
                ref_signed,
                link_expires,
            };
            // A state that has expired still shows what it was signed with, and nothing else.
            if let Ok(old) = SIGNER.verify_ignoring_age(&SIGNER.sign(&claims)) {
                assert_eq!(old, claims);
            }
            let state = SIGNER.sign(&claims);
            let verified = SIGNER.verify(&state, now());
            if state.len() > MAX_STATE_LEN {
                assert_eq!(verified, Err(StateError::Malformed));
            } else {
                assert_eq!(verified, Ok(claims));
            }
        }
    }
});

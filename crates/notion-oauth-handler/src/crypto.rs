//! The two primitives several modules share: HMAC-SHA256 and lowercase hex.
//!
//! The protocol crate keeps its own HMAC for state signing: it stands alone (no server types),
//! and exporting a helper from it for the server's sake would widen its public API.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256 keyed with `key`, fed `parts` in order.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so the fallback cannot happen.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    for part in parts {
        mac.update(part);
    }
    mac
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Hex of exactly `len` bytes, or `None`.
pub(crate) fn decode_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != len * 2 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_other_lengths_and_digits() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(decode_hex("000fff", 3), Some(vec![0, 15, 255]));
        assert_eq!(decode_hex("000fff", 2), None);
        assert_eq!(decode_hex("zz0fff", 3), None);
    }
}

//! Random and name-derived identifiers: codes, `ntn_`/`nrt_` tokens, request ids, stable user/workspace/bot ids.

use std::hash::{BuildHasher, Hasher};

use uuid::Uuid;

const ALPHANUMERIC: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the random part after `ntn_` / `nrt_` (50 characters in all, as in observed tokens, §6).
const TOKEN_BODY_LEN: usize = 46;

/// Fills `buf` from the OS. If that ever fails the emulator degrades to per-process-seeded hashing
/// instead of failing requests: these values protect nothing real.
fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    tracing::warn!("getrandom failed; falling back to a weaker source");
    for chunk in buf.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

pub(crate) fn uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        // Rejection sampling: 248 = 4 * 62, so the accepted bytes map uniformly onto the alphabet.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHANUMERIC[usize::from(b) % ALPHANUMERIC.len()]));
        }
    }
    out
}

pub(crate) fn access_token() -> String {
    format!("ntn_{}", alphanumeric(TOKEN_BODY_LEN))
}

pub(crate) fn refresh_token() -> String {
    format!("nrt_{}", alphanumeric(TOKEN_BODY_LEN))
}

/// A UUID derived from `parts`, so the same user/workspace/bot keeps its id across emulator
/// restarts (a `dev` server's database then upserts instead of piling up installations).
pub(crate) fn stable_uuid(parts: &[&str]) -> Uuid {
    // FNV-1a over 128 bits: tiny, dependency-free and stable across Rust releases (unlike SipHash keys).
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        // The separator keeps ("ab","c") and ("a","bc") apart.
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            hash ^= u128::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    uuid::Builder::from_random_bytes(hash.to_be_bytes()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_token(token: &str, prefix: &str) {
        let body = token.strip_prefix(prefix).unwrap_or_default();
        assert_eq!(token.len(), 50, "{prefix} token length");
        assert_eq!(body.len(), TOKEN_BODY_LEN);
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn token_formats() {
        check_token(&access_token(), "ntn_");
        check_token(&refresh_token(), "nrt_");
        assert_ne!(access_token(), access_token());
    }

    #[test]
    fn uuids_are_v4() {
        assert_eq!(uuid().get_version_num(), 4);
        assert_eq!(stable_uuid(&["user", "Ada"]).get_version_num(), 4);
    }

    #[test]
    fn stable_uuid_is_stable_and_separates_parts() {
        assert_eq!(stable_uuid(&["a", "b"]), stable_uuid(&["a", "b"]));
        assert_ne!(stable_uuid(&["ab", "c"]), stable_uuid(&["a", "bc"]));
        assert_ne!(stable_uuid(&["user", "Ada"]), stable_uuid(&["user", "Bob"]));
    }
}

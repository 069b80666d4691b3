//! Encryption of tokens at rest, and the keys derived from the master key.
//!
//! Every ciphertext is `version (1) || key id (4) || nonce (24) || XChaCha20-Poly1305 output`,
//! so rotating the master key only means moving the old one to `previous_master_keys`: rows
//! sealed under it still open. The caller's associated data (row id and column) is
//! authenticated too, so a ciphertext copied into another row or column does not open.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::hex;

const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A 32-byte master key, from configuration (base64) or generated for development.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Parses the base64 form used in configuration.
    ///
    /// # Errors
    /// A message fit for a configuration problem, never quoting the value.
    pub fn from_base64(text: &SecretString) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.expose_secret().trim())
                .map_err(|_| "is not valid base64".to_owned())?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!("must be 32 bytes once decoded, but it is {} bytes", bytes.len())
        })?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// A fresh random key and its base64 form.
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn generate() -> Result<(Self, SecretString), getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        let text = SecretString::from(STANDARD.encode(key));
        Ok((Self(SecretBox::new(Box::new(key))), text))
    }

    fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let hkdf = Hkdf::<Sha256>::new(None, self.0.expose_secret());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        let _ = hkdf.expand(format!("notion-oauth-handler/{purpose}/v1").as_bytes(), &mut *out);
        out
    }

    /// A short public name for this key, stored beside each ciphertext.
    pub fn id(&self) -> [u8; 4] {
        let derived = self.derive("key-id");
        [derived[0], derived[1], derived[2], derived[3]]
    }
}

/// Why a ciphertext did not open.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Too short, or an unknown version.
    #[error("the stored ciphertext is malformed")]
    Malformed,
    /// Sealed under a key that is not configured.
    #[error(
        "the stored ciphertext was sealed with key {0}, which is not configured (add it to security.previous_master_keys)"
    )]
    UnknownKey(String),
    /// The key is right but the bytes or their row were changed.
    #[error(
        "the stored ciphertext does not authenticate: it was altered or moved from another row"
    )]
    Tampered,
    /// Randomness or the cipher failed.
    #[error("encryption failed")]
    Seal,
}

/// The keys in use: one to seal with, and any number to open with.
pub struct Vault {
    active: [u8; 4],
    ciphers: HashMap<[u8; 4], XChaCha20Poly1305>,
    state_key: Zeroizing<[u8; 32]>,
    /// The state keys of `previous` keys: a flow started before a rotation still finishes.
    previous_state_keys: Vec<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("active_key_id", &self.active_key_id())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Seals with `active`; opens with `active` or any of `previous`.
    pub fn new(active: &MasterKey, previous: &[MasterKey]) -> Self {
        let cipher = |key: &MasterKey| {
            let derived = key.derive("token-encryption");
            XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*derived))
        };
        let mut ciphers = HashMap::new();
        for key in previous {
            ciphers.insert(key.id(), cipher(key));
        }
        ciphers.insert(active.id(), cipher(active));
        Self {
            active: active.id(),
            ciphers,
            state_key: active.derive("state-signing"),
            previous_state_keys: previous.iter().map(|key| key.derive("state-signing")).collect(),
        }
    }

    /// The key id new ciphertexts carry, as hex.
    pub fn active_key_id(&self) -> String {
        hex(&self.active)
    }

    /// The ids (hex) of the keys that were only kept to open older ciphertexts.
    pub fn previous_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.ciphers.keys().filter(|id| **id != self.active).map(|id| hex(id)).collect();
        ids.sort();
        ids
    }

    /// Whether ciphertexts sealed under the key with this id (hex) can be opened.
    pub fn opens(&self, key_id: &str) -> bool {
        self.ciphers.keys().any(|id| hex(id) == key_id)
    }

    /// The key that signs OAuth states.
    pub fn state_key(&self) -> &[u8] {
        &*self.state_key
    }

    /// The keys that signed states before a rotation, still accepted in verification.
    pub fn previous_state_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.previous_state_keys.iter().map(|key| &key[..])
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the row's id and the column name).
    ///
    /// # Errors
    /// [`VaultError::Seal`] when no randomness is available.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let cipher = self.ciphers.get(&self.active).ok_or(VaultError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        notion_oauth::random::fill(&mut nonce).map_err(|_| VaultError::Seal)?;
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: context })
            .map_err(|_| VaultError::Seal)?;
        let mut envelope = Vec::with_capacity(HEADER_LEN + sealed.len());
        envelope.push(ENVELOPE_VERSION);
        envelope.extend_from_slice(&self.active);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(&sealed);
        Ok(envelope)
    }

    /// Decrypts what [`Vault::seal`] made with the same `context`.
    ///
    /// # Errors
    /// See [`VaultError`].
    pub fn open(&self, envelope: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if envelope.len() < HEADER_LEN + 16 || envelope[0] != ENVELOPE_VERSION {
            return Err(VaultError::Malformed);
        }
        let key_id: [u8; 4] = [envelope[1], envelope[2], envelope[3], envelope[4]];
        let cipher =
            self.ciphers.get(&key_id).ok_or_else(|| VaultError::UnknownKey(hex(&key_id)))?;
        let nonce =
            XNonce::try_from(&envelope[5..HEADER_LEN]).map_err(|_| VaultError::Malformed)?;
        cipher
            .decrypt(&nonce, Payload { msg: &envelope[HEADER_LEN..], aad: context })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> MasterKey {
        MasterKey::generate().unwrap().0
    }

    #[test]
    fn sealed_tokens_open_only_in_their_own_context() {
        let vault = Vault::new(&key(), &[]);
        let sealed = vault.seal(b"ntn_secret", b"bot-1/access_token").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"ntn_secret"));
        assert_eq!(&**vault.open(&sealed, b"bot-1/access_token").unwrap(), b"ntn_secret");
        assert!(matches!(vault.open(&sealed, b"bot-2/access_token"), Err(VaultError::Tampered)));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(vault.open(&flipped, b"bot-1/access_token"), Err(VaultError::Tampered)));
        assert!(matches!(vault.open(&sealed[..10], b"x"), Err(VaultError::Malformed)));
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed() {
        let (old, new) = (key(), key());
        let sealed = Vault::new(&old, &[]).seal(b"nrt_x", b"ctx").unwrap();
        assert!(matches!(
            Vault::new(&new, &[]).open(&sealed, b"ctx"),
            Err(VaultError::UnknownKey(_))
        ));
        let rotated = Vault::new(&new, &[old]);
        assert_eq!(&**rotated.open(&sealed, b"ctx").unwrap(), b"nrt_x");
        assert_ne!(rotated.seal(b"nrt_x", b"ctx").unwrap()[1..5], sealed[1..5]);
    }

    #[test]
    fn master_keys_parse_from_base64_of_32_bytes_only() {
        let (_, text) = MasterKey::generate().unwrap();
        assert!(MasterKey::from_base64(&text).is_ok());
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(MasterKey::from_base64(&short).unwrap_err().contains("16 bytes"));
        assert!(MasterKey::from_base64(&SecretString::from("not base64!")).is_err());
    }
}

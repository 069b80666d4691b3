//! `Vault::open` on arbitrary bytes and contexts. Mode 1 writes a known version and key id into
//! the header so the AEAD itself is reached; mode 2 checks that what `seal` makes opens, in its
//! own context only, and that any one flipped bit makes it refuse.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use notion_oauth_handler::vault::{MasterKey, Vault};
use secrecy::SecretString;

const ACTIVE: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="; // 32 bytes of 42
const PREVIOUS: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="; // 32 bytes of 7

struct Fixture {
    vault: Vault,
    ids: [[u8; 4]; 2],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = |text: &str| MasterKey::from_base64(&SecretString::from(text)).expect("a key");
    let (active, previous) = (key(ACTIVE), key(PREVIOUS));
    let ids = [active.id(), previous.id()];
    Fixture { vault: Vault::new(&active, &[previous]), ids }
});

fuzz_target!(|input: (u8, Vec<u8>, Vec<u8>)| {
    let (mode, context, mut bytes) = input;
    let fixture = &*FIXTURE;
    match mode % 3 {
        0 => {
            let _ = fixture.vault.open(&bytes, &context);
        }
        1 => {
            if bytes.len() >= 5 {
                bytes[0] = 1;
                bytes[1..5].copy_from_slice(&fixture.ids[usize::from(mode & 4 != 0)]);
            }
            let _ = fixture.vault.open(&bytes, &context);
        }
        _ => {
            let sealed = fixture.vault.seal(&bytes, &context).expect("seal");
            let opened = fixture.vault.open(&sealed, &context).expect("what seal made opens");
            assert_eq!(&**opened, &bytes[..]);
            let mut other = context.clone();
            other.push(0);
            assert!(fixture.vault.open(&sealed, &other).is_err());
            let bit = usize::from(mode) * 7 % (sealed.len() * 8);
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(fixture.vault.open(&flipped, &context).is_err());
        }
    }
});

//! Notion's answers as the library parses them: the token response (code exchange and refresh),
//! introspection and revocation. `check_token_response` in client.rs is private, so only the
//! serde types are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notion_oauth::{Introspection, Owner, Revocation, TokenResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = serde_json::from_slice::<TokenResponse>(data) {
        let _ = response.owner.kind();
        let _ = response.owner.user();
        let _ = format!("{response:?}");
        // What the handler stores: everything but the tokens.
        let _ = serde_json::to_vec(&response);
        // Every owner serializes to an object, which parses as an owner again.
        let owner = serde_json::to_vec(&response.owner).expect("an owner serializes");
        assert!(serde_json::from_slice::<Owner>(&owner).is_ok());
    }
    if let Ok(introspection) = serde_json::from_slice::<Introspection>(data) {
        let _ = serde_json::to_vec(&introspection);
    }
    if let Ok(revocation) = serde_json::from_slice::<Revocation>(data) {
        let _ = serde_json::to_vec(&revocation);
    }
});

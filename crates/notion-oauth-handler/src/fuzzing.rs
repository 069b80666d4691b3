//! Entry points for the fuzz targets in `fuzz/` (see `docs/FUZZING.md`): thin wrappers that
//! reach the crate-private parsers untrusted input meets, and nothing else. Not part of the
//! library's interface.
// Harness set-up: a fixture that cannot be built is a broken harness, and should stop loudly.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

use crate::config::Settings;
use crate::flow::CallbackParams;
use crate::links::Links;
use crate::store::{Routing, SqlStore, Store};

/// Parses `input` as the query string of `/callback`, discarding the result.
pub fn callback_query(input: &str) {
    let _ = CallbackParams::parse(Some(input));
}

/// Two readers of `/connect`'s query over one SQLite store: one that accepts plain links and
/// one that requires them signed. Both trust `https://app.example.com` for `return_to` and
/// check signatures with [`ConnectLinkHarness::LINK_SECRET`].
pub struct ConnectLinkHarness {
    runtime: tokio::runtime::Runtime,
    plain: Links,
    strict: Links,
}

impl std::fmt::Debug for ConnectLinkHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectLinkHarness").finish_non_exhaustive()
    }
}

impl ConnectLinkHarness {
    /// The secret connect links are signed with.
    pub const LINK_SECRET: &str = "fuzzing-link-secret-0123456789abcdef";

    /// The harness, with its database (`connect.db`) in `dir`, which must exist and outlive it.
    ///
    /// # Panics
    /// When the configuration or the store cannot be built.
    pub fn new(dir: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let links = |require_signed_ref: bool, db: &str| {
            let mut settings = Settings::default();
            settings.server.public_url = Some("https://noh.example.com".into());
            settings.notion.client_id = Some("4a1e0f4e-0000-4000-8000-000000000001".into());
            settings.notion.client_secret =
                Some(SecretString::from("secret_fuzzing_client_secret_value_123"));
            settings.security.master_key = Some(SecretString::from(STANDARD.encode([42u8; 32])));
            settings.storage.url = format!("sqlite://{}", dir.join(db).display());
            settings.connect.return_to_origins = vec!["https://app.example.com".into()];
            settings.connect.require_signed_ref = require_signed_ref;
            settings.connect.link_secret = Some(SecretString::from(Self::LINK_SECRET));
            let config = settings.validate(dir).expect("a valid fuzzing configuration");
            let store: Arc<dyn Store> = Arc::new(
                runtime
                    .block_on(SqlStore::connect(&config.storage_url, Routing::none()))
                    .expect("a SQLite store"),
            );
            Links::new(&config, store)
        };
        let plain = links(false, "plain.db");
        let strict = links(true, "strict.db");
        Self { runtime, plain, strict }
    }

    /// Reads `input` as `/connect`'s query with both readers, discarding the results.
    pub fn read(&self, input: &str) {
        self.runtime.block_on(async {
            let _ = self.plain.read(Some(input)).await;
            let _ = self.strict.read(Some(input)).await;
        });
    }
}

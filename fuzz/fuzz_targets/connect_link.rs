//! `/connect`'s query parser (`Links::read`, through `notion_oauth_handler::fuzzing`), with a
//! reader that accepts plain links and one that requires signed ones, over a SQLite store in a
//! temporary directory (one-time links look their digest up there).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use notion_oauth_handler::fuzzing::ConnectLinkHarness;

static HARNESS: LazyLock<(tempfile::TempDir, ConnectLinkHarness)> = LazyLock::new(|| {
    let dir = tempfile::Builder::new().prefix("noh-fuzz-connect-").tempdir().expect("a temp dir");
    let harness = ConnectLinkHarness::new(dir.path());
    (dir, harness)
});

fuzz_target!(|input: &str| {
    HARNESS.1.read(input);
});

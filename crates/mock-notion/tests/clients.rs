//! Client code nobody here wrote, run against the emulator over loopback: the Django + oauthlib
//! tutorial's views (Django, oauthlib and requests from PyPI) and Notion's official JS SDK
//! (`@notionhq/client` from npm, in `tests/clients/node_modules`). Without them a test says so
//! and passes on a laptop; under `CI=true` (where `.ci/run` installs them) it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mock_notion::{Emulator, EmulatorConfig, Endpoint, RunningEmulator};
use serde_json::Value;

const CLIENT_ID: &str = "8a1c8a8e-0000-4000-8000-00000000c11e";
const CLIENT_SECRET: &str = "secret_third_party_clients";
const REDIRECT_URI: &str = "http://localhost:8000/notion/redirect";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Gives up on a test whose client is not installed; under `CI=true` fails it instead. The
/// skip goes on the list `./run-tests` prints (the same as the server's tests do).
fn skip(what: &str) -> bool {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} is required under CI=true");
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("SKIPPED: {test}: {what} (.ci/run installs it)");
    if let Ok(path) = std::env::var("NOH_SKIPPED_FILE") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{test}: {what}");
        }
    }
    true
}

async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        ..EmulatorConfig::default()
    };
    Emulator::spawn(config, "127.0.0.1:0").await.unwrap()
}

/// Runs `program script` with the emulator's address, returning the JSON it prints.
async fn run(program: &str, script: &str, emulator: &RunningEmulator) -> Value {
    let mut command = Command::new(program);
    command
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .env("NOTION_BASE", emulator.base_url())
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", REDIRECT_URI);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    eprintln!("{script} printed: {stdout}");
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{script} printed no JSON ({error}):\n{stdout}\n{stderr}"))
}

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[tokio::test]
async fn the_django_oauthlib_tutorial_completes_a_flow_without_owner() {
    if !python_has("django, oauthlib, requests") && skip("python3 with Django, oauthlib, requests")
    {
        return;
    }
    let running = emulator().await;
    let out = run("python3", "django_tutorial.py", &running).await;
    let authorize = out["authorize"].as_str().unwrap();
    assert!(!authorize.contains("owner="), "oauthlib sends no owner: {authorize}");
    assert_eq!(out["start_status"], 302);
    assert_eq!(out["consent_status"], 302);
    assert_eq!(out["callback_status"], 200, "{out}");
    assert_eq!(out["token_type"], "bearer");
    assert_eq!(out["has_access_token"], true);
    assert_eq!(out["workspace_name"], "Acme Corp");
    // The exchange the tutorial makes: a form body (pre-encoded by oauthlib, so requests sends
    // no Content-Type at all), HTTP Basic.
    let exchanges = running.emulator.requests_to(Endpoint::Token);
    assert_eq!(exchanges.len(), 1);
    let exchange = &exchanges[0];
    assert_eq!(exchange.content_type, None);
    assert!(exchange.header("authorization").is_some_and(|h| h.starts_with("Basic ")));
    assert!(exchange.body.contains("grant_type=authorization_code"));
}

#[tokio::test]
async fn notions_js_sdk_exchanges_refreshes_searches_the_picked_pages_retries_429_and_revokes() {
    let sdk = clients_dir().join("node_modules/@notionhq/client");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if (!node || !sdk.exists()) && skip("node and @notionhq/client (npm ci in tests/clients)") {
        return;
    }
    let running = emulator().await;
    let out = run("node", "notion_sdk.mjs", &running).await;
    assert_eq!(out["token"]["token_type"], "bearer");
    assert_eq!(out["token"]["workspace_name"], "Acme Corp");
    assert_eq!(out["refreshed_same_bot"], true);
    assert_eq!(out["introspect_active"], true);
    assert_eq!(out["old_token_active"], false);
    assert_eq!(out["me_is_bot"], true);
    assert_eq!(
        out["search"],
        serde_json::json!({"object": "list", "has_more": true, "results": 2})
    );
    assert_eq!(
        out["paginated"],
        serde_json::json!(["data_source", "page", "page", "page", "page"]),
        "the five picked objects, over three pages"
    );
    assert_eq!(
        out["page_titles"],
        serde_json::json!(["Getting Started", "OKRs", "Roadmap 2026", "Team Wiki"])
    );
    assert_eq!(out["retrieved"], true);
    assert_eq!(out["unshared"], "object_not_found");
    // The SDK waited the Retry-After second, then succeeded.
    assert!(out["retried_429_after_ms"].as_u64().unwrap() >= 900, "{out}");
    assert!(out["retried_529_after_ms"].as_u64().unwrap() >= 900, "{out}");
    assert_eq!(out["no_retry"], "rate_limited");
    assert_eq!(out["active_after_revoke"], false);
    assert_eq!(out["me_after_revoke"], "unauthorized");
    let me_calls = running.emulator.requests_to(Endpoint::UsersMe);
    assert_eq!(
        me_calls.len(),
        5,
        "two calls, a 429 and its retry, one without retry, one after revoke"
    );
}

//! A real browser through the whole flow: headless Chromium driven over WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says so and passes on a laptop, but fails under `CI=true`, where skipping would hide a
//! missing install step.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{eventually, http, spawn_app};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Starts chromedriver and a WebDriver session, or `None` where the browser may be absent.
async fn browser() -> Option<(fantoccini::Client, tokio::process::Child, tempfile::TempDir)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    if !Path::new(&chromium).exists() || !Path::new(&chromedriver).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{chromium} or {chromedriver} is missing: install Debian's chromium and chromium-driver"
        );
        eprintln!("SKIPPED: no {chromium} or {chromedriver} on this machine (CI installs them)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = tokio::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let webdriver = format!("http://127.0.0.1:{port}");
    let status = format!("{webdriver}/status");
    eventually("chromedriver answering", Duration::from_secs(10), || async {
        http().build().unwrap().get(&status).send().await.ok().map(drop)
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // The machine has no network beyond loopback: these keep Chromium from reaching out.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1000,800", format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .unwrap();
    Some((client, driver, profile))
}

#[tokio::test]
async fn a_person_adds_to_notion_in_a_real_browser() {
    let Some((browser, _driver, _profile)) = browser().await else { return };
    let app = spawn_app().await;

    // The landing page's button leads to the emulator's consent page.
    browser.goto(&format!("{}/", app.address)).await.unwrap();
    browser.find(Locator::Id("add-to-notion")).await.unwrap().click().await.unwrap();
    let consent = browser.wait().for_element(Locator::Id("consent")).await.unwrap();
    assert!(consent.text().await.unwrap().contains("Allow access"));

    // The person picks a workspace and allows access.
    let user = browser.find(Locator::Id("user")).await.unwrap();
    user.clear().await.unwrap();
    user.send_keys("Grace Hopper").await.unwrap();
    browser
        .find(Locator::Id("workspace"))
        .await
        .unwrap()
        .select_by_value("Personal")
        .await
        .unwrap();
    browser.find(Locator::Id("allow")).await.unwrap().click().await.unwrap();

    // Back on our success page, which names the workspace; the connection is stored.
    let outcome = browser.wait().for_element(Locator::Id("outcome")).await.unwrap();
    assert_eq!(outcome.text().await.unwrap(), "Connected to Personal");
    let screenshot = browser.screenshot().await.unwrap();
    let _ = std::fs::write(std::env::temp_dir().join("noh-success.png"), screenshot);
    let connections = app.connections().await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].workspace_name.as_deref(), Some("Personal"));
    assert_eq!(connections[0].owner_name.as_deref(), Some("Grace Hopper"));

    // Cancelling instead says so, and "Try again" returns to the consent page.
    browser.goto(&format!("{}/", app.address)).await.unwrap();
    browser.find(Locator::Id("add-to-notion")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("cancel")).await.unwrap().click().await.unwrap();
    let outcome = browser.wait().for_element(Locator::Id("outcome")).await.unwrap();
    assert_eq!(outcome.text().await.unwrap(), "Access was not granted");
    browser.find(Locator::Id("try-again")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("consent")).await.unwrap();
    assert_eq!(app.connections().await.len(), 1, "cancelling stored nothing");

    browser.close().await.unwrap();
}

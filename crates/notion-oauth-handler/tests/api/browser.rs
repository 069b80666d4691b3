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

use crate::helpers::{TestOptions, eventually, http, spawn_app, spawn_app_with};
use notion_oauth_handler::config::BrandingSettings;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Starts chromedriver and a WebDriver session, or `None` where the browser may be absent.
async fn browser() -> Option<(fantoccini::Client, tokio::process::Child, tempfile::TempDir)> {
    browser_in(Scheme::Light).await
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scheme {
    Light,
    Dark,
}

async fn browser_in(
    scheme: Scheme,
) -> Option<(fantoccini::Client, tokio::process::Child, tempfile::TempDir)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    if !Path::new(&chromium).exists() || !Path::new(&chromedriver).exists() {
        crate::helpers::skip(&format!(
            "no {chromium} or {chromedriver} (apt-get install chromium chromium-driver)"
        ));
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
                     "--window-size=1000,800", format!("--user-data-dir={}", profile.path().display()),
                     // Chromium's dark theme, which pages see as prefers-color-scheme: dark.
                     if scheme == Scheme::Dark { "--force-dark-mode" } else { "--no-default-browser-check" }],
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

const AXE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules/axe-core/axe.min.js");

/// Audits the page the browser shows: the colour scheme it was asked for, no axe-core
/// violation, no sideways scrolling; then keeps a screenshot.
async fn audit(
    browser: &fantoccini::Client,
    axe: &str,
    shots: &Path,
    name: &str,
    label: &str,
    scheme: Scheme,
) {
    let dark = browser
        .execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![])
        .await
        .unwrap();
    assert_eq!(dark, json!(scheme == Scheme::Dark), "the browser's colour scheme");
    let found = violations(browser, axe).await;
    assert!(
        found.is_empty(),
        "{name} ({label}): {}",
        serde_json::to_string_pretty(&found).unwrap()
    );
    let sideways = browser
        .execute("return document.documentElement.scrollWidth > window.innerWidth", vec![])
        .await
        .unwrap();
    assert_eq!(sideways, json!(false), "{name} ({label}) scrolls sideways");
    let shot = browser.screenshot().await.unwrap();
    std::fs::write(shots.join(format!("{name}-{label}.png")), shot).unwrap();
}

/// axe-core's WCAG 2.2 A and AA violations on the page the browser shows.
async fn violations(browser: &fantoccini::Client, axe: &str) -> Vec<serde_json::Value> {
    browser.execute(axe, vec![]).await.unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag',
                 values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } })
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))))
               .catch(e => done([{ id: 'axe-failed', help: String(e) }]));",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

/// Every page a visitor can see, audited by axe-core at WCAG 2.2 AA in light and dark, at a
/// phone's width and a desktop's, with and without the app's branding; each also must not
/// scroll sideways at 320 px. Screenshots go to `target/screenshots/` (CI keeps them).
#[tokio::test]
async fn every_page_passes_an_accessibility_audit_in_light_and_dark_on_phone_and_desktop() {
    if !std::path::Path::new(AXE).exists() {
        crate::helpers::skip(
            "axe-core is not installed (npm ci --prefix crates/notion-oauth-handler/tests/browser)",
        );
        return;
    }
    let axe = std::fs::read_to_string(AXE).unwrap();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let logo = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 2 2"><rect width="2" height="2" rx=".4" fill="#7b2ff7"/></svg>"##;
    let branded = spawn_app_with(TestOptions {
        branding: BrandingSettings {
            app_name: Some("Acme Notes".into()),
            logo: Some("logo.svg".into()),
            accent_color: Some("#ffcc00".into()),
            support_url: Some("mailto:help@acme.example".into()),
            app_url: Some("https://app.example.com/".into()),
        },
        files: vec![
            ("logo.svg", logo.to_vec()),
            ("privacy.html", include_bytes!("../../init/privacy.html").to_vec()),
        ],
        ..TestOptions::default()
    })
    .await;
    let plain = spawn_app().await;

    for scheme in [Scheme::Light, Scheme::Dark] {
        let Some((browser, _driver, _profile)) = browser_in(scheme).await else { return };
        for (app_name, app) in [("branded", &branded), ("plain", &plain)] {
            // The pages any address reaches; the flow's own pages come below.
            let mut pages = vec![
                ("landing", format!("{}/", app.address)),
                ("not-found", format!("{}/nowhere", app.address)),
                ("error", format!("{}/callback?code=c&state=forged", app.address)),
            ];
            if app_name == "branded" {
                pages.push(("privacy", format!("{}/privacy", app.address)));
            }
            for (width, height) in [(390, 844), (1280, 800), (320, 640)] {
                browser.set_window_size(width, height).await.unwrap();
                let label = format!("{app_name}-{scheme:?}-{width}").to_lowercase();
                for (name, url) in &pages {
                    browser.goto(url).await.unwrap();
                    audit(&browser, &axe, &shots, name, &label, scheme).await;
                }
                // The success page (with what was shared), its reload, and the denied page,
                // reached the way a person reaches them.
                browser.goto(&format!("{}/", app.address)).await.unwrap();
                browser.find(Locator::Id("add-to-notion")).await.unwrap().click().await.unwrap();
                browser
                    .wait()
                    .for_element(Locator::Id("allow"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                browser.wait().for_element(Locator::Id("shared")).await.unwrap();
                audit(&browser, &axe, &shots, "success", &label, scheme).await;
                browser.refresh().await.unwrap();
                browser.wait().for_element(Locator::Css("[data-reloaded]")).await.unwrap();
                audit(&browser, &axe, &shots, "success-reloaded", &label, scheme).await;
                browser.goto(&format!("{}/", app.address)).await.unwrap();
                browser.find(Locator::Id("add-to-notion")).await.unwrap().click().await.unwrap();
                browser
                    .wait()
                    .for_element(Locator::Id("cancel"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                browser.wait().for_element(Locator::Id("outcome")).await.unwrap();
                audit(&browser, &axe, &shots, "denied", &label, scheme).await;
            }
        }
        browser.close().await.unwrap();
    }
}

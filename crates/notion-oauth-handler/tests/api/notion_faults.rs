//! Notion failing during the code exchange: a page in the visitor's words with Notion's request
//! id, the right status, and nothing stored.

use std::time::{Duration, Instant};

use mock_notion::{EmulatorConfig, Endpoint, ErrorShape, Fault};

use crate::helpers::{
    Browser, CLIENT_SECRET, Page, TestApp, TestOptions, eventually, spawn_app, spawn_app_with,
};

/// Runs a flow whose exchange meets `fault`, returning the callback page.
async fn flow_with_fault(app: &TestApp, fault: Option<Fault>) -> Page {
    if let Some(fault) = fault {
        app.emulator().set_fault(Endpoint::Token, fault);
    }
    app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await
}

fn request_id_on(page: &Page) -> Option<String> {
    let rest = page.body.split("id=\"request-id\">").nth(1)?;
    Some(rest.split('<').next()?.to_owned())
}

fn error(status: u16, code: &str) -> Fault {
    Fault::Error { status, code: code.into(), message: format!("emulated {code}") }
}

#[tokio::test]
async fn exchange_failures_each_get_their_own_page_and_store_nothing() {
    let cases = [
        (error(400, "invalid_grant"), 400, "code_rejected"),
        (error(401, "invalid_client"), 502, "integration_misconfigured"),
        (error(500, "internal_server_error"), 502, "notion_unavailable"),
        (error(503, "service_unavailable"), 502, "notion_unavailable"),
        (Fault::NonJson, 502, "notion_garbled"),
        (Fault::MissingFields, 502, "notion_garbled"),
    ];
    for (fault, status, reason) in cases {
        let app = spawn_app().await;
        let description = format!("{fault:?}");

        let page = flow_with_fault(&app, Some(fault)).await;

        assert_eq!((page.status, page.reason()), (status, reason), "{description}: {}", page.body);
        assert_eq!(app.token_requests(), 1, "{description}: one exchange, never retried");
        assert!(app.connections().await.is_empty(), "{description}: nothing stored");
        let request_id = request_id_on(&page);
        assert!(
            request_id.as_ref().is_some_and(|id| id.len() >= 32),
            "{description}: Notion's request id is shown: {}",
            page.body
        );
        assert!(!page.body.contains(CLIENT_SECRET));
        assert!(
            !page.body.contains("emulated"),
            "Notion's raw message goes to the log, not the page"
        );
    }
}

#[tokio::test]
async fn errors_in_notions_api_shape_are_read_the_same_way() {
    let app = spawn_app_with(TestOptions {
        emulator: EmulatorConfig { error_shape: ErrorShape::Notion, ..EmulatorConfig::default() },
        ..TestOptions::default()
    })
    .await;

    let page = flow_with_fault(&app, Some(error(400, "invalid_grant"))).await;

    assert_eq!((page.status, page.reason()), (400, "code_rejected"));
    assert!(request_id_on(&page).is_some());
}

#[tokio::test]
async fn a_rotated_client_secret_is_reported_as_misconfiguration() {
    let app = spawn_app().await;
    app.emulator().set_client_secret("secret_rotated_in_the_portal");

    let page = flow_with_fault(&app, None).await;

    assert_eq!((page.status, page.reason()), (502, "integration_misconfigured"));
    assert!(app.connections().await.is_empty());
}

#[tokio::test]
async fn a_notion_slower_than_the_timeout_gets_a_504_in_time() {
    let app = spawn_app_with(TestOptions { timeout_seconds: 1, ..TestOptions::default() }).await;
    let started = Instant::now();

    let page = flow_with_fault(&app, Some(Fault::Delay(Duration::from_secs(5)))).await;

    assert_eq!((page.status, page.reason()), (504, "notion_timeout"));
    assert!(started.elapsed() < Duration::from_secs(4), "the client gave up at its timeout");
    assert!(app.connections().await.is_empty());
}

#[tokio::test]
async fn notion_unreachable_is_reported_as_unavailable() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    app.notion.stop();
    // Wait until nothing listens on the emulator's port any more.
    eventually("the emulator's port closing", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(app.notion.addr).await.is_err().then_some(())
    })
    .await;
    assert!(tokio::net::TcpStream::connect(app.notion.addr).await.is_err());

    let page = app.callback(&browser, callback.as_str()).await;

    assert_eq!((page.status, page.reason()), (502, "notion_unavailable"));
    assert!(app.connections().await.is_empty());
}

#[tokio::test]
async fn after_a_failed_exchange_starting_again_works() {
    let app = spawn_app().await;
    app.emulator().set_fault_times(Endpoint::Token, error(500, "internal_server_error"), 1);
    let browser = Browser::new();
    assert_eq!(app.add_to_notion(&browser, "Ada Lovelace", None).await.status, 502);

    let page = app.add_to_notion(&browser, "Ada Lovelace", None).await;

    assert_eq!((page.status, page.reason()), (200, "created"));
    assert_eq!(app.connections().await.len(), 1);
}

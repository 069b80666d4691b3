//! What a hostile visitor or a careless client can do with requests anyone may send.

use crate::helpers::{Browser, TestOptions, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_head_request_uses_up_neither_a_state_nor_a_link() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;

    // Link checkers and previewers send HEAD first.
    let head = browser.client.head(callback.as_str()).send().await.unwrap();
    let connect = browser.client.head(format!("{}/connect", app.address)).send().await.unwrap();

    for (what, answer) in [("callback", &head), ("connect", &connect)] {
        assert_eq!(answer.status().as_u16(), 405, "HEAD {what}");
        assert_eq!(answer.headers()["allow"], "GET", "HEAD {what}");
        assert!(answer.headers().get("set-cookie").is_none(), "HEAD {what} set a cookie");
    }
    assert_eq!(app.token_requests(), 0, "HEAD /callback reached Notion");
    let page = app.callback(&browser, callback.as_str()).await;
    assert_eq!((page.status, page.reason()), (200, "created"), "{}", page.body);
}

#[tokio::test]
async fn an_error_on_the_callback_is_believed_only_with_this_browsers_state() {
    let app = spawn_app().await;
    let browser = Browser::new();

    // Anyone can type this: it is a bad request, not Notion failing.
    let typed = app.callback_with_query(&browser, "error=server_error&state=").await;
    let forged = app.callback_with_query(&browser, "error=server_error&state=abc.def").await;

    for page in [&typed, &forged] {
        assert_eq!((page.status, page.reason()), (400, "unknown_flow"), "{}", page.body);
        assert!(!page.body.contains("server_error"), "the visitor's words are not shown");
    }
    // The same error in a flow this browser started is Notion's, and reported as such.
    let authorize = app.connect(&browser, None).await;
    let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let query = format!("error=server_error&state={}", urlencode(&state));
    let real = app.callback_with_query(&browser, &query).await;
    assert_eq!((real.status, real.reason()), (502, "notion_error"), "{}", real.body);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn every_answer_carries_the_headers_that_keep_browsers_from_misreading_it() {
    let app = spawn_app_with(TestOptions {
        public_url: Some("https://oauth.example.com"),
        ..TestOptions::default()
    })
    .await;
    let browser = Browser::new();
    let key = app.api_key().await;

    let landing = browser.get(&format!("{}/", app.address)).await;
    let document = browser.get(&format!("{}/privacy", app.address)).await;
    let listed = browser
        .client
        .get(format!("{}/api/v1/connections", app.address))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let refused = browser.get(&format!("{}/api/v1/connections", app.address)).await;

    for (what, answer) in
        [("page", &landing), ("document", &document), ("API", &listed), ("401", &refused)]
    {
        let headers = answer.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["strict-transport-security"], "max-age=31536000", "{what}");
    }
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(document.headers()["x-frame-options"], "DENY");
    // Over plain http (localhost development) there is nothing to pin.
    let local = spawn_app().await;
    let page = browser.get(&format!("{}/", local.address)).await;
    assert!(page.headers().get("strict-transport-security").is_none());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.connected("Ada Lovelace", None).await;
    for name in ["connections.db", "connections.db-wal"] {
        let path = app.dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
}

#[tokio::test]
async fn a_database_file_deleted_under_the_server_fails_readiness_and_every_write() {
    let app = spawn_app().await;
    let browser = Browser::new();
    app.connected("Ada Lovelace", None).await;
    let readyz = format!("{}/readyz", app.address);
    assert_eq!(browser.get(&readyz).await.status().as_u16(), 200);

    let file = app.dir.path().join("connections.db");
    std::fs::remove_file(&file).unwrap();

    let ready = browser.get(&readyz).await;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    // No success page for a connection that would vanish at the next restart.
    let page = app.add_to_notion(&browser, "Grace Hopper", None).await;
    assert_eq!(page.status, 500, "{}", page.body);
    assert!(page.body.contains("Nothing was saved"), "{}", page.body);
    assert!(!file.exists(), "the database was silently made again, empty");
}

//! The browser afterwards (return_to, redirect templates) and links to /connect the app vouches
//! for (signed links, one-time links).

use notion_oauth_handler::config::ConnectSettings;
use secrecy::SecretString;
use url::Url;

use crate::helpers::{Browser, TestApp, TestOptions, http, query_param, spawn_app_with};

const APP: &str = "https://app.example.com";
const LINK_SECRET: &str = "link-secret-0123456789abcdef0123456789";

fn connect_settings() -> ConnectSettings {
    ConnectSettings {
        return_to_origins: vec![APP.into()],
        link_secret: Some(SecretString::from(LINK_SECRET)),
        ..ConnectSettings::default()
    }
}

async fn app_with(connect: ConnectSettings) -> TestApp {
    spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await
}

/// Runs a flow from `/connect?{query}` with `decision`, returning the callback's response.
async fn flow(app: &TestApp, query: &str, decision: &str) -> reqwest::Response {
    let browser = Browser::new();
    let started = browser.get(&format!("{}/connect?{query}", app.address)).await;
    assert_eq!(started.status().as_u16(), 302, "{}", started.text().await.unwrap());
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, decision, "Ada Lovelace").await;
    browser.get(back.as_str()).await
}

fn location(response: &reqwest::Response) -> Url {
    assert_eq!(response.status().as_u16(), 303);
    Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

async fn refused(app: &TestApp, query: &str) -> (u16, String) {
    let response = Browser::new().get(&format!("{}/connect?{query}", app.address)).await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let reason = body
        .split("data-reason=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned();
    (status, reason)
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn return_to_brings_the_browser_back_with_the_outcome() {
    let app = app_with(connect_settings()).await;
    let return_to = encode("https://app.example.com/notion/done?session=7");

    let connected = location(&flow(&app, &format!("ref=ada&return_to={return_to}"), "allow").await);
    let denied = location(&flow(&app, &format!("ref=ada&return_to={return_to}"), "deny").await);

    assert_eq!(connected.origin().ascii_serialization(), APP);
    assert_eq!(connected.path(), "/notion/done");
    assert_eq!(query_param(&connected, "session").as_deref(), Some("7"));
    let bot = &app.connections().await[0];
    assert_eq!(query_param(&connected, "bot_id"), Some(bot.bot_id.to_string()));
    assert_eq!(query_param(&connected, "workspace_id"), Some(bot.workspace_id.to_string()));
    assert_eq!(query_param(&connected, "ref").as_deref(), Some("ada"));
    assert_eq!(query_param(&connected, "outcome").as_deref(), Some("created"));
    assert_eq!(query_param(&denied, "outcome").as_deref(), Some("denied"));
    assert_eq!(query_param(&denied, "ref").as_deref(), Some("ada"));
}

#[tokio::test]
async fn return_to_outside_the_allowed_origins_is_refused_however_it_is_dressed() {
    let app = app_with(connect_settings()).await;
    for bypass in [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "https://app.example.com.evil.com/",
        "https://app.example.com@evil.com/",
        "https://evil.com\\@app.example.com/",
        "https:/\\evil.com",
        "https://app.example.com%2F@evil.com/",
        "https://evil.com#@app.example.com",
        "javascript:alert(document.domain)",
        "http://app.example.com/",
        "https://app.example.com:8443/",
        "\thttps://evil.com",
        "/dashboard",
    ] {
        let (status, reason) = refused(&app, &format!("return_to={}", encode(bypass))).await;
        assert_eq!((status, reason.as_str()), (400, "return_to_not_allowed"), "{bypass}");
    }
    // Double-encoded: decoded once by the query parser, it is still not a URL at the app.
    let (status, _) = refused(&app, "return_to=https%253A%252F%252Fevil.com").await;
    assert_eq!(status, 400);
    let none_allowed = app_with(ConnectSettings::default()).await;
    let (status, reason) =
        refused(&none_allowed, &format!("return_to={}", encode("https://app.example.com/"))).await;
    assert_eq!((status, reason.as_str()), (400, "return_to_not_allowed"));
}

#[tokio::test]
async fn redirect_templates_replace_our_pages() {
    let app = app_with(ConnectSettings {
        success_redirect: Some(
            "https://app.example.com/done?bot={bot_id}&ws={workspace_id}&ref={ref}&o={outcome}"
                .into(),
        ),
        denied_redirect: Some("https://app.example.com/denied?ref={ref}".into()),
        ..ConnectSettings::default()
    })
    .await;

    let connected = location(&flow(&app, "ref=a%26b", "allow").await);
    let denied = location(&flow(&app, "ref=grace", "deny").await);

    assert_eq!(connected.path(), "/done");
    assert_eq!(
        query_param(&connected, "ref").as_deref(),
        Some("a&b"),
        "values are URL-encoded into the template"
    );
    assert_eq!(query_param(&connected, "o").as_deref(), Some("created"));
    assert_eq!(query_param(&connected, "bot"), Some(app.connections().await[0].bot_id.to_string()));
    assert_eq!(denied.as_str(), "https://app.example.com/denied?ref=grace");
}

fn signed_query(reference: &str, return_to: &str, expires: i64) -> String {
    let secret = SecretString::from(LINK_SECRET);
    let sig =
        notion_oauth_handler::signatures::connect_link(&secret, reference, return_to, expires);
    format!("ref={}&return_to={}&expires={expires}&sig={sig}", encode(reference), encode(return_to))
}

#[tokio::test]
async fn signed_links_are_required_when_configured_and_checked() {
    let app = app_with(ConnectSettings { require_signed_ref: true, ..connect_settings() }).await;
    let now = notion_oauth_handler::store::now();
    let return_to = "https://app.example.com/back";

    // Valid: the ref arrives with the connection.
    let back = location(&flow(&app, &signed_query("user-42", return_to, now + 600), "allow").await);
    assert_eq!(query_param(&back, "ref").as_deref(), Some("user-42"));
    assert_eq!(app.connections().await[0].reference.as_deref(), Some("user-42"));

    // Tampered, expired, unsigned, unconfigured.
    let tampered = signed_query("user-42", return_to, now + 600).replace("user-42", "user-43");
    assert_eq!(refused(&app, &tampered).await, (400, "invalid_link".into()));
    assert_eq!(
        refused(&app, &signed_query("user-42", return_to, now - 1)).await,
        (400, "expired_link".into())
    );
    assert_eq!(refused(&app, "ref=user-42").await, (400, "unsigned_link".into()));
    let garbled = format!("{}0", signed_query("user-42", return_to, now + 600));
    assert_eq!(refused(&app, &garbled).await, (400, "invalid_link".into()));
    // A link without a ref binds nobody: it still works.
    assert_eq!(
        Browser::new().get(&format!("{}/connect", app.address)).await.status().as_u16(),
        302
    );
    // The signature vouches for the origin too, but return_to is still checked.
    let elsewhere = signed_query("user-42", "https://evil.com/", now + 600);
    assert_eq!(refused(&app, &elsewhere).await, (400, "return_to_not_allowed".into()));
    let unconfigured = app_with(ConnectSettings::default()).await;
    assert_eq!(
        refused(&unconfigured, &signed_query("u", "", now + 600)).await,
        (400, "invalid_link".into())
    );
}

#[tokio::test]
async fn the_documented_python_recipe_makes_links_the_server_accepts() {
    let app = app_with(ConnectSettings { require_signed_ref: true, ..connect_settings() }).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/connect-links/sign.py");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        readme.contains(std::fs::read_to_string(script).unwrap().trim()),
        "the README shows sign.py as tested"
    );
    let output = std::process::Command::new("python3")
        .arg(script)
        .env("BASE", &app.address)
        .env("LINK_SECRET", LINK_SECRET)
        .env("REF", "from-python")
        .env("RETURN_TO", "https://app.example.com/done")
        .output();
    let Ok(output) = output else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is needed");
        return;
    };
    let link = String::from_utf8(output.stdout).unwrap();
    let query = link.trim().split_once('?').unwrap().1.to_owned();
    let back = location(&flow(&app, &query, "allow").await);
    assert_eq!(query_param(&back, "ref").as_deref(), Some("from-python"));
}

#[tokio::test]
async fn one_time_links_from_the_api_work_once() {
    let app = app_with(connect_settings()).await;
    let api = app.api().await;
    let made = http()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/connect-links", app.address))
        .bearer_auth(app.api_key().await)
        .json(&serde_json::json!({ "ref": "one-time", "return_to": "https://app.example.com/x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let made: serde_json::Value = made.json().await.unwrap();
    let url = made["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1.to_owned();

    let back = location(&flow(&app, &query, "allow").await);

    assert_eq!(query_param(&back, "ref").as_deref(), Some("one-time"));
    assert_eq!(refused(&app, &query).await, (400, "used_link".into()), "the second use");
    assert_eq!(refused(&app, "link=not-a-real-token").await, (400, "used_link".into()));
    assert_eq!(refused(&app, &format!("{query}&ref=other")).await, (400, "invalid_link".into()));
    // Bad requests to the API.
    for body in [
        serde_json::json!({ "return_to": "https://evil.com/" }),
        serde_json::json!({ "ttl_seconds": 5 }),
        serde_json::json!({ "ref": "x".repeat(300) }),
        serde_json::json!({ "unknown": 1 }),
    ] {
        let response = http()
            .build()
            .unwrap()
            .post(format!("{}/api/v1/connect-links", app.address))
            .bearer_auth(app.api_key().await)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body}");
    }
    let _ = api;
}

#[tokio::test]
async fn a_link_too_long_to_travel_through_notion_is_refused_before_notion() {
    let app = app_with(connect_settings()).await;
    // Within the 1024-byte limit as written, but three times longer once percent-encoded.
    let return_to = format!("https://app.example.com/{}", "\u{e9}".repeat(480));
    let reference = "\u{1F600}".repeat(256);
    let (status, reason) =
        refused(&app, &format!("ref={}&return_to={}", encode(&reference), encode(&return_to)))
            .await;
    assert_eq!((status, reason.as_str()), (400, "link_too_long"));
    // The longest plain ref with a 1000-byte return address still fits.
    let fits = format!(
        "ref={}&return_to={}",
        encode(&"r".repeat(256)),
        encode(&format!("https://app.example.com/{}", "a".repeat(990)))
    );
    let back = location(&flow(&app, &fits, "allow").await);
    assert_eq!(query_param(&back, "ref"), Some("r".repeat(256)));
}

#[tokio::test]
async fn links_back_to_connect_are_accepted_where_signatures_are_required() {
    for with_secret in [true, false] {
        let settings = ConnectSettings {
            require_signed_ref: true,
            link_secret: if with_secret { Some(SecretString::from(LINK_SECRET)) } else { None },
            ..ConnectSettings::default()
        };
        let app = app_with(settings).await;
        let api = app.api().await;
        let query = fresh_link_for_user_9(&app, with_secret).await;

        // The denied page's retry link works.
        let denied = flow(&app, &query, "deny")
            .await
            .text()
            .await
            .unwrap()
            .replace("&#x2f;", "/")
            .replace("&amp;", "&");
        let retry = denied
            .split("id=\"try-again\" href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(
            retry.contains("ref=user-9") || retry.contains("link="),
            "the retry link carries the user: {retry}"
        );
        assert_eq!(Browser::new().get(&retry).await.status().as_u16(), 302, "retry link: {retry}");

        // The API's connect_url for a connection that needs its user works.
        let bot = {
            let connected =
                flow(&app, &fresh_link_for_user_9(&app, with_secret).await, "allow").await;
            assert_eq!(connected.status().as_u16(), 200);
            app.connections().await[0].bot_id.clone()
        };
        assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 204);
        let answer = api.get(&format!("/connections/{bot}/token")).await;
        let connect_url = answer.body["error"]["connect_url"].as_str().unwrap().to_owned();
        assert!(connect_url.contains("user-9") || connect_url.contains("link="), "{connect_url}");
        assert_eq!(
            Browser::new().get(&connect_url).await.status().as_u16(),
            302,
            "connect_url: {connect_url}"
        );
    }
}

/// A fresh link for user-9: signed, or one-time from the API (each is used up by a flow).
async fn fresh_link_for_user_9(app: &TestApp, with_secret: bool) -> String {
    if with_secret {
        return signed_query("user-9", "", notion_oauth_handler::store::now() + 600);
    }
    let made = http()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/connect-links", app.address))
        .bearer_auth(app.api_key().await)
        .json(&serde_json::json!({ "ref": "user-9" }))
        .send()
        .await
        .unwrap();
    let made: serde_json::Value = made.json().await.unwrap();
    made["url"].as_str().unwrap().split_once('?').unwrap().1.to_owned()
}

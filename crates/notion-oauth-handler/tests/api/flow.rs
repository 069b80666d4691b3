//! The "Add to Notion" flow as a browser walks it.

use base64::Engine;
use mock_notion::{EmulatorConfig, Endpoint};

use crate::helpers::{Browser, CLIENT_SECRET, TestOptions, query_param, spawn_app, spawn_app_with};

#[tokio::test]
async fn add_to_notion_stores_the_whole_connection_encrypted() {
    // Arrange
    let app = spawn_app().await;
    let browser = Browser::new();

    // Act 1: the landing page links to /connect, which sends the browser to Notion.
    let landing = browser.get(&format!("{}/", app.address)).await.text().await.unwrap();
    let authorize = app.connect(&browser, Some("customer-42")).await;

    // Assert 1: every documented parameter, the configured redirect URI, a state, a cookie.
    assert!(
        landing.contains("href=\"/connect\"") && landing.contains("Add to Notion"),
        "{landing}"
    );
    assert_eq!(authorize.path(), "/v1/oauth/authorize");
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some("4a1e0f4e-0000-4000-8000-000000000001")
    );
    assert_eq!(query_param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(&authorize, "owner").as_deref(), Some("user"));
    assert_eq!(query_param(&authorize, "redirect_uri"), Some(format!("{}/callback", app.address)));
    assert!(query_param(&authorize, "state").is_some_and(|s| s.len() > 40));
    assert!(browser.binding_cookie(&app.address).is_some());

    // Act 2: the user approves on Notion and comes back.
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let page = app.callback(&browser, callback.as_str()).await;

    // Assert 2: a success page naming the workspace, and one stored connection.
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.reason(), "created");
    assert!(page.body.contains("Connected to Acme Corp"), "{}", page.body);
    let connections = app.connections().await;
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    assert_eq!(connection.reference.as_deref(), Some("customer-42"));
    assert_eq!(connection.workspace_name.as_deref(), Some("Acme Corp"));
    assert_eq!(connection.owner_type, "user");
    assert_eq!(connection.owner_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(connection.status.as_str(), "active");

    // The stored tokens open to exactly what Notion issued, and Notion says they work.
    let tokens = app.tokens(&connection.bot_id).await;
    let access = tokens.access_token.unwrap().expose_secret().to_owned();
    let refresh = tokens.refresh_token.unwrap().expose_secret().to_owned();
    assert!(access.starts_with("ntn_") && refresh.starts_with("nrt_"));
    assert!(app.emulator().is_access_token_active(&access));
    assert!(app.emulator().is_refresh_token_active(&refresh));

    // The exchange was sent as Notion documents it: Basic auth, JSON, Notion-Version, redirect_uri.
    let exchanges = app.emulator().requests_to(Endpoint::Token);
    assert_eq!(exchanges.len(), 1);
    let exchange = &exchanges[0];
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("4a1e0f4e-0000-4000-8000-000000000001:{CLIENT_SECRET}"));
    assert_eq!(exchange.header("authorization"), Some(format!("Basic {basic}").as_str()));
    assert_eq!(exchange.header("notion-version"), Some("2026-03-11"));
    assert!(exchange.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")));
    let body: serde_json::Value = serde_json::from_str(&exchange.body).unwrap();
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], query_param(&callback, "code").unwrap());
    assert_eq!(body["redirect_uri"], format!("{}/callback", app.address));
}

#[tokio::test]
async fn the_binding_cookie_is_httponly_samesite_lax_and_scoped() {
    let app = spawn_app().await;
    let response = Browser::new().get(&format!("{}/connect", app.address)).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("noh_browser="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=660"] {
        assert!(cookie.contains(attribute), "missing {attribute}: {cookie}");
    }
    // public_url is http://127.0.0.1 here, where a Secure cookie would never come back.
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_only() {
    let app = spawn_app_with(TestOptions {
        public_url: Some("https://oauth.example.com"),
        ..TestOptions::default()
    })
    .await;
    let response = Browser::new().get(&format!("{}/connect", app.address)).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-noh_browser="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    // The redirect URI comes from public_url, not from the Host the request used.
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Foauth.example.com%2Fcallback"),
        "{location}"
    );
}

#[tokio::test]
async fn the_landing_page_passes_a_ref_on_to_its_button() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let landing =
        browser.get(&format!("{}/?ref=team%2042", app.address)).await.text().await.unwrap();
    assert!(landing.contains("href=\"/connect?ref=team%2042\""), "{landing}");
    // The landing page passes its query on as it is (viewing it must not use up a one-time
    // link); /connect, behind the button, is what refuses a bad one.
    let ambiguous =
        browser.get(&format!("{}/?ref=a&ref=b", app.address)).await.text().await.unwrap();
    assert!(ambiguous.contains("href=\"/connect?ref=a&amp;ref=b\""), "{ambiguous}");
    let refused = browser.get(&format!("{}/connect?ref=a&ref=b", app.address)).await;
    assert_eq!(refused.status().as_u16(), 400);
}

#[tokio::test]
async fn cancelling_on_notion_shows_a_way_back_and_calls_notion_never() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, Some("customer-7")).await;
    let callback = app.decide(&authorize, "deny", "Ada Lovelace").await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"));

    let page = app.callback(&browser, callback.as_str()).await;

    assert_eq!(page.status, 200);
    assert_eq!(page.reason(), "denied");
    assert!(page.body.contains("Access was not granted"));
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{}/connect?ref=customer-7\"", app.address)),
        "the retry keeps the ref: {}",
        page.body
    );
    assert_eq!(app.token_requests(), 0);
    assert!(app.connections().await.is_empty());
}

#[tokio::test]
async fn cancelling_with_the_empty_state_of_notions_example_is_understood() {
    let app = spawn_app_with(TestOptions {
        emulator: EmulatorConfig { echo_state_on_deny: false, ..EmulatorConfig::default() },
        ..TestOptions::default()
    })
    .await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "deny", "Ada Lovelace").await;
    assert!(callback.query().unwrap().ends_with("state="), "{callback}");

    let page = app.callback(&browser, callback.as_str()).await;

    assert_eq!((page.status, page.reason()), (200, "denied"));
    assert_eq!(app.token_requests(), 0);
}

#[tokio::test]
async fn reauthorizing_the_same_user_replaces_the_token_pair_in_place() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let first = app.add_to_notion(&browser, "Ada Lovelace", Some("customer-1")).await;
    assert_eq!(first.reason(), "created");
    let bot_id = app.connections().await[0].bot_id.clone();
    let old_access = app.tokens(&bot_id).await.access_token.unwrap().expose_secret().to_owned();

    let second = app.add_to_notion(&browser, "Ada Lovelace", None).await;

    assert_eq!((second.status, second.reason()), (200, "reauthorized"));
    assert!(second.body.contains("was renewed"));
    let connections = app.connections().await;
    assert_eq!(connections.len(), 1, "re-authorization must not duplicate the connection");
    assert_eq!(connections[0].bot_id, bot_id);
    assert_eq!(connections[0].authorizations, 2);
    assert_eq!(
        connections[0].reference.as_deref(),
        Some("customer-1"),
        "a flow without ref keeps the old one"
    );
    let new_access = app.tokens(&bot_id).await.access_token.unwrap().expose_secret().to_owned();
    assert_ne!(new_access, old_access);
    assert!(app.emulator().is_access_token_active(&new_access));
    assert!(
        !app.emulator().is_access_token_active(&old_access),
        "Notion minted a fresh pair; the old one is dead"
    );
}

#[tokio::test]
async fn different_users_of_one_workspace_get_a_connection_each() {
    let app = spawn_app().await;
    let (ada, grace) = (Browser::new(), Browser::new());
    assert_eq!(app.add_to_notion(&ada, "Ada Lovelace", Some("ada")).await.status, 200);
    assert_eq!(app.add_to_notion(&grace, "Grace Hopper", Some("grace")).await.status, 200);

    let connections = app.connections().await;

    assert_eq!(connections.len(), 2);
    assert_eq!(connections[0].workspace_id, connections[1].workspace_id);
    let mut refs: Vec<_> = connections.iter().map(|c| c.reference.clone().unwrap()).collect();
    refs.sort();
    assert_eq!(refs, ["ada", "grace"]);
}

#[tokio::test]
async fn two_browsers_and_two_tabs_can_run_flows_interleaved() {
    let app = spawn_app().await;
    let (a, b) = (Browser::new(), Browser::new());

    // Browser A opens two tabs, browser B one; they finish in the reverse order.
    let a1 = app.connect(&a, Some("a-tab-1")).await;
    let a2 = app.connect(&a, Some("a-tab-2")).await;
    let b1 = app.connect(&b, Some("b-tab-1")).await;
    let b1_back = app.decide(&b1, "allow", "Grace Hopper").await;
    let a2_back = app.decide(&a2, "allow", "Alan Turing").await;
    let a1_back = app.decide(&a1, "allow", "Ada Lovelace").await;

    let pages = [
        app.callback(&b, b1_back.as_str()).await,
        app.callback(&a, a2_back.as_str()).await,
        app.callback(&a, a1_back.as_str()).await,
    ];

    for page in &pages {
        assert_eq!((page.status, page.reason()), (200, "created"), "{}", page.body);
    }
    let connections = app.connections().await;
    let owner_of = |reference: &str| {
        connections
            .iter()
            .find(|c| c.reference.as_deref() == Some(reference))
            .and_then(|c| c.owner_name.clone())
    };
    assert_eq!(owner_of("a-tab-1").as_deref(), Some("Ada Lovelace"));
    assert_eq!(owner_of("a-tab-2").as_deref(), Some("Alan Turing"));
    assert_eq!(owner_of("b-tab-1").as_deref(), Some("Grace Hopper"));
}

#[tokio::test]
async fn installs_started_from_notion_are_refused_unless_allowed() {
    for allowed in [false, true] {
        let app = spawn_app_with(TestOptions {
            allow_notion_initiated: allowed,
            ..TestOptions::default()
        })
        .await;
        let browser = Browser::new();
        // Notion starts the install itself: its authorize URL has no state of ours.
        let mut authorize = app.connect(&browser, None).await;
        let pairs: Vec<(String, String)> =
            authorize.query_pairs().into_owned().filter(|(k, _)| k != "state").collect();
        authorize.query_pairs_mut().clear().extend_pairs(pairs);
        let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
        assert!(query_param(&callback, "state").is_none());

        let page = app.callback(&browser, callback.as_str()).await;

        if allowed {
            assert_eq!((page.status, page.reason()), (200, "created"));
            assert_eq!(app.connections().await.len(), 1);
        } else {
            assert_eq!((page.status, page.reason()), (400, "missing_state"));
            assert_eq!(app.token_requests(), 0, "a refused callback must not reach Notion");
            assert!(app.connections().await.is_empty());
        }
    }
}

#[tokio::test]
async fn a_notion_initiated_install_works_whether_or_not_notion_named_the_redirect_uri() {
    let app =
        spawn_app_with(TestOptions { allow_notion_initiated: true, ..TestOptions::default() })
            .await;
    let browser = Browser::new();
    // Notion's own authorize URL: no state of ours, and here no redirect_uri either, so with one
    // registered URI Notion refuses an exchange that names one.
    let mut authorize = app.connect(&browser, None).await;
    let pairs: Vec<(String, String)> = authorize
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "state" && k != "redirect_uri")
        .collect();
    authorize.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;

    let page = app.callback(&browser, callback.as_str()).await;

    assert_eq!((page.status, page.reason()), (200, "created"), "{}", page.body);
    let bodies: Vec<serde_json::Value> = app
        .emulator()
        .requests_to(Endpoint::Token)
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "one refused for its shape, one accepted");
    assert!(bodies[0].get("redirect_uri").is_some() && bodies[1].get("redirect_uri").is_none());
}

#[tokio::test]
async fn a_base_path_mounts_every_page_and_the_redirect_uri_under_it() {
    let app = spawn_app_with(TestOptions { base_path: "/notion", ..TestOptions::default() }).await;
    assert!(app.address.ends_with("/notion"));
    let browser = Browser::new();
    let page = app.add_to_notion(&browser, "Ada Lovelace", None).await;
    assert_eq!((page.status, page.reason()), (200, "created"));
    let root = app.address.trim_end_matches("/notion");
    assert_eq!(browser.get(&format!("{root}/connect")).await.status().as_u16(), 404);
    assert_eq!(browser.get(&format!("{}/healthz", app.address)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn health_readiness_and_documents_are_served() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let health = browser.get(&format!("{}/healthz", app.address)).await;
    assert_eq!(health.status().as_u16(), 200);
    let ready = browser.get(&format!("{}/readyz", app.address)).await;
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "ready");
    let privacy = browser.get(&format!("{}/privacy", app.address)).await;
    assert_eq!(privacy.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(privacy.text().await.unwrap(), "<h1>Privacy</h1>");
    let landing = browser.get(&format!("{}/", app.address)).await.text().await.unwrap();
    // minijinja escapes "/" in values; browsers read &#x2f; as "/".
    assert!(
        landing.contains("href=\"&#x2f;privacy\""),
        "pages link the hosted documents: {landing}"
    );
}

#[tokio::test]
async fn a_templates_folder_replaces_a_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("success.html"),
        r#"{% extends "base.html" %}{% block main %}<h1 id="outcome">Welcome, {{ workspace }} ({{ outcome }})</h1>{% endblock %}"#,
    )
    .unwrap();
    let app = spawn_app_with(TestOptions {
        pages: notion_oauth_handler::config::PagesSettings {
            templates_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
        ..TestOptions::default()
    })
    .await;
    let page = app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Welcome, Acme Corp (created)"), "{}", page.body);
    // The pages not overridden are still the built-in ones.
    let landing = Browser::new().get(&format!("{}/", app.address)).await.text().await.unwrap();
    assert!(landing.contains("Add to Notion"));
}

#[tokio::test]
async fn a_workspace_owned_install_without_email_or_icon_is_stored_and_the_emulators_icon_shows() {
    let app = spawn_app().await;
    // A legacy workspace-level install in a workspace without an icon.
    let browser = Browser::new();
    let mut authorize = app.connect(&browser, Some("legacy")).await;
    authorize
        .query_pairs_mut()
        .append_pair("mock_owner", "workspace")
        .append_pair("mock_workspace", "Personal");
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let page = app.callback(&browser, callback.as_str()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<img"), "no icon to show");
    // A person without email, in a workspace whose icon the emulator serves over loopback.
    let browser = Browser::new();
    let mut authorize = app.connect(&browser, Some("no-email")).await;
    authorize.query_pairs_mut().append_pair("mock_email", "0");
    let callback = app.decide(&authorize, "allow", "Grace Hopper").await;
    let response = browser.get(callback.as_str()).await;
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    // minijinja escapes `/` in attributes.
    let icon = format!("{}/_mock/icons/A.svg", app.notion.base_url()).replace('/', "&#x2f;");
    assert!(body.contains(&format!("<img src=\"{icon}\"")), "{body}");
    assert!(
        policy.contains(&format!("img-src https: data: {}", app.notion.base_url())),
        "{policy}"
    );

    let connections = app.connections().await;
    let legacy = connections.iter().find(|c| c.reference.as_deref() == Some("legacy")).unwrap();
    assert_eq!(legacy.owner_type, "workspace");
    assert_eq!(legacy.workspace_icon, None);
    let no_email = connections.iter().find(|c| c.reference.as_deref() == Some("no-email")).unwrap();
    assert_eq!((no_email.owner_type.as_str(), no_email.owner_email.as_deref()), ("user", None));
}

//! The embedding example, run for real: an existing axum app with the flow merged in.

#[allow(dead_code)]
#[path = "../../examples/embed_in_axum.rs"]
mod example;

use mock_notion::{Emulator, EmulatorConfig};
use notion_oauth_handler::config::Settings;
use secrecy::SecretString;
use url::Url;

use std::time::Duration;

use crate::helpers::{Browser, eventually, random_key};

#[tokio::test]
async fn the_embedding_example_connects_a_user_into_the_apps_own_table() {
    // Arrange: the example's app on a free port, Notion emulated.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let notion = Emulator::spawn(
        EmulatorConfig {
            redirect_uris: vec![format!("{origin}/notion/callback")],
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut settings = Settings::default();
    settings.server.public_url = Some(origin.clone());
    settings.server.base_path = "/notion".into();
    settings.notion.client_id = Some(EmulatorConfig::default().client_id);
    settings.notion.client_secret =
        Some(SecretString::from(EmulatorConfig::default().client_secret));
    settings.notion.api_base_url = notion.base_url();
    settings.storage.url = "sqlite://notion.db".into();
    settings.security.master_key = Some(SecretString::from(random_key()));
    let app_db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("app.db").display()
    ))
    .await
    .unwrap();
    let (app, embedded) = example::build(settings, dir.path(), app_db.clone()).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Act: the app's own page links to the flow; the user approves on Notion.
    let browser = Browser::new();
    let home = browser.get(&format!("{origin}/")).await.text().await.unwrap();
    assert!(home.contains("My app"), "{home}");
    let started = browser.get(&format!("{origin}/notion/connect?ref=user-1")).await;
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let mut approve = authorize.clone();
    approve.query_pairs_mut().append_pair("mock_decision", "allow");
    let back =
        browser.get(approve.as_str()).await.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&back).await.text().await.unwrap();

    // Assert: the app's page, and the hook's row in the app's own table.
    assert!(page.contains("You're all set: Acme Corp is connected."), "{page}");
    // The app's view showed its own page: Notion was not searched for a list nobody sees.
    assert_eq!(notion.emulator.requests_to(mock_notion::Endpoint::Search).len(), 0);
    let row: (String, String, bool) =
        eventually("the hook's row", Duration::from_secs(5), || async {
            sqlx::query_as("SELECT user_ref, workspace, connected FROM notion_links")
                .fetch_optional(&app_db)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(row, ("user-1".into(), "Acme Corp".into(), true));
    let home = browser.get(&format!("{origin}/")).await.text().await.unwrap();
    assert!(home.contains("user-1: Acme Corp (connected)"), "{home}");
    assert!(home.contains("token generation 1"), "the app reads the token: {home}");
    // Errors keep the built-in pages.
    let refused =
        browser.get(&format!("{origin}/notion/callback?code=x")).await.text().await.unwrap();
    assert!(refused.contains("data-reason=\"missing_state\""), "{refused}");
    embedded.shutdown().await;
}

/// Panics for connections whose ref starts with "boom"; records the others.
struct Temperamental(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl notion_oauth_handler::embed::ConnectionHook for Temperamental {
    fn on_event<'a>(
        &'a self,
        event: &'a notion_oauth_handler::embed::HookEvent,
    ) -> notion_oauth_handler::embed::HookFuture<'a> {
        Box::pin(async move {
            let reference = event.data["ref"].as_str().unwrap_or("").to_owned();
            assert!(!reference.starts_with("boom"), "a hook bug");
            self.0.lock().unwrap().push(reference);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_panicking_hook_fails_its_delivery_not_the_workers() {
    // The flow must run through the instance that registers the hook: serve it on its own port.
    let app = crate::helpers::spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    app.emulator().add_redirect_uri(&format!("{origin}/callback"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut settings = app.settings.clone();
    settings.server.public_url = Some(origin.clone());
    settings.delivery.retry_base_ms = 100;
    let config = settings.validate(app.dir.path()).unwrap();
    let embedded = notion_oauth_handler::embed::NotionOAuth::new(config)
        .with_hook("temperamental", Temperamental(seen.clone()))
        .build()
        .await
        .unwrap();
    let router = embedded.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    // Both workers meet a panicking event before the good one.
    for (user, reference) in
        [("Ada Lovelace", "boom-1"), ("Grace Hopper", "boom-2"), ("Alan Turing", "fine")]
    {
        let browser = Browser::new();
        let started = browser.get(&format!("{origin}/connect?ref={reference}")).await;
        let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
        let back = app.decide(&authorize, "allow", user).await;
        assert_eq!(browser.get(back.as_str()).await.status().as_u16(), 200);
    }

    eventually("the good event delivered", Duration::from_secs(10), || {
        std::future::ready(seen.lock().unwrap().contains(&"fine".to_owned()).then_some(()))
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), ["fine"]);
    let pending = Some(notion_oauth_handler::domain::DeliveryStatus::Pending);
    let failed = embedded.store().deliveries(pending, 10).await.unwrap();
    assert!(
        failed
            .iter()
            .any(|d| d.last_error.as_deref() == Some("the hook failed: the hook panicked")),
        "{failed:?}"
    );
    embedded.shutdown().await;
}

#[tokio::test]
async fn a_hook_name_that_clashes_is_refused() {
    let app = crate::helpers::spawn_app().await;
    struct Quiet;
    impl notion_oauth_handler::embed::ConnectionHook for Quiet {
        fn on_event<'a>(
            &'a self,
            _: &'a notion_oauth_handler::embed::HookEvent,
        ) -> notion_oauth_handler::embed::HookFuture<'a> {
            Box::pin(async { Ok(()) })
        }
    }
    for names in [vec!["command"], vec!["a b"], vec!["twice", "twice"]] {
        let config = app.settings.clone().validate(app.dir.path()).unwrap();
        let mut builder = notion_oauth_handler::embed::NotionOAuth::new(config);
        for name in &names {
            builder = builder.with_hook(name, Quiet);
        }
        let built = builder.build().await;
        assert!(
            built.as_ref().err().is_some_and(|e| e.to_string().contains("hook name")),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn an_embedded_flow_is_rate_limited_when_served_with_the_peer_address() {
    let app = crate::helpers::spawn_app().await;
    let mut settings = app.settings.clone();
    settings.rate_limit.flow_requests_per_minute = 60;
    settings.rate_limit.flow_burst = 2;
    let config = settings.validate(app.dir.path()).unwrap();
    let embedded = notion_oauth_handler::embed::NotionOAuth::new(config).build().await.unwrap();
    let serve = |with_peer: bool| {
        let router = embedded.router();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let origin = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                let _ = if with_peer {
                    let service =
                        router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                    axum::serve(listener, service).await
                } else {
                    axum::serve(listener, router).await
                };
            });
            origin
        }
    };
    let statuses = |origin: String| async move {
        let browser = Browser::new();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(browser.get(&format!("{origin}/connect")).await.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses(serve(true).await).await, [302, 302, 429, 429]);
    // Without the peer's address no client can be told from another: nothing is limited.
    assert_eq!(statuses(serve(false).await).await, [302, 302, 302, 302]);
    embedded.shutdown().await;
}

//! The embedding example, run for real: an existing axum app with the flow merged in.

#[allow(dead_code)]
#[path = "../../examples/embed_in_axum.rs"]
mod example;

use mock_notion::{Emulator, EmulatorConfig};
use notion_oauth_handler::config::Settings;
use secrecy::SecretString;
use url::Url;

use crate::helpers::{Browser, random_key};

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
    let mut row: Option<(String, String, bool)> = None;
    for _ in 0..100 {
        row = sqlx::query_as("SELECT user_ref, workspace, connected FROM notion_links")
            .fetch_optional(&app_db)
            .await
            .unwrap();
        if row.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(row, Some(("user-1".into(), "Acme Corp".into(), true)));
    let home = browser.get(&format!("{origin}/")).await.text().await.unwrap();
    assert!(home.contains("user-1: Acme Corp (connected)"), "{home}");
    // Errors keep the built-in pages.
    let refused =
        browser.get(&format!("{origin}/notion/callback?code=x")).await.text().await.unwrap();
    assert!(refused.contains("data-reason=\"missing_state\""), "{refused}");
    embedded.shutdown().await;
}

//! The same guarantees on PostgreSQL (the backend for several instances), against this
//! machine's server: the flow, encryption at rest, refresh exactly once across instances, and
//! ordered deliveries with a dead letter.

use crate::helpers::{Browser, CLIENT_SECRET, TestApp, TestOptions, postgres_url, spawn_app_with};

async fn postgres_app(mut options: TestOptions) -> Option<TestApp> {
    options.postgres = Some(postgres_url().await?);
    Some(spawn_app_with(options).await)
}

#[tokio::test]
async fn the_flow_stores_an_encrypted_connection_in_postgres() {
    let Some(app) = postgres_app(TestOptions::default()).await else { return };

    let page = app.add_to_notion(&Browser::new(), "Ada Lovelace", Some("ada")).await;
    let again = app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await;

    assert_eq!((page.status, page.reason()), (200, "created"));
    assert_eq!((again.status, again.reason()), (200, "reauthorized"));
    let connections = app.connections().await;
    assert_eq!(connections.len(), 1);
    assert_eq!(
        (connections[0].reference.as_deref(), connections[0].authorizations),
        (Some("ada"), 2)
    );
    let tokens = app.tokens(&connections[0].bot_id).await;
    assert!(app.emulator().is_access_token_active(tokens.access_token.unwrap().expose_secret()));
    // Every row of every table as text: metadata in clear, no secret.
    let mut connection =
        <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&app.storage_url)
            .await
            .unwrap();
    let mut everything = String::new();
    for table in
        ["connections", "connection_events", "outbox", "used_states", "api_keys", "connect_links"]
    {
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t"
        )))
        .fetch_all(&mut connection)
        .await
        .unwrap();
        everything.extend(rows.into_iter().map(|(row,)| row));
    }
    assert!(everything.contains("Acme Corp"));
    for secret in
        app.emulator().issued_secrets().iter().chain([&CLIENT_SECRET.to_owned(), &app.master_key])
    {
        // BYTEA columns come out as hex: look for that form too.
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !everything.contains(secret.as_str()),
            "a secret is stored in clear: {}…",
            &secret[..6]
        );
        assert!(
            !everything.contains(&hex),
            "a secret is stored in clear (as bytes): {}…",
            &secret[..6]
        );
    }
}

#[tokio::test]
async fn instances_sharing_postgres_refresh_exactly_once() {
    let Some(database) = postgres_url().await else { return };
    crate::tokens::instances_refresh_once_between_them(Some(database)).await;
}

#[tokio::test]
async fn deliveries_from_postgres_keep_their_order_through_a_dead_letter() {
    let Some(database) = postgres_url().await else { return };
    crate::deliveries::dead_letter_holds_back_later_events(Some(database)).await;
}

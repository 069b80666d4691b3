//! The same guarantees on PostgreSQL (the backend for several instances), against this
//! machine's server: the flow, encryption at rest, refresh exactly once across instances, and
//! ordered deliveries with a dead letter.

use std::collections::BTreeSet;
use std::time::Duration;

use mock_notion::{Endpoint, Fault};
use notion_oauth_handler::config::delivery::DeliverySettings;

use crate::helpers::{
    Browser, CLIENT_SECRET, Receiver, TestApp, TestOptions, accepted, postgres_url, spawn_app_with,
    webhook,
};

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
    for table in ["connections", "connection_events", "outbox", "used_states"] {
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
        assert!(
            !everything.contains(secret.as_str()),
            "a secret is stored in clear: {}…",
            &secret[..6]
        );
    }
}

#[tokio::test]
async fn instances_sharing_postgres_refresh_exactly_once() {
    let Some(app) = postgres_app(TestOptions::default()).await else { return };
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let (first, second) = (app.second_instance().await, app.second_instance().await);
    let seen = app.tokens(&bot).await.generation;
    app.emulator().set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));

    let path = format!("/connections/{bot}/token?force_refresh=true");
    let over_http = futures_util::future::join_all((0..30).map(|_| api.get(&path)));
    let coalesce = notion_oauth_handler::lifecycle::Coalesce::OnlyNewer;
    let in_instances = futures_util::future::join_all((0..30).map(|i| {
        let instance = if i % 2 == 0 { &first } else { &second };
        notion_oauth_handler::lifecycle::refresh_after(instance, &bot, seen, coalesce)
    }));
    let (over_http, in_instances) = tokio::join!(over_http, in_instances);

    assert_eq!(app.refresh_requests(), 1);
    let mut tokens: BTreeSet<String> = over_http
        .iter()
        .map(|a| a.body["access_token"].as_str().unwrap_or("error").to_owned())
        .collect();
    tokens.extend(
        in_instances.into_iter().map(|g| g.unwrap().access_token.expose_secret().to_owned()),
    );
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let stored = app.tokens(&bot).await.access_token.unwrap().expose_secret().to_owned();
    assert!(tokens.contains(&stored) && app.emulator().is_access_token_active(&stored));
}

#[tokio::test]
async fn deliveries_from_postgres_keep_their_order_through_a_dead_letter() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let Some(app) = postgres_app(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        delivery: DeliverySettings {
            max_attempts: 1,
            retry_base_ms: 50,
            ..DeliverySettings::default()
        },
        ..TestOptions::default()
    })
    .await
    else {
        return;
    };
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let id = api.wait_for_deliveries("dead").await[0]["id"].as_i64().unwrap();
    receiver.answer(200);
    assert_eq!(api.post(&format!("/connections/{bot}/refresh")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        accepted(&receiver.received()).is_empty(),
        "the refresh waits behind the dead creation"
    );

    assert_eq!(api.post(&format!("/deliveries/{id}/redeliver")).await.status, 202);

    let received = receiver.wait_for("both events", |r| accepted(r).len() == 2).await;
    let types: Vec<String> = accepted(&received).into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["connection.created", "connection.refreshed"]);
}

//! Connections over the API: listed and paged, checked with Notion, revoked, and their history.

use std::time::Duration;

use mock_notion::{EmulatorConfig, Endpoint, Fault, Revocation};

use crate::helpers::{TestOptions, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn connections_can_be_listed_filtered_and_paged_without_tokens() {
    let app = spawn_app().await;
    let api = app.api().await;
    for (user, reference) in
        [("Ada Lovelace", "ada"), ("Grace Hopper", "grace"), ("Alan Turing", "alan")]
    {
        app.connected(user, Some(reference)).await;
    }

    let all = api.get("/connections").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["connections"].as_array().unwrap().len(), 3);
    assert!(all.body["next_cursor"].is_null());
    assert!(!all.body.to_string().contains("ntn_") && !all.body.to_string().contains("nrt_"));
    let by_ref = api.get("/connections?ref=grace").await;
    assert_eq!(by_ref.body["connections"][0]["owner_name"], "Grace Hopper");
    let workspace = by_ref.body["connections"][0]["workspace_id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!("/connections?workspace_id={workspace}")).await.body["connections"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        api.get("/connections?status=revoked").await.body["connections"].as_array().unwrap().len(),
        0
    );

    let first = api.get("/connections?limit=2").await;
    assert_eq!(first.body["connections"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = api.get(&format!("/connections?limit=2&cursor={cursor}")).await;
    assert_eq!(second.body["connections"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());

    for bad in [
        "/connections?limit=0",
        "/connections?limit=abc",
        "/connections?status=bogus",
        "/connections?limit=201",
    ] {
        let answer = api.get(bad).await;
        assert_eq!((answer.status, answer.error_code()), (400, "invalid_request"), "{bad}");
    }
    assert_eq!(api.get("/nope").await.status, 404);
}

#[tokio::test]
async fn a_check_during_a_notion_outage_changes_nothing() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    // The access token is dead (it expired) but the refresh token still works.
    let stored = api.get(&format!("/connections/{bot}/token")).await;
    app.emulator().expire_access_token(stored.body["access_token"].as_str().unwrap());
    app.emulator().set_fault(
        Endpoint::Token,
        Fault::Error { status: 503, code: "service_unavailable".into(), message: "down".into() },
    );

    let during = api.post(&format!("/connections/{bot}/check")).await;

    assert_eq!(
        (during.status, during.error_code()),
        (503, "notion_unavailable"),
        "{}",
        during.body
    );
    assert_eq!(api.get(&format!("/connections/{bot}")).await.body["status"], "active");
    app.emulator().clear_faults();
    let after = api.post(&format!("/connections/{bot}/check")).await;
    assert_eq!(
        (after.body["active"].as_bool(), after.body["status"].as_str()),
        (Some(true), Some("active"))
    );
    let token = api.get(&format!("/connections/{bot}/token")).await;
    assert!(app.emulator().is_access_token_active(token.body["access_token"].as_str().unwrap()));
}

#[tokio::test]
async fn a_check_marks_a_connection_removed_in_notion_as_revoked() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;

    let active = api.post(&format!("/connections/{bot}/check")).await;
    assert_eq!((active.status, active.body["active"].as_bool()), (200, Some(true)));
    assert!(active.body["scope"].as_str().unwrap().contains("read_content"));

    app.emulator().revoke_all_for_bot(&bot);
    let inactive = api.post(&format!("/connections/{bot}/check")).await;

    assert_eq!(inactive.status, 200);
    assert_eq!(inactive.body["active"], false);
    assert_eq!(inactive.body["status"], "revoked");
    let token = api.get(&format!("/connections/{bot}/token")).await;
    assert_eq!((token.status, token.error_code()), (409, "revoked"));
    assert!(token.body["error"]["connect_url"].as_str().unwrap().ends_with("/connect"));
}

#[tokio::test]
async fn a_revoke_racing_a_refresh_revokes_the_refreshed_pair() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    app.emulator().set_fault_times(Endpoint::Token, Fault::Delay(Duration::from_millis(800)), 1);

    let refresh_path = format!("/connections/{bot}/refresh");
    let delete_path = format!("/connections/{bot}");
    let (refreshed, deleted) = tokio::join!(api.post(&refresh_path), async {
        eventually("the refresh reaching Notion", Duration::from_secs(5), || {
            std::future::ready((app.refresh_requests() > 0).then_some(()))
        })
        .await;
        api.delete(&delete_path).await
    });

    assert_eq!((refreshed.status, deleted.status), (200, 204));
    let new_access = refreshed.body["access_token"].as_str().unwrap();
    assert!(
        !app.emulator().is_access_token_active(new_access),
        "the pair the refresh obtained was revoked"
    );
    let stored = app.tokens(&bot).await;
    assert!(stored.access_token.is_none() && stored.status.as_str() == "revoked");
}

#[tokio::test]
async fn revoking_is_done_at_notion_forgets_the_tokens_and_can_be_repeated() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let access = app.tokens(&bot).await.access_token.unwrap().expose_secret().to_owned();

    // Notion failing keeps everything, so the call can be repeated.
    app.emulator().set_fault_times(
        Endpoint::Revoke,
        Fault::Error { status: 500, code: "internal_server_error".into(), message: "x".into() },
        1,
    );
    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 502);
    assert!(app.tokens(&bot).await.access_token.is_some());

    let revoked = api.delete(&format!("/connections/{bot}")).await;

    assert_eq!(revoked.status, 204);
    assert!(!app.emulator().is_access_token_active(&access));
    let stored = app.tokens(&bot).await;
    assert!(stored.access_token.is_none() && stored.refresh_token.is_none(), "the tokens are gone");
    assert_eq!(api.get(&format!("/connections/{bot}")).await.body["status"], "revoked");
    let token = api.get(&format!("/connections/{bot}/token")).await;
    assert_eq!((token.status, token.error_code()), (409, "revoked"));
    let revokes = app.emulator().requests_to(Endpoint::Revoke).len();
    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 204, "idempotent");
    assert_eq!(
        app.emulator().requests_to(Endpoint::Revoke).len(),
        revokes,
        "nothing left to revoke at Notion"
    );
    assert_eq!(api.delete("/connections/00000000-0000-0000-0000-000000000000").await.status, 404);
}

#[tokio::test]
async fn revoking_ends_the_refresh_token_too_where_notion_would_keep_it() {
    // Whether Notion ends the refresh token with its access token is not documented: the
    // emulator that keeps it alive is the case that matters.
    let app = spawn_app_with(TestOptions {
        emulator: EmulatorConfig { revocation: Revocation::OnlyThatToken, ..Default::default() },
        ..TestOptions::default()
    })
    .await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let stored = app.tokens(&bot).await;
    let access = stored.access_token.unwrap().expose_secret().to_owned();
    let refresh = stored.refresh_token.unwrap().expose_secret().to_owned();

    // A refresh-token revocation Notion fails keeps the tokens, and a repeat finishes the job.
    let unavailable =
        Fault::Error { status: 503, code: "service_unavailable".into(), message: "x".into() };
    app.emulator().set_fault_after(Endpoint::Revoke, 1, unavailable, 1);
    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 503);
    assert!(!app.emulator().is_access_token_active(&access), "the access token went first");
    assert!(app.emulator().is_refresh_token_active(&refresh));
    assert!(app.tokens(&bot).await.refresh_token.is_some(), "kept for the next try");

    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 204);
    assert!(!app.emulator().is_refresh_token_active(&refresh), "a copy could still mint tokens");
    let stored = app.tokens(&bot).await;
    assert!(stored.access_token.is_none() && stored.refresh_token.is_none());
}

#[tokio::test]
async fn events_record_the_lifecycle_with_notions_request_ids() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    api.post(&format!("/connections/{bot}/refresh")).await;
    api.post(&format!("/connections/{bot}/check")).await;
    app.connected("Ada Lovelace", None).await;

    let events = api.get(&format!("/connections/{bot}/events")).await;

    let events = events.body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reconnected", "checked", "refreshed", "connected"]);
    assert!(
        events.iter().all(|e| e["request_id"].as_str().is_some_and(|id| id.len() >= 32)),
        "{events:?}"
    );
}

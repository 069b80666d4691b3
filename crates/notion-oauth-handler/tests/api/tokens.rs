//! Tokens over the API and in-process: served as stored, refreshed exactly once however many ask
//! (in one process or several), and what every way a refresh can fail leaves behind.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use mock_notion::{Endpoint, Fault};
use notion_oauth_handler::domain::BotId;
use notion_oauth_handler::lifecycle::Coalesce;

use crate::helpers::{Answer, TestOptions, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_connection_and_its_token_are_served_and_the_refresh_token_only_on_request() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", Some("ada")).await;

    let connection = api.get(&format!("/connections/{bot}")).await;
    assert_eq!(connection.body["status"], "active");
    assert_eq!(connection.body["ref"], "ada");
    let token = api.get(&format!("/connections/{bot}/token")).await;
    assert_eq!(token.status, 200);
    assert_eq!(token.headers["cache-control"], "no-store");
    let access = token.body["access_token"].as_str().unwrap();
    assert!(app.emulator().is_access_token_active(access));
    assert!(token.body.get("refresh_token").is_none());
    assert_eq!(token.body["refreshed"], false);
    let with_refresh =
        api.get(&format!("/connections/{bot}/token?include_refresh_token=true")).await;
    assert!(
        app.emulator()
            .is_refresh_token_active(with_refresh.body["refresh_token"].as_str().unwrap())
    );
    assert_eq!(app.refresh_requests(), 0, "reading a token does not refresh it");
    // A forced refresh answers with the new access token, and the new refresh token only when
    // asked for.
    let refreshed = api.get(&format!("/connections/{bot}/token?force_refresh=true")).await;
    assert_eq!((refreshed.status, refreshed.body["refreshed"].as_bool()), (200, Some(true)));
    assert!(refreshed.body.get("refresh_token").is_none());
    let both = "force_refresh=true&include_refresh_token=true";
    let both = api.get(&format!("/connections/{bot}/token?{both}")).await;
    assert_eq!(both.status, 200);
    assert!(app.emulator().is_refresh_token_active(both.body["refresh_token"].as_str().unwrap()));

    let unknown = api.get("/connections/00000000-0000-0000-0000-000000000000/token").await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "not_found"));
}

#[tokio::test]
async fn a_hundred_concurrent_forced_refreshes_call_notion_once() {
    // Arrange
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let before = app.tokens(&bot).await;
    let old_refresh = before.refresh_token.unwrap().expose_secret().to_owned();
    // A Notion slow enough that every caller arrives while the first refresh is still there.
    app.emulator().set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));

    // Act: 100 callers at once.
    let path = format!("/connections/{bot}/token?force_refresh=true");
    let answers: Vec<Answer> = join_all((0..100).map(|_| api.get(&path))).await;

    // Assert: one refresh at Notion, one new token for everyone, the old refresh token dead.
    assert_eq!(app.refresh_requests(), 1);
    let tokens: BTreeSet<String> = answers
        .iter()
        .map(|a| a.body["access_token"].as_str().unwrap_or("error").to_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "every caller got the same token: {tokens:?}");
    let token = tokens.into_iter().next().unwrap();
    assert!(answers.iter().all(|a| a.status == 200 && a.body["refreshed"] == true));
    assert!(!app.emulator().is_refresh_token_active(&old_refresh), "Notion rotated the pair");
    let stored = app.tokens(&bot).await;
    assert_eq!(stored.access_token.unwrap().expose_secret(), token);
    assert!(app.emulator().is_access_token_active(&token));
    assert!(app.emulator().is_refresh_token_active(stored.refresh_token.unwrap().expose_secret()));
    assert_eq!(stored.generation, before.generation + 1);
}

#[tokio::test]
async fn callers_that_need_a_newer_pair_share_one_refresh() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let (first, second) = (app.second_instance().await, app.second_instance().await);
    let seen = app.tokens(&bot).await.generation;
    app.emulator().set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));
    let only_newer = Coalesce::OnlyNewer;
    let bot_id = BotId::new(&bot);

    let grants = join_all((0..20).map(|i| {
        let instance = if i % 2 == 0 { &first } else { &second };
        instance.lifecycle().refresh_after(&bot_id, seen, only_newer)
    }))
    .await;

    assert_eq!(app.refresh_requests(), 1);
    let tokens: BTreeSet<String> =
        grants.into_iter().map(|g| g.unwrap().access_token.expose_secret().to_owned()).collect();
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn two_instances_on_one_database_refresh_once_between_them() {
    instances_refresh_once_between_them(None).await;
}

/// The scenario, on either backend: forced refreshes over HTTP and in a second instance (its
/// own pool and locks, as another process) at once make one refresh at Notion.
pub(crate) async fn instances_refresh_once_between_them(
    postgres: Option<crate::helpers::TestDatabase>,
) {
    let app = spawn_app_with(TestOptions { postgres, ..TestOptions::default() }).await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let other = app.second_instance().await;
    let seen = app.tokens(&bot).await.generation;
    app.emulator().set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));

    let path = format!("/connections/{bot}/token?force_refresh=true");
    let over_http = join_all((0..20).map(|_| api.get(&path)));
    let bot_id = BotId::new(&bot);
    let in_other = join_all(
        (0..20).map(|_| other.lifecycle().refresh_after(&bot_id, seen, Coalesce::WithRecent)),
    );
    let (over_http, in_other) = tokio::join!(over_http, in_other);

    assert_eq!(app.refresh_requests(), 1);
    let mut tokens: BTreeSet<String> = over_http
        .iter()
        .map(|a| a.body["access_token"].as_str().unwrap_or("error").to_owned())
        .collect();
    tokens.extend(in_other.into_iter().map(|g| g.unwrap().access_token.expose_secret().to_owned()));
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}

#[tokio::test]
async fn a_refresh_whose_answer_was_lost_is_reported_as_such() {
    // Notion acts on the first attempt, but its answer arrives after the client gave up.
    let app = spawn_app_with(TestOptions { timeout_seconds: 1, ..TestOptions::default() }).await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    app.emulator().set_fault_times(Endpoint::Token, Fault::Delay(Duration::from_millis(1200)), 1);

    let answer = api.post(&format!("/connections/{bot}/refresh")).await;

    assert_eq!((answer.status, answer.error_code()), (409, "needs_reauth"), "{}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().unwrap().contains("answer was lost"),
        "{}",
        answer.body
    );
    assert_eq!(app.refresh_requests(), 2, "the retry learned that the pair had rotated");
}

#[tokio::test]
async fn a_refused_refresh_token_means_reconnect_and_is_never_retried() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", Some("ada")).await;
    app.emulator().set_fault(
        Endpoint::Token,
        Fault::Error {
            status: 400,
            code: "invalid_grant".into(),
            message: "Invalid refresh token".into(),
        },
    );

    let refused = api.post(&format!("/connections/{bot}/refresh")).await;

    assert_eq!((refused.status, refused.error_code()), (409, "needs_reauth"));
    let connect_url = refused.body["error"]["connect_url"].as_str().unwrap();
    assert_eq!(connect_url, format!("{}/connect?ref=ada", app.address));
    assert_eq!(app.refresh_requests(), 1, "invalid_grant is never retried");
    let again = api.get(&format!("/connections/{bot}/token")).await;
    assert_eq!((again.status, again.error_code()), (409, "needs_reauth"));
    assert_eq!(app.refresh_requests(), 1, "a connection needing its user does not call Notion");
    let connection = api.get(&format!("/connections/{bot}")).await;
    assert_eq!(connection.body["status"], "needs_reauth");
    let events = api.get(&format!("/connections/{bot}/events")).await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["needs_reauth", "refresh_failed", "connected"]);

    // The user reconnects: the connection is active again, with a working pair.
    app.emulator().clear_faults();
    app.connected("Ada Lovelace", None).await;
    let token = api.get(&format!("/connections/{bot}/token")).await;
    assert_eq!(token.status, 200);
    assert!(app.emulator().is_access_token_active(token.body["access_token"].as_str().unwrap()));
}

#[tokio::test]
async fn a_reauthorization_during_a_refresh_wins() {
    // The refresh reaches Notion first but is answered last; the user re-authorizes meanwhile,
    // which (since 2026-06-08) kills the old pair, so the refresh is refused.
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    app.emulator().set_fault_times(Endpoint::Token, Fault::Delay(Duration::from_millis(1500)), 1);

    let path = format!("/connections/{bot}/refresh");
    let (refreshed, ()) = tokio::join!(api.post(&path), async {
        eventually("the refresh reaching Notion", Duration::from_secs(5), || {
            std::future::ready((app.refresh_requests() > 0).then_some(()))
        })
        .await;
        app.connected("Ada Lovelace", None).await;
    });

    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let stored = app.tokens(&bot).await;
    assert_eq!(
        stored.status.as_str(),
        "active",
        "a refused refresh of the old pair must not undo the re-authorization"
    );
    let access = stored.access_token.unwrap().expose_secret().to_owned();
    assert_eq!(refreshed.body["access_token"], access.as_str());
    assert!(app.emulator().is_access_token_active(&access));
}

#[tokio::test]
async fn notion_failing_a_refresh_leaves_the_stored_pair_unchanged_and_usable() {
    let cases = [
        (
            Fault::Error {
                status: 500,
                code: "internal_server_error".into(),
                message: "boom".into(),
            },
            502,
            "notion_unavailable",
            3,
        ),
        (Fault::Stall(Duration::from_secs(3)), 504, "notion_timeout", 3),
        // A garbled 200 may hide a rotation: retrying could spend a dead token, so no retry.
        (Fault::NonJson, 502, "notion_unavailable", 1),
        (Fault::MissingFields, 502, "notion_unavailable", 1),
    ];
    for (fault, status, code, attempts) in cases {
        let app =
            spawn_app_with(TestOptions { timeout_seconds: 1, ..TestOptions::default() }).await;
        let api = app.api().await;
        let bot = app.connected("Ada Lovelace", None).await;
        let before = app.tokens(&bot).await;
        let description = format!("{fault:?}");
        app.emulator().set_fault(Endpoint::Token, fault);

        let failed = api.post(&format!("/connections/{bot}/refresh")).await;

        assert_eq!(
            (failed.status, failed.error_code()),
            (status, code),
            "{description}: {}",
            failed.body
        );
        assert_eq!(app.refresh_requests(), attempts, "{description}");
        let after = app.tokens(&bot).await;
        let access = after.access_token.unwrap().expose_secret().to_owned();
        assert_eq!(access, before.access_token.unwrap().expose_secret(), "{description}");
        assert_eq!(after.generation, before.generation);
        assert!(app.emulator().is_access_token_active(&access), "{description}");
        assert!(
            app.emulator().is_refresh_token_active(after.refresh_token.unwrap().expose_secret())
        );
        app.emulator().clear_faults();
        let recovered = api.post(&format!("/connections/{bot}/refresh")).await;
        assert_eq!(recovered.status, 200, "{description}: {}", recovered.body);
    }
}

#[tokio::test]
async fn background_passes_refresh_old_tokens_and_check_connections() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let worker = app.second_instance().await;
    let before = app.tokens(&bot).await.generation;
    // A check in between must not make the pair look younger than it is.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    worker.lifecycle().check_connections(Duration::ZERO).await;

    worker.lifecycle().refresh_old_tokens(Duration::from_secs(1)).await;
    assert_eq!(app.tokens(&bot).await.generation, before + 1);
    app.emulator().revoke_all_for_bot(&bot);
    worker.lifecycle().check_connections(Duration::ZERO).await;

    assert_eq!(
        app.refresh_requests(),
        2,
        "one refresh, then one attempt to revive the inactive token"
    );
    assert_eq!(app.emulator().requests_to(Endpoint::Introspect).len(), 2);
    assert_eq!(app.connections().await[0].status.as_str(), "revoked");
}

#[tokio::test]
async fn a_token_refreshed_here_is_served_at_once_and_one_refreshed_elsewhere_within_the_bound() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let path = format!("/connections/{bot}/token");
    let served = |answer: Answer| answer.body["access_token"].as_str().unwrap().to_owned();
    let first = served(api.get(&path).await);
    assert_eq!(served(api.get(&path).await), first, "served again from the recent copy");

    // Refreshed by this server: the next answer has the new token, with no window.
    let refreshed = served(api.get(&format!("{path}?force_refresh=true")).await);
    assert_ne!(refreshed, first);
    assert_eq!(served(api.get(&path).await), refreshed, "the pre-refresh token was served");

    // Refreshed by another instance: served within the bound, never the old one after it.
    let other = app.second_instance().await;
    let seen = app.tokens(&bot).await.generation;
    let bot_id = BotId::new(&bot);
    let newest = other.lifecycle().refresh_after(&bot_id, seen, Coalesce::OnlyNewer).await;
    let newest = newest.unwrap().access_token.expose_secret().to_owned();
    let bound = notion_oauth_handler::store::RECENT + Duration::from_millis(500);
    eventually("the token refreshed elsewhere is served", bound, || async {
        let now = served(api.get(&path).await);
        assert!(now == refreshed || now == newest, "{now} is neither");
        (now == newest).then_some(())
    })
    .await;
    assert!(!app.emulator().is_access_token_active(&first));
}

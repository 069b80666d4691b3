//! The API the developer's backend calls: keys, listing, tokens, refresh exactly once, check,
//! revoke, events, and the OpenAPI document.

use std::collections::BTreeSet;
use std::time::Duration;

use mock_notion::{Endpoint, Fault};
use notion_oauth_handler::domain::BotId;
use notion_oauth_handler::lifecycle::Coalesce;
use notion_oauth_handler::store::SealedGrant;

use crate::helpers::{Answer, TestOptions, http, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_api_refuses_missing_wrong_and_revoked_keys_alike() {
    let app = spawn_app().await;
    let api = app.api().await;
    let made = notion_oauth_handler::api_keys::generate().unwrap();
    let unknown = secrecy::ExposeSecret::expose_secret(&made.key).to_owned();
    let revoked = app.api_key().await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    assert!(app.store().await.revoke_api_key(&revoked_id).await.unwrap());
    let active = app.api_key().await;
    let wrong_secret =
        format!("{}{}", &active[..active.len() - 1], if active.ends_with('A') { 'B' } else { 'A' });

    let no_key = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/connections", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    let no_key_body: serde_json::Value = no_key.json().await.unwrap();
    for key in ["garbage", unknown.as_str(), revoked.as_str(), wrong_secret.as_str(), ""] {
        let answer = api.with_key(key).get("/connections").await;
        assert_eq!(answer.status, 401, "{key}");
        assert_eq!(answer.body, no_key_body, "every refusal looks the same");
    }
    assert_eq!(api.with_key(&active).get("/connections").await.status, 200);
    let active_id = active.split('_').nth(1).unwrap();
    let recorded = app.store().await.api_key(active_id).await.unwrap().unwrap();
    assert!(recorded.last_used_at.is_some(), "a key's use is recorded");
    let never_used = app.store().await.api_key(&revoked_id).await.unwrap().unwrap();
    assert!(never_used.last_used_at.is_none(), "a refused key's is not");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let response = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/connections", app.address))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_error() {
    let app = spawn_app().await;
    let answer = app.api().await.post("/connections").await;
    assert_eq!((answer.status, answer.error_code()), (405, "method_not_allowed"));
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

    let grants = futures_all((0..20).map(|i| {
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
async fn a_check_during_a_notion_outage_changes_nothing() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    // The access token is dead (say it expired) but the refresh token still works.
    let generation = app.tokens(&bot).await.generation;
    let expired: notion_oauth::TokenResponse = serde_json::from_value(serde_json::json!({
        "access_token": "ntn_expired_token_000000000000000000000000000000", "token_type": "bearer",
        "refresh_token": null, "bot_id": bot, "workspace_id": "w",
        "owner": {"type": "workspace", "workspace": true}
    }))
    .unwrap();
    let grant = SealedGrant::seal(&app.vault(), &expired).unwrap();
    app.store().await.complete_refresh(&grant, generation).await.unwrap().unwrap();
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
async fn a_revoke_racing_a_refresh_revokes_the_refreshed_pair() {
    let app = spawn_app().await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    app.emulator().set_fault_times(Endpoint::Token, Fault::Delay(Duration::from_millis(800)), 1);

    let refresh_path = format!("/connections/{bot}/refresh");
    let delete_path = format!("/connections/{bot}");
    let (refreshed, deleted) = tokio::join!(api.post(&refresh_path), async {
        while app.refresh_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
async fn processes_opening_a_new_database_at_once_all_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let opened = futures_all((0..6).map(|_| notion_oauth_handler::store::connect(&url))).await;
    assert!(opened.iter().all(Result::is_ok), "{:?}", opened.iter().find_map(|r| r.as_ref().err()));
}

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
    let answers: Vec<Answer> = futures_all((0..100).map(|_| api.get(&path))).await;

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
async fn two_instances_on_one_database_refresh_once_between_them() {
    instances_refresh_once_between_them(None).await;
}

/// The scenario, on either backend: forced refreshes over HTTP and in a second instance (its
/// own pool and locks, as another process) at once make one refresh at Notion.
pub(crate) async fn instances_refresh_once_between_them(postgres: Option<String>) {
    let app = spawn_app_with(TestOptions { postgres, ..TestOptions::default() }).await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let other = app.second_instance().await;
    let seen = app.tokens(&bot).await.generation;
    app.emulator().set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));

    let path = format!("/connections/{bot}/token?force_refresh=true");
    let over_http = futures_all((0..20).map(|_| api.get(&path)));
    let bot_id = BotId::new(&bot);
    let in_other = futures_all(
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
        while app.refresh_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
async fn the_openapi_document_lists_every_route_and_validates() {
    let app = spawn_app().await;
    let response = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the document needs no key");
    let document: serde_json::Value = response.json().await.unwrap();

    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(document["servers"][0]["url"], format!("{}/api/v1", app.address));
    assert_eq!(document["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "GET /connections",
        "GET /connections/{bot_id}",
        "DELETE /connections/{bot_id}",
        "GET /connections/{bot_id}/token",
        "POST /connections/{bot_id}/refresh",
        "POST /connections/{bot_id}/check",
        "GET /connections/{bot_id}/events",
        "GET /deliveries",
        "POST /connect-links",
        "POST /deliveries/{id}/redeliver",
        "GET /openapi.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(routes, expected);

    // Every documented route answers (with a key) rather than falling through to 404.
    let api = app.api().await;
    for route in &expected {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{bot_id}", "unknown-bot").replace("{id}", "424242");
        let answer = api.call(method.parse().unwrap(), &path).await;
        assert!(
            answer.status != 404
                || answer.error_code() == "not_found" && path.contains("unknown-bot")
                || path.contains("424242"),
            "{route}"
        );
        assert!(answer.status != 405, "{route}");
    }

    validate_with_openapi_spec_validator(&document, &app.dir);
}

/// The reference validator, from PyPI (`.ci/run` installs it). Skipped on a laptop without it,
/// required under CI=true.
fn validate_with_openapi_spec_validator(document: &serde_json::Value, dir: &tempfile::TempDir) {
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output();
    let available = output
        .as_ref()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("No module named"));
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 -m openapi_spec_validator is missing: pip install openapi-spec-validator"
        );
        eprintln!("SKIPPED: openapi-spec-validator is not installed");
        return;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "the OpenAPI document does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn futures_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

//! Events delivered to the developer's app: signed webhooks, the command hook, retries, the
//! dead-letter state and redelivery.

use std::time::Duration;

use notion_oauth_handler::config::{CommandHookSettings, DeliverySettings};

use crate::helpers::{
    Browser, HANG, Receiver, TestApp, TestOptions, WEBHOOK_SECRET, accepted, eventually,
    spawn_app_with, webhook,
};

fn run_verifier(
    program: &str,
    script: &str,
    signature: &str,
    body: &str,
    now: Option<i64>,
) -> Option<String> {
    use std::io::Write;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/webhook-receivers/");
    let mut command = std::process::Command::new(program);
    command
        .arg(format!("{path}{script}"))
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("SIGNATURE", signature)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    if let Some(now) = now {
        command.env("NOW", now.to_string());
    }
    let Ok(mut child) = command.spawn() else {
        crate::helpers::skip(&format!("no {program} to run the {script} recipe"));
        return None;
    };
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[tokio::test]
async fn every_lifecycle_event_reaches_the_webhook_signed_and_in_order() {
    // Arrange
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    let api = app.api().await;

    // Act: a connection is made, refreshed, renewed by its user, revoked; another user cancels.
    let bot = app.connected("Ada Lovelace", Some("ada")).await;
    assert_eq!(api.post(&format!("/connections/{bot}/refresh")).await.status, 200);
    app.connected("Ada Lovelace", None).await;
    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 204);
    let browser = Browser::new();
    let authorize = app.connect(&browser, Some("grace")).await;
    let back = app.decide(&authorize, "deny", "Grace Hopper").await;
    assert_eq!(app.callback(&browser, back.as_str()).await.status, 200);

    // Assert: five deliveries, the connection's in the order things happened (order is kept per
    // connection; the cancelled flow is no connection's), each one signed.
    let received = receiver.wait_for("five events", |r| accepted(r).len() == 5).await;
    let types: Vec<String> = accepted(&received).into_iter().map(|(t, _)| t).collect();
    let of_the_connection: Vec<&String> =
        types.iter().filter(|t| *t != "connection.denied").collect();
    assert_eq!(
        of_the_connection,
        ["connection.created", "connection.refreshed", "connection.updated", "connection.revoked"]
    );
    assert!(types.contains(&"connection.denied".to_owned()));
    let first = received[0].json();
    assert_eq!(first["type"], "connection.created");
    assert_eq!(first["id"], received[0].headers["notion-oauth-event-id"].as_str());
    assert_eq!(first["data"]["bot_id"], bot.as_str());
    assert_eq!(first["data"]["ref"], "ada");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    let denied = received
        .iter()
        .find(|r| r.headers["notion-oauth-event-type"] == "connection.denied")
        .unwrap();
    assert_eq!(
        denied.json()["data"],
        serde_json::json!({ "ref": "grace", "ref_signed": false, "error": "access_denied" })
    );
    for delivery in &received {
        assert!(
            !delivery.body.contains("ntn_") && !delivery.body.contains("nrt_"),
            "no tokens unless asked"
        );
        let signature = &delivery.headers["notion-oauth-signature"];
        let timestamp: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
        let secret = secrecy::SecretString::from(WEBHOOK_SECRET);
        assert_eq!(
            signature,
            &notion_oauth_handler::signatures::webhook(&secret, timestamp, &delivery.body)
        );
    }
}

#[tokio::test]
async fn the_documented_python_and_node_recipes_verify_a_real_delivery_and_reject_replays() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    app.connected("Ada Lovelace", None).await;
    let received = receiver.wait_for("one event", |r| !accepted(r).is_empty()).await;
    let (signature, body) = (&received[0].headers["notion-oauth-signature"], &received[0].body);
    let timestamp: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();

    for (program, script) in [("python3", "verify.py"), ("node", "verify.js")] {
        let recipe = std::fs::read_to_string(format!(
            "{}/../../examples/webhook-receivers/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(readme.contains(recipe.trim()), "the README shows {script} as it is tested");
        let Some(fresh) = run_verifier(program, script, signature, body, None) else { continue };
        assert_eq!(fresh, "valid", "{script}");
        let replayed =
            run_verifier(program, script, signature, body, Some(timestamp + 600)).unwrap();
        assert_eq!(replayed, "invalid", "{script}: a delivery replayed 10 minutes later");
        let tampered =
            run_verifier(program, script, signature, &body.replace("Ada", "Eve"), None).unwrap();
        assert_eq!(tampered, "invalid", "{script}: an edited body");
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_recovers_and_later_events_wait_their_turn() {
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    api.post(&format!("/connections/{bot}/refresh")).await;

    receiver.wait_for("three failed attempts", |r| r.len() >= 3).await;
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.headers["notion-oauth-event-type"] == "connection.created"),
        "the refresh waits behind the undelivered creation"
    );
    receiver.answer(200);
    let received = receiver.wait_for("both events", |r| accepted(r).len() == 2).await;

    let types: Vec<String> = accepted(&received).into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["connection.created", "connection.refreshed"]);
    let attempts: Vec<&str> =
        received.iter().map(|r| r.headers["notion-oauth-delivery-attempt"].as_str()).collect();
    assert_eq!(&attempts[..3], ["1", "2", "3"]);
    let ids: Vec<&str> = received
        .iter()
        .filter(|r| r.headers["notion-oauth-event-type"] == "connection.created")
        .map(|r| r.headers["notion-oauth-event-id"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "retries carry the same event id");
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_is_dead_until_redelivered() {
    let (receiver, app) = failing_receiver_app(2, None).await;
    let api = app.api().await;
    app.connected("Ada Lovelace", None).await;

    let dead = serde_json::json!({ "deliveries": api.wait_for_deliveries("dead").await });
    let delivery = &dead["deliveries"][0];
    assert_eq!(
        (delivery["attempts"].as_i64(), delivery["target"].as_str()),
        (Some(2), Some("app")),
        "{dead}"
    );
    assert!(delivery["last_error"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(receiver.received().len(), 2);

    receiver.answer(200);
    let id = delivery["id"].as_i64().unwrap();
    assert_eq!(api.post(&format!("/deliveries/{id}/redeliver")).await.status, 202);
    receiver.wait_for("the redelivery", |r| accepted(r).len() == 1).await;
    // The receiver answered; wait for the worker to record it before sending it again.
    api.wait_for_deliveries("delivered").await;
    assert_eq!(
        api.post(&format!("/deliveries/{id}/redeliver")).await.status,
        202,
        "a delivered one can be sent again"
    );
    assert_eq!(api.post("/deliveries/999999/redeliver").await.status, 404);
    assert_eq!(api.get("/deliveries?status=bogus").await.status, 400);
}

#[tokio::test]
async fn a_webhook_that_asks_for_tokens_gets_the_current_ones() {
    let (plain, with_tokens) = (Receiver::start().await, Receiver::start().await);
    let mut tokens_hook = webhook("with-tokens", &with_tokens.url);
    tokens_hook.include_tokens = true;
    tokens_hook.events = Some(vec!["connection.created".into()]);
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("plain", &plain.url), tokens_hook],
        ..TestOptions::default()
    })
    .await;
    let bot = app.connected("Ada Lovelace", None).await;

    let received = with_tokens.wait_for("the creation", |r| !accepted(r).is_empty()).await;
    let access = received[0].json()["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(access, app.tokens(&bot).await.access_token.unwrap().expose_secret());
    let received = plain.wait_for("the creation", |r| !accepted(r).is_empty()).await;
    assert!(received[0].json()["data"].get("tokens").is_none());
}

fn hook(script: &str, timeout_seconds: u64) -> CommandHookSettings {
    CommandHookSettings {
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout_seconds,
        events: None,
        env: Vec::new(),
    }
}

#[tokio::test]
async fn the_command_hook_gets_each_event_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let script = format!("cat >> {} && echo >> {}", out.display(), out.display());
    let app = spawn_app_with(TestOptions {
        command_hook: Some(hook(&script, 5)),
        ..TestOptions::default()
    })
    .await;
    let bot = app.connected("Ada Lovelace", None).await;

    let lines: Vec<String> =
        eventually("the hook writing its input", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            std::future::ready((!lines.is_empty()).then_some(lines))
        })
        .await;
    let event: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["data"]["bot_id"].as_str()),
        (Some("connection.created"), Some(bot.as_str()))
    );
}

#[tokio::test]
async fn a_failing_or_hanging_command_hook_is_retried_then_dead_lettered() {
    for (script, timeout, expected) in [
        ("echo 'no database' >&2; exit 3", 5, "exit status: 3: no database"),
        ("sleep 30", 1, "ran longer than 1 s"),
    ] {
        let app = spawn_app_with(TestOptions {
            command_hook: Some(hook(script, timeout)),
            delivery: DeliverySettings {
                max_attempts: 2,
                retry_base_ms: 50,
                ..DeliverySettings::default()
            },
            ..TestOptions::default()
        })
        .await;
        let api = app.api().await;
        app.connected("Ada Lovelace", None).await;

        let dead = serde_json::json!({ "deliveries": api.wait_for_deliveries("dead").await });
        let delivery = &dead["deliveries"][0];
        assert_eq!(
            (delivery["target"].as_str(), delivery["attempts"].as_i64()),
            (Some("command"), Some(2)),
            "{dead}"
        );
        assert!(delivery["last_error"].as_str().unwrap().contains(expected), "{dead}");
    }
}

/// A receiver that fails with 500, and an app that gives up on a delivery after `max_attempts`,
/// storing in `postgres` when given (else SQLite).
pub(crate) async fn failing_receiver_app(
    max_attempts: u32,
    postgres: Option<crate::helpers::TestDatabase>,
) -> (Receiver, TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        delivery: DeliverySettings {
            max_attempts,
            retry_base_ms: 50,
            ..DeliverySettings::default()
        },
        postgres,
        ..TestOptions::default()
    })
    .await;
    (receiver, app)
}

#[tokio::test]
async fn a_dead_letter_holds_back_later_events_until_it_is_redelivered() {
    dead_letter_holds_back_later_events(None).await;
}

/// The scenario, on either backend: a dead creation holds back the revocation that follows it
/// until the creation is redelivered, then both arrive in order.
pub(crate) async fn dead_letter_holds_back_later_events(
    postgres: Option<crate::helpers::TestDatabase>,
) {
    let (receiver, app) = failing_receiver_app(1, postgres).await;
    let api = app.api().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let id = api.wait_for_deliveries("dead").await[0]["id"].as_i64().unwrap();
    receiver.answer(200);
    assert_eq!(api.delete(&format!("/connections/{bot}")).await.status, 204);

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        accepted(&receiver.received()).is_empty(),
        "the revocation waits behind the dead creation"
    );
    assert_eq!(api.post(&format!("/deliveries/{id}/redeliver")).await.status, 202);

    let received = receiver.wait_for("both events", |r| accepted(r).len() == 2).await;
    let types: Vec<String> = accepted(&received).into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["connection.created", "connection.revoked"]);
}

#[tokio::test]
async fn a_denial_that_no_flow_of_ours_started_is_not_reported() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    for query in [
        "error=access_denied",
        "error=access_denied&state=",
        "error=access_denied&state=forged.state",
    ] {
        let page = app.callback_with_query(&Browser::new(), query).await;
        assert_eq!((page.status, page.reason()), (200, "denied"));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.received().is_empty());
    assert_eq!(app.api().await.get("/deliveries").await.body["deliveries"], serde_json::json!([]));
}

#[tokio::test]
async fn a_command_hook_that_leaves_a_background_process_still_succeeds_and_sees_a_clean_environment()
 {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env.txt");
    let script = format!("env > {}; sleep 5 & exit 0", env_file.display());
    let app = spawn_app_with(TestOptions {
        command_hook: Some(hook(&script, 2)),
        ..TestOptions::default()
    })
    .await;
    let api = app.api().await;
    app.connected("Ada Lovelace", None).await;

    let delivered = serde_json::json!({ "deliveries": api.wait_for_deliveries("delivered").await });
    assert_eq!(delivered["deliveries"][0]["attempts"], 1, "{delivered}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
    assert!(names.contains(&"NOH_EVENT_ID") && names.contains(&"NOH_EVENT_TYPE"), "{names:?}");
    assert!(
        names.iter().all(|n| [
            "PATH",
            "HOME",
            "LANG",
            "NOH_EVENT_ID",
            "NOH_EVENT_TYPE",
            "NOH_DELIVERY_ATTEMPT",
            "PWD",
            "SHLVL",
            "_"
        ]
        .contains(n)),
        "the hook inherited the server's environment: {names:?}"
    );
}

#[tokio::test]
async fn a_hanging_delivery_holds_up_only_its_own_connection() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        delivery: DeliverySettings {
            timeout_seconds: 30,
            retry_base_ms: 100,
            concurrency: 4,
            ..DeliverySettings::default()
        },
        ..TestOptions::default()
    })
    .await;
    // The app takes each event and never answers: every delivery under way hangs.
    receiver.answer(HANG);
    for user in ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"] {
        app.connected(user, None).await;
    }

    // Each connection's first event reaches the app though the others' hang, long before any
    // attempt times out.
    let started = std::time::Instant::now();
    let received = receiver.wait_for("four events under way at once", |r| r.len() >= 4).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let bots: std::collections::BTreeSet<String> =
        received.iter().map(|r| r.json()["data"]["bot_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bots.len(), 4, "one event per connection");
}

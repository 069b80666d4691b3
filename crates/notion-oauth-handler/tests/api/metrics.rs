//! Prometheus metrics on their own port: each series after a scripted mix of flows, refusals,
//! a refresh, a revocation and deliveries; nothing secret or identifying in them.

use std::time::Duration;

use crate::helpers::{Browser, Receiver, TestOptions, eventually, http, spawn_app_with, webhook};

/// The value of the series `name` with exactly `labels` (`{…}` as written), or 0.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_what_happened_and_name_no_one() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        metrics: true,
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    let scrape_url = app.metrics_url.clone().unwrap();
    let scrape = || async {
        let answer = http().build().unwrap().get(&scrape_url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    };
    // Not on the public address.
    let public = http().build().unwrap().get(format!("{}/metrics", app.address)).send().await;
    assert_eq!(public.unwrap().status(), 404);

    let ada = app.connected("Ada Lovelace", Some("user-ada")).await;
    let grace = app.connected("Grace Hopper", Some("user-grace")).await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, Some("user-alan")).await;
    let back = app.decide(&authorize, "deny", "Alan Turing").await;
    assert_eq!(app.callback(&browser, back.as_str()).await.status, 200);
    let refused = app.callback_with_query(&Browser::new(), "code=stolen").await;
    assert_eq!(refused.reason(), "missing_state");
    let api = app.api().await;
    let key = api.with_key("noh_0000000000000000_wrong").get("/connections").await;
    assert_eq!(key.status, 401);
    assert_eq!(api.get(&format!("/connections/{ada}/token?force_refresh=true")).await.status, 200);
    assert_eq!(api.delete(&format!("/connections/{grace}")).await.status, 204);
    // created ×2, denied, refreshed and revoked: five events delivered.
    receiver.wait_for("five deliveries", |r| r.len() >= 5).await;

    let text = eventually("the deliveries counted", Duration::from_secs(5), || async {
        let text = scrape().await;
        (value(&text, "noh_delivery_attempts_total{outcome=\"delivered\"}") >= 5.0).then_some(text)
    })
    .await;
    let expected = [
        ("noh_flows_started_total", 3.0),
        ("noh_flows_finished_total{outcome=\"connected\"}", 2.0),
        ("noh_flows_finished_total{outcome=\"denied\"}", 1.0),
        ("noh_flows_finished_total{outcome=\"refused\"}", 1.0),
        ("noh_flows_refused_total{reason=\"missing_state\"}", 1.0),
        ("noh_notion_requests_total{endpoint=\"token\",outcome=\"ok\"}", 2.0),
        ("noh_notion_requests_total{endpoint=\"refresh\",outcome=\"ok\"}", 1.0),
        // The access token, then the refresh token.
        ("noh_notion_requests_total{endpoint=\"revoke\",outcome=\"ok\"}", 2.0),
        ("noh_notion_request_duration_seconds_count{endpoint=\"token\"}", 2.0),
        ("noh_connections{status=\"active\"}", 1.0),
        ("noh_connections{status=\"revoked\"}", 1.0),
        ("noh_connections{status=\"needs_reauth\"}", 0.0),
        ("noh_outbox_pending", 0.0),
        ("noh_outbox_oldest_pending_age_seconds", 0.0),
        ("noh_http_requests_total{route=\"/connect\",status=\"302\"}", 3.0),
        ("noh_http_requests_total{route=\"/api/v1/connections\",status=\"401\"}", 1.0),
        ("noh_http_request_duration_seconds_count{route=\"/callback\"}", 4.0),
    ];
    for (series, want) in expected {
        assert_eq!(value(&text, series), want, "{series} in:\n{text}");
    }
    assert!(value(&text, "noh_delivery_attempts_total{outcome=\"delivered\"}") >= 5.0);

    // A delivery the app refuses waits in the outbox, and the gauges say so.
    receiver.answer(500);
    app.connected("Edsger Dijkstra", None).await;
    let text = eventually("a failed attempt counted", Duration::from_secs(5), || async {
        let text = scrape().await;
        (value(&text, "noh_delivery_attempts_total{outcome=\"failed\"}") >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(value(&text, "noh_outbox_pending"), 1.0, "{text}");

    // No token, code, key, ref or bot id, in any series.
    let mut secrets = app.emulator().issued_secrets();
    secrets.extend([ada, grace, "user-ada".into(), "user-grace".into(), "user-alan".into()]);
    secrets.push("stolen".into());
    for secret in secrets {
        assert!(!text.contains(&secret), "{secret} is in the metrics");
    }
}

//! The Notion API proxy, against the emulator: the same answers as Notion gives the connection's
//! token directly, one refresh for any number of 401s, rate limits waited out within the
//! budget, and every bad request refused before anything reaches Notion.

use std::time::{Duration, Instant};

use mock_notion::{Endpoint, FaultSpec, RateLimit, RateLimitScope, Settings as EmulatorSettings};
use notion_oauth_handler::config::ProxySettings;
use notion_oauth_handler::domain::BotId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions, http, spawn_app, spawn_app_with};

/// What a caller of the proxy gets: status, the headers it cares about, the body as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    request_id: Option<String>,
    /// `Noh-Error`: set on this server's own refusals, never on Notion's answers.
    own_error: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let header =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, retry_after, request_id, own_error) = (
        response.status().as_u16(),
        header("retry-after"),
        header("x-notion-request-id"),
        header("noh-error"),
    );
    let text = response.text().await.unwrap();
    let mut body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    // Each answer has its own request id; the rest must be the same.
    if let Some(object) = body.as_object_mut() {
        object.remove("request_id");
    }
    Answer { status, retry_after, request_id, own_error, body }
}

/// A call through the proxy, with the app's API key.
async fn proxied(
    app: &TestApp,
    key: &str,
    method: Method,
    bot_id: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let url = format!("{}/api/v1/connections/{bot_id}/notion/{path}", app.address);
    let mut request = http().build().unwrap().request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

/// The same call made to the emulator directly, with the connection's own token.
async fn direct(
    app: &TestApp,
    bot_id: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let token = app.tokens(bot_id).await.access_token.unwrap();
    let url = format!("{}/v1/{path}", app.notion.base_url());
    let mut request = http()
        .build()
        .unwrap()
        .request(method, url)
        .bearer_auth(token.expose_secret())
        .header("Notion-Version", notion_oauth::DEFAULT_NOTION_VERSION);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn proxied_calls_answer_exactly_what_notion_answers_the_connection_directly() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;

    let me = proxied(&app, &key, Method::GET, &bot, "users/me", None).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert!(me.request_id.is_some(), "Notion's request id comes back");
    assert_eq!(me.body, direct(&app, &bot, Method::GET, "users/me", None).await.body);

    // A search with a body, page by page.
    let first_page = json!({ "page_size": 2 });
    let first = proxied(&app, &key, Method::POST, &bot, "search", Some(first_page.clone())).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, direct(&app, &bot, Method::POST, "search", Some(first_page)).await.body);
    assert_eq!(first.body["has_more"], true);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let next_page = json!({ "page_size": 2, "start_cursor": cursor });
    let second = proxied(&app, &key, Method::POST, &bot, "search", Some(next_page.clone())).await;
    assert_eq!(second.body, direct(&app, &bot, Method::POST, "search", Some(next_page)).await.body);
    assert_ne!(second.body["results"], first.body["results"]);

    // A page read, and Notion's own error for an id it does not know, passed back as it came.
    let all = json!({ "filter": { "property": "object", "value": "page" }, "page_size": 1 });
    let pages = proxied(&app, &key, Method::POST, &bot, "search", Some(all)).await;
    assert_eq!(pages.status, 200, "{:?}", pages.body);
    let page_id = pages.body["results"][0]["id"].as_str().expect("a shared page").to_owned();
    let path = format!("pages/{page_id}");
    let page = proxied(&app, &key, Method::GET, &bot, &path, None).await;
    assert_eq!(
        (page.status, &page.body),
        (200, &direct(&app, &bot, Method::GET, &path, None).await.body)
    );
    let missing = "pages/00000000-0000-4000-8000-000000000000";
    let unknown = proxied(&app, &key, Method::GET, &bot, missing, None).await;
    let direct_unknown = direct(&app, &bot, Method::GET, missing, None).await;
    assert_eq!((unknown.status, &unknown.body), (direct_unknown.status, &direct_unknown.body));
    assert_eq!(unknown.body["code"], "object_not_found");
    assert_eq!(unknown.own_error, None, "Notion's answer, not ours");

    // What reached Notion: the connection's token, the version, and nothing of ours.
    let token = app.tokens(&bot).await.access_token.unwrap();
    for request in app.emulator().requests_to(Endpoint::UsersMe) {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {}", token.expose_secret()).as_str())
        );
        assert_eq!(request.header("notion-version"), Some(notion_oauth::DEFAULT_NOTION_VERSION));
        assert!(request.header("cookie").is_none());
        assert!(!format!("{request:?}").contains(&key), "our API key never reaches Notion");
    }
    // The caller's Notion-Version is the one sent.
    let url = format!("{}/api/v1/connections/{bot}/notion/users/me", app.address);
    let older = http()
        .build()
        .unwrap()
        .get(url)
        .bearer_auth(&key)
        .header("Notion-Version", "2022-06-28")
        .send()
        .await
        .unwrap();
    assert_eq!(older.status().as_u16(), 200);
    let last = app.emulator().requests_to(Endpoint::UsersMe).pop().unwrap();
    assert_eq!(last.header("notion-version"), Some("2022-06-28"));
}

#[tokio::test]
async fn twenty_concurrent_calls_with_an_expired_token_cause_one_refresh_and_all_succeed() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    let before = app.tokens(&bot).await;
    app.emulator().expire_access_token(before.access_token.as_ref().unwrap().expose_secret());
    let refreshes = app.refresh_requests();

    let calls = (0..20).map(|_| proxied(&app, &key, Method::GET, &bot, "users/me", None));
    let answers = futures_util::future::join_all(calls).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.refresh_requests() - refreshes, 1, "one refresh at Notion for twenty 401s");
    let unauthorized = app
        .emulator()
        .requests_to(Endpoint::UsersMe)
        .iter()
        .filter(|r| r.status == Some(401))
        .count();
    println!(
        "concurrent 401s: {} of 20 calls got 401 from Notion, {} refresh at Notion, statuses {statuses:?}",
        unauthorized,
        app.refresh_requests() - refreshes
    );
    assert!(unauthorized >= 1, "the expired token was refused at least once");
    assert_ne!(app.tokens(&bot).await.generation, before.generation);
    // The refresh is in the connection's history like any other.
    let events = app.api().await.get(&format!("/connections/{bot}/events")).await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "refreshed").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn a_dead_refresh_token_answers_409_with_the_connect_url_and_the_connection_needs_reauth() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", Some("user-5")).await;
    let key = app.api_key().await;
    app.emulator().revoke_all_for_bot(&bot);

    let refused = proxied(&app, &key, Method::GET, &bot, "users/me", None).await;

    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "needs_reauth");
    let connect_url = refused.body["error"]["connect_url"].as_str().unwrap();
    assert!(connect_url.contains("/connect") && connect_url.contains("user-5"), "{connect_url}");
    let connection = app.api().await.get(&format!("/connections/{bot}")).await;
    assert_eq!(connection.body["status"], "needs_reauth");
}

/// Notion's 401 for a token it does not take, `times` times (else until cleared).
fn unauthorized(times: Option<u32>) -> FaultSpec {
    FaultSpec {
        kind: "error".into(),
        status: Some(401),
        code: Some("unauthorized".into()),
        message: Some("API token is invalid.".into()),
        times,
        ..FaultSpec::default()
    }
}

#[tokio::test]
async fn a_second_401_after_the_refresh_answers_409_and_refreshes_only_once() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    let refused = unauthorized(Some(2));
    app.emulator().arm("users_me", &refused).unwrap();
    let refreshes = app.refresh_requests();

    let answer = proxied(&app, &key, Method::GET, &bot, "users/me", None).await;

    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "notion_unauthorized");
    assert!(answer.body["error"]["connect_url"].as_str().is_some());
    assert_eq!(app.refresh_requests() - refreshes, 1);
    assert_eq!(app.emulator().requests_to(Endpoint::UsersMe).len(), 2, "sent twice, no more");
}

/// An app whose emulator limits the whole integration to `per_second` requests, with a burst
/// of as many.
async fn rate_limited_app(per_second: u32, proxy: ProxySettings) -> (TestApp, String, String) {
    let app = spawn_app_with(TestOptions { proxy, ..TestOptions::default() }).await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    let limit = RateLimit {
        requests_per_second: per_second,
        burst: per_second,
        per: RateLimitScope::Integration,
    };
    app.emulator()
        .apply(&EmulatorSettings { rate_limit: Some(limit), ..EmulatorSettings::default() })
        .unwrap();
    (app, bot, key)
}

async fn burst(app: &TestApp, key: &str, bot: &str, calls: usize) -> (Vec<Answer>, Duration) {
    let started = Instant::now();
    let calls = (0..calls)
        .map(|_| proxied(app, key, Method::POST, bot, "search", Some(json!({ "page_size": 1 }))));
    let answers = futures_util::future::join_all(calls).await;
    (answers, started.elapsed())
}

#[tokio::test]
async fn a_burst_over_notions_rate_limit_succeeds_within_the_budget_and_without_one_gets_429() {
    let (app, bot, key) = rate_limited_app(3, ProxySettings::default()).await;
    let (answers, took) = burst(&app, &key, &bot, 10).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let limited = app
        .emulator()
        .requests_to(Endpoint::Search)
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    println!(
        "rate limit, budget 10 s: 10 proxied searches against 3 req/s: statuses {statuses:?}, {limited} answered 429 by Notion and retried, in {took:?}"
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(limited > 0, "Notion's limit was hit, and waited out");

    let no_budget = ProxySettings { retry_budget_seconds: 0, ..ProxySettings::default() };
    let (app, bot, key) = rate_limited_app(3, no_budget).await;
    let (answers, _) = burst(&app, &key, &bot, 10).await;
    let passed_back: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    println!(
        "rate limit, budget 0 s: {} of 10 came back 429, Retry-After {:?}, body {}",
        passed_back.len(),
        passed_back.first().and_then(|a| a.retry_after.clone()),
        passed_back.first().map(|a| a.body.to_string()).unwrap_or_default()
    );
    assert!(!passed_back.is_empty(), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for answer in passed_back {
        assert!(
            answer.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()),
            "{answer:?}"
        );
        assert_eq!(answer.body["code"], "rate_limited", "Notion's own body");
    }
}

#[tokio::test]
async fn pacing_keeps_a_burst_under_notions_limit_so_it_never_answers_429() {
    let paced = ProxySettings { requests_per_second: 2.5, burst: 2, ..ProxySettings::default() };
    let (app, bot, key) = rate_limited_app(3, paced).await;
    let (answers, took) = burst(&app, &key, &bot, 8).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let limited = app
        .emulator()
        .requests_to(Endpoint::Search)
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    assert_eq!(limited, 0, "paced below Notion's limit, no 429 at all");
    assert!(
        took >= Duration::from_secs(2),
        "eight calls at 2.5/s with a burst of 2 take over 2 s: {took:?}"
    );
}

#[tokio::test]
async fn a_post_that_notion_failed_is_not_sent_again_but_one_it_rate_limited_is() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    // The success page's list searched once already.
    let searches = || app.emulator().requests_to(Endpoint::Search).len();
    let before = searches();
    let failed = FaultSpec {
        kind: "error".into(),
        status: Some(502),
        times: Some(1),
        ..FaultSpec::default()
    };
    app.emulator().arm("search", &failed).unwrap();
    let answer = proxied(&app, &key, Method::POST, &bot, "search", Some(json!({}))).await;
    assert_eq!(answer.status, 502, "Notion's failure passed back: {:?}", answer.body);
    assert_eq!(searches() - before, 1, "never sent twice");

    // A 429, then a 529: each sent again once.
    for (kind, sent) in [("rate_limited", 3), ("overloaded", 5)] {
        let slow_down = FaultSpec {
            kind: kind.into(),
            retry_after: Some(1),
            times: Some(1),
            ..FaultSpec::default()
        };
        app.emulator().arm("search", &slow_down).unwrap();
        let answer = proxied(&app, &key, Method::POST, &bot, "search", Some(json!({}))).await;
        assert_eq!(answer.status, 200, "{kind}");
        assert_eq!(searches() - before, sent, "{kind}: sent again once");
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_right_status_and_nothing_reaches_notion() {
    let app = spawn_app_with(TestOptions {
        proxy: ProxySettings { max_request_bytes: 2048, ..ProxySettings::default() },
        ..TestOptions::default()
    })
    .await;
    let bot = app.connected("Ada Lovelace", None).await;
    let revoked = app.connected("Grace Hopper", None).await;
    let key = app.api_key().await;
    assert_eq!(app.api().await.delete(&format!("/connections/{revoked}")).await.status, 204);
    let seen = app.emulator().requests().len();
    let client = http().build().unwrap();
    let base = format!("{}/api/v1/connections", app.address);
    let send = |method: Method, url: String| client.request(method, url).bearer_auth(&key);

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "encoded slash",
            send(Method::GET, format!("{base}/{bot}/notion/pages%2F..%2Foauth%2Ftoken")),
            400,
            "invalid_request",
        ),
        (
            "absolute URL",
            send(Method::GET, format!("{base}/{bot}/notion/http:%2F%2Fevil.example%2Fv1")),
            400,
            "invalid_request",
        ),
        (
            "other host",
            send(Method::GET, format!("{base}/{bot}/notion//evil.example/v1/users/me")),
            400,
            "invalid_request",
        ),
        (
            "oauth",
            send(Method::POST, format!("{base}/{bot}/notion/oauth/token")),
            400,
            "invalid_request",
        ),
        ("empty", send(Method::GET, format!("{base}/{bot}/notion/")), 404, "not_found"),
        (
            "body over the cap",
            send(Method::POST, format!("{base}/{bot}/notion/search")).body(vec![b' '; 4096]),
            413,
            "body_too_large",
        ),
        (
            "GET with a body",
            send(Method::GET, format!("{base}/{bot}/notion/users/me")).body("{}"),
            400,
            "invalid_request",
        ),
        (
            "bad Notion-Version",
            send(Method::GET, format!("{base}/{bot}/notion/users/me"))
                .header("Notion-Version", "banana"),
            400,
            "invalid_request",
        ),
        (
            "PUT",
            send(Method::PUT, format!("{base}/{bot}/notion/users/me")),
            405,
            "method_not_allowed",
        ),
        (
            "long query",
            send(Method::GET, format!("{base}/{bot}/notion/users/me?q={}", "x".repeat(5000))),
            400,
            "invalid_request",
        ),
        (
            "unknown bot",
            send(
                Method::GET,
                format!("{base}/9f1c0000-0000-4000-8000-000000000000/notion/users/me"),
            ),
            404,
            "not_found",
        ),
        (
            "revoked connection",
            send(Method::GET, format!("{base}/{revoked}/notion/users/me")),
            409,
            "revoked",
        ),
        ("no API key", client.get(format!("{base}/{bot}/notion/users/me")), 401, "unauthorized"),
        (
            "wrong API key",
            client.get(format!("{base}/{bot}/notion/users/me")).bearer_auth("noh_abc_wrong"),
            401,
            "unauthorized",
        ),
    ];
    for (name, request, status, code) in cases {
        let got = answer(request.send().await.unwrap()).await;
        assert_eq!(
            (got.status, got.body["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{name}: {:?}",
            got.body
        );
        // Ours, and said so (the API key's refusal and the route that does not exist are the
        // API's, before the proxy).
        if status != 401 && name != "empty" {
            assert_eq!(got.own_error.as_deref(), Some(code), "{name}");
        }
    }
    // An escape that is not UTF-8: our JSON error, not a framework's text.
    let undecodable =
        answer(send(Method::GET, format!("{base}/{bot}/notion/pages/%FF")).send().await.unwrap())
            .await;
    assert_eq!(
        (undecodable.status, undecodable.body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // Clients normalise `..` away before sending; one that does not (curl --path-as-is) is
    // refused too.
    for path in
        ["pages/../../oauth/token", "users/./me", "pages/..%2F..%2Foauth", "%2e%2e/oauth/token"]
    {
        let url = format!("/api/v1/connections/{bot}/notion/{path}");
        assert_eq!(raw_status(&app, &key, &url).await, 400, "{path}");
    }
    assert_eq!(app.emulator().requests().len(), seen, "nothing reached Notion");
}

/// The status of a GET of `path` sent exactly as written, as `curl --path-as-is` does.
async fn raw_status(app: &TestApp, key: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_embedding_app_calls_notion_for_a_connection_with_the_same_refresh() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let tokens = app.tokens(&bot).await;
    app.emulator().expire_access_token(tokens.access_token.as_ref().unwrap().expose_secret());
    let embedded = app.second_instance().await;
    let api = embedded.notion_api(BotId::new(bot.clone()));

    let me = api.get("users/me").await.unwrap();
    assert_eq!(me.status(), 200);
    let body: Value = serde_json::from_slice(&me.bytes().await.unwrap()).unwrap();
    assert_eq!(body["object"], "user");
    let found = api.post("search", &json!({ "page_size": 1 })).await.unwrap();
    assert_eq!(found.status(), 200);
    assert!(api.get("../oauth/token").await.is_err(), "the same path rules");
    assert_eq!(app.refresh_requests(), 1);
}

#[tokio::test]
async fn proxied_calls_are_counted_by_family_and_status_without_ids() {
    let app = spawn_app_with(TestOptions { metrics: true, ..TestOptions::default() }).await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    assert_eq!(proxied(&app, &key, Method::GET, &bot, "users/me", None).await.status, 200);
    let missing = "pages/00000000-0000-4000-8000-000000000000";
    assert_eq!(proxied(&app, &key, Method::GET, &bot, missing, None).await.status, 404);
    let metrics =
        http().build().unwrap().get(app.metrics_url.clone().unwrap()).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"noh_notion_proxy_requests_total{family="users",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"noh_notion_proxy_requests_total{family="pages",status="404"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(&bot) && !metrics.contains("00000000-0000-4000"), "no ids in labels");
}

#[tokio::test]
async fn a_token_notion_keeps_refusing_is_refreshed_once_not_on_every_call() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    let refused = unauthorized(None);
    app.emulator().arm("users_me", &refused).unwrap();
    let (refreshes, generation) = (app.refresh_requests(), app.tokens(&bot).await.generation);

    for _ in 0..4 {
        let answer = proxied(&app, &key, Method::GET, &bot, "users/me", None).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (409, Some("notion_unauthorized"))
        );
    }
    assert_eq!(app.refresh_requests() - refreshes, 1, "one refresh, not one per call");
    assert_eq!(app.tokens(&bot).await.generation, generation + 1);

    // The user connects again: the new pair is tried.
    app.emulator().clear_faults();
    app.connected("Ada Lovelace", None).await;
    assert_eq!(proxied(&app, &key, Method::GET, &bot, "users/me", None).await.status, 200);
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_one_calls_time_and_held_bodies_have_a_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(TestOptions {
        proxy: ProxySettings { timeout_seconds: 1, ..ProxySettings::default() },
        max_connections_per_client: 200,
        ..TestOptions::default()
    })
    .await;
    let bot = app.connected("Ada Lovelace", None).await;
    let key = app.api_key().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let head = |length: usize| {
        format!(
            "POST /api/v1/connections/{bot}/notion/search HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    // A byte every 0.4 s, each within the server's 10 s between reads: refused after 1 s.
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(head(100).as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        for _ in 0..20 {
            if slow.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1600), trickle).await;
    let mut answer = vec![0u8; 512];
    let read = slow.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Sixty-four bodies of 1 MiB declared and held at once fill the 64 MiB budget: the next is
    // told to come back, and nothing is read of it.
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream.write_all(head(1024 * 1024).as_bytes()).await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = http()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/connections/{bot}/notion/search", app.address))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(held);
    // Freed when they went away (or timed out).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = proxied(&app, &key, Method::POST, &bot, "search", Some(json!({}))).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
}

#[tokio::test]
async fn an_embedding_app_is_held_to_the_same_rules_as_the_route() {
    let app = spawn_app().await;
    let bot = app.connected("Ada Lovelace", None).await;
    let embedded = app.second_instance().await;
    let api = embedded.notion_api(BotId::new(bot));
    let seen = app.emulator().requests().len();
    let path = notion_oauth_handler::proxy::ApiPath::parse("users/me").unwrap();
    let mut request = notion_oauth_handler::proxy::ApiRequest::new(
        notion_oauth_handler::proxy::ApiMethod::Get,
        path,
    );
    request.notion_version = Some("banana\r\nX-Evil: 1".into());
    let refused = api.send(&request).await.unwrap_err();
    assert!(refused.to_string().contains("Notion-Version must be a date"), "{refused}");
    request.notion_version = None;
    request.query = Some("q=".to_owned() + &"x".repeat(5000));
    assert!(api.send(&request).await.is_err());
    assert_eq!(app.emulator().requests().len(), seen, "nothing reached Notion");
}

//! What a hostile visitor or a careless client can do with requests anyone may send.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use notion_oauth_handler::config::RateLimitSettings;
use reqwest::StatusCode;

use crate::helpers::{
    Browser, Receiver, TestOptions, accepted, http, spawn_app, spawn_app_with, webhook,
};

#[tokio::test]
async fn a_head_request_uses_up_neither_a_state_nor_a_link() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;

    // Link checkers and previewers send HEAD first.
    let head = browser.client.head(callback.as_str()).send().await.unwrap();
    let connect = browser.client.head(format!("{}/connect", app.address)).send().await.unwrap();

    for (what, answer) in [("callback", &head), ("connect", &connect)] {
        assert_eq!(answer.status().as_u16(), 405, "HEAD {what}");
        assert_eq!(answer.headers()["allow"], "GET", "HEAD {what}");
        assert!(answer.headers().get("set-cookie").is_none(), "HEAD {what} set a cookie");
    }
    assert_eq!(app.token_requests(), 0, "HEAD /callback reached Notion");
    let page = app.callback(&browser, callback.as_str()).await;
    assert_eq!((page.status, page.reason()), (200, "created"), "{}", page.body);
}

#[tokio::test]
async fn an_error_on_the_callback_is_believed_only_with_this_browsers_state() {
    let app = spawn_app().await;
    let browser = Browser::new();

    // Anyone can type this: it is a bad request, not Notion failing.
    let typed = app.callback_with_query(&browser, "error=server_error&state=").await;
    let forged = app.callback_with_query(&browser, "error=server_error&state=abc.def").await;

    for page in [&typed, &forged] {
        assert_eq!((page.status, page.reason()), (400, "unknown_flow"), "{}", page.body);
        assert!(!page.body.contains("server_error"), "the visitor's words are not shown");
    }
    // The same error in a flow this browser started is Notion's, and reported as such.
    let authorize = app.connect(&browser, None).await;
    let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let query = format!("error=server_error&state={}", urlencode(&state));
    let real = app.callback_with_query(&browser, &query).await;
    assert_eq!((real.status, real.reason()), (502, "notion_error"), "{}", real.body);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn every_answer_carries_the_headers_that_keep_browsers_from_misreading_it() {
    let app = spawn_app_with(TestOptions {
        public_url: Some("https://oauth.example.com"),
        ..TestOptions::default()
    })
    .await;
    let browser = Browser::new();
    let key = app.api_key().await;

    let landing = browser.get(&format!("{}/", app.address)).await;
    let document = browser.get(&format!("{}/privacy", app.address)).await;
    let listed = browser
        .client
        .get(format!("{}/api/v1/connections", app.address))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let refused = browser.get(&format!("{}/api/v1/connections", app.address)).await;

    for (what, answer) in
        [("page", &landing), ("document", &document), ("API", &listed), ("401", &refused)]
    {
        let headers = answer.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["strict-transport-security"], "max-age=31536000", "{what}");
    }
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(document.headers()["x-frame-options"], "DENY");
    // Over plain http (localhost development) there is nothing to pin.
    let local = spawn_app().await;
    let page = browser.get(&format!("{}/", local.address)).await;
    assert!(page.headers().get("strict-transport-security").is_none());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.connected("Ada Lovelace", None).await;
    for name in ["connections.db", "connections.db-wal"] {
        let path = app.dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
}

#[tokio::test]
async fn a_database_file_deleted_under_the_server_fails_readiness_and_every_write() {
    let app = spawn_app().await;
    let browser = Browser::new();
    app.connected("Ada Lovelace", None).await;
    let readyz = format!("{}/readyz", app.address);
    assert_eq!(browser.get(&readyz).await.status().as_u16(), 200);

    let file = app.dir.path().join("connections.db");
    std::fs::remove_file(&file).unwrap();

    let ready = browser.get(&readyz).await;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    // No success page for a connection that would vanish at the next restart.
    let page = app.add_to_notion(&browser, "Grace Hopper", None).await;
    assert_eq!(page.status, 500, "{}", page.body);
    assert!(page.body.contains("Nothing was saved"), "{}", page.body);
    assert!(!file.exists(), "the database was silently made again, empty");
}

/// The address `host:port` of an app's server.
fn socket_address(app: &crate::helpers::TestApp) -> String {
    app.address.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// Reads until the server closes the connection (or `limit` passes): how long that took.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// `GET /healthz` on an open connection, kept alive: the status line.
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.ends_with(b"}") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_client_dribbling_its_headers_or_idling_is_dropped_after_the_header_timeout() {
    let app =
        spawn_app_with(TestOptions { header_timeout_seconds: 1, ..TestOptions::default() }).await;
    let address = socket_address(&app);

    // One byte of header every 300 ms: never a whole header.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    let dribble = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), dribble).await;
    let closed = time_until_closed(&mut slow, Duration::from_secs(1)).await;
    assert!(closed.is_some(), "a dribbled header held the connection for 4 s");

    // A kept-alive connection that asks nothing more.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    assert!(healthz_on(&mut idle).await.contains("200"));
    let closed = time_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed.is_some_and(|after| after < Duration::from_secs(3)), "{closed:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_the_server_keeps_answering() {
    let app = spawn_app_with(TestOptions {
        max_connections: 8,
        header_timeout_seconds: 2,
        ..TestOptions::default()
    })
    .await;
    let address = socket_address(&app);
    let mut mine = TcpStream::connect(&address).await.unwrap();
    assert!(healthz_on(&mut mine).await.contains("200"));

    // Silent sockets, as a flood of them would be: the first 7 fill the cap beside mine.
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(&address).await.unwrap());
    }
    let closed = futures_util::future::join_all(
        flood.iter_mut().map(|socket| time_until_closed(socket, Duration::from_millis(500))),
    )
    .await;
    let closed_at_once = closed.iter().filter(|closed| closed.is_some()).count();

    assert_eq!(closed_at_once, 13, "beyond the cap of 8, every connection is closed");
    assert!(healthz_on(&mut mine).await.contains("200"), "a connection inside the cap is served");
    // The silent ones are dropped at the header timeout, and new clients get in again.
    let mut later = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut fresh = TcpStream::connect(&address).await.unwrap();
        if time_until_closed(&mut fresh, Duration::from_millis(100)).await.is_none() {
            later = Some(healthz_on(&mut fresh).await);
            break;
        }
    }
    assert!(later.is_some_and(|status| status.contains("200")), "no slot came free");
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let app = spawn_app_with(TestOptions {
        max_connections: 64,
        max_connections_per_client: 4,
        // Loopback is a trusted proxy by default, which this cap leaves alone.
        trusted_proxies: Some(Vec::new()),
        ..TestOptions::default()
    })
    .await;
    let address = socket_address(&app);
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(TcpStream::connect(&address).await.unwrap());
    }
    let closed = futures_util::future::join_all(
        flood.iter_mut().map(|socket| time_until_closed(socket, Duration::from_millis(500))),
    )
    .await;
    assert_eq!(closed.iter().filter(|closed| closed.is_some()).count(), 6, "beyond 4 per client");

    // Another address is another client: served while the first holds its four.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(address.parse().unwrap()).await.unwrap();
    assert!(healthz_on(&mut other).await.contains("200"));
    // The first client gets a slot back when one of its connections closes.
    drop(flood);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(&address).await.unwrap();
    assert!(healthz_on(&mut again).await.contains("200"));
}

#[tokio::test]
async fn a_flood_of_cancelled_flows_with_one_ref_is_one_event_and_says_the_ref_was_not_signed() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        webhooks: vec![webhook("app", &receiver.url)],
        // The rate limit would stop this flood before the events are looked at.
        rate_limit: RateLimitSettings {
            flow_requests_per_minute: 0,
            ..RateLimitSettings::default()
        },
        ..TestOptions::default()
    })
    .await;

    // What a script can do with no Notion account: start a flow, cancel it, again and again.
    for _ in 0..100 {
        let browser = Browser::new();
        let authorize = app.connect(&browser, Some("victim")).await;
        let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
        let query = format!("error=access_denied&state={}", urlencode(&state));
        assert_eq!(app.callback_with_query(&browser, &query).await.status, 200);
    }
    // A flow from a one-time link the app made: its ref is vouched for.
    let made: serde_json::Value = http()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/connect-links", app.address))
        .bearer_auth(app.api_key().await)
        .json(&serde_json::json!({ "ref": "signed-user" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = Browser::new();
    let link = browser.get(made["url"].as_str().unwrap()).await;
    let authorize = url::Url::parse(link.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "deny", "Grace Hopper").await;
    assert_eq!(app.callback(&browser, back.as_str()).await.status, 200);
    let bot = app.connected("Ada Lovelace", None).await;

    receiver.wait_for("the creation and two denials", |r| accepted(r).len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    let denials: Vec<serde_json::Value> = received
        .iter()
        .filter(|r| r.headers["notion-oauth-event-type"] == "connection.denied")
        .map(|r| r.json()["data"].clone())
        .collect();
    assert_eq!(
        denials.len(),
        2,
        "one per ref, not one per cancelled flow: {denials:?} (and {} in all)",
        received.len()
    );
    assert!(denials.contains(&serde_json::json!(
        { "ref": "victim", "ref_signed": false, "error": "access_denied" }
    )));
    assert!(denials.contains(&serde_json::json!(
        { "ref": "signed-user", "ref_signed": true, "error": "access_denied" }
    )));
    assert!(received.iter().any(|r| r.json()["data"]["bot_id"] == bot.as_str()));
}

/// Limits small enough to reach in a test: three flow requests, then one a second; two failed
/// keys, then one a second.
fn tight_limits() -> RateLimitSettings {
    RateLimitSettings {
        flow_requests_per_minute: 60,
        flow_burst: 3,
        failed_api_keys_per_minute: 60,
        failed_api_key_burst: 2,
    }
}

/// `GET /connect` as a proxy in front would forward it, naming the client in `header`.
async fn connect_from(app: &crate::helpers::TestApp, header: &str, value: &str) -> StatusCode {
    let client = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let request = client.get(format!("{}/connect", app.address)).header(header, value);
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn a_client_past_its_flow_rate_gets_a_page_saying_when_to_come_back() {
    let app =
        spawn_app_with(TestOptions { rate_limit: tight_limits(), ..TestOptions::default() }).await;
    let browser = Browser::new();
    for attempt in 1..=3 {
        let answer = browser.get(&format!("{}/connect", app.address)).await;
        assert_eq!(answer.status(), StatusCode::FOUND, "attempt {attempt}");
    }
    // /callback counts with /connect: a flood of either is the same client starting flows.
    for path in ["/connect", "/callback?code=c&state=s"] {
        let answer = browser.get(&format!("{}{path}", app.address)).await;
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = answer.text().await.unwrap();
        assert!(body.contains(r#"data-reason="rate_limited""#), "{body}");
        assert!(body.contains("Wait"), "the page says what to do: {body}");
    }
    // Nothing else is limited: probes, the landing page, the API.
    for path in ["/healthz", "/readyz", "/"] {
        assert_eq!(browser.get(&format!("{}{path}", app.address)).await.status(), 200, "{path}");
    }
    assert_eq!(app.api().await.get("/connections").await.status, 200);
    // The rate comes back: one request a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = browser.get(&format!("{}/connect", app.address)).await;
    assert_eq!(answer.status(), StatusCode::FOUND, "after waiting");
}

#[tokio::test]
async fn a_forwarded_header_names_the_client_only_when_a_trusted_proxy_sent_it() {
    // Nothing trusted: the header is anyone's to write, and every request is the peer's.
    let app = spawn_app_with(TestOptions {
        rate_limit: tight_limits(),
        trusted_proxies: Some(Vec::new()),
        ..TestOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for client in 1..=4 {
        statuses.push(connect_from(&app, "x-forwarded-for", &format!("203.0.113.{client}")).await);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");

    // This machine trusted (the default): each named client has its own rate...
    let app =
        spawn_app_with(TestOptions { rate_limit: tight_limits(), ..TestOptions::default() }).await;
    for client in 1..=4 {
        let named = format!("203.0.113.{client}");
        assert_eq!(connect_from(&app, "x-forwarded-for", &named).await, StatusCode::FOUND);
    }
    // ...and what a client writes before its address cannot buy it a new one: the proxy
    // appended the address it saw, and that is the one counted.
    let mut statuses = Vec::new();
    for forged in 1..=4 {
        let chain = format!("198.51.100.{forged}, 203.0.113.200");
        statuses.push(connect_from(&app, "x-forwarded-for", &chain).await);
    }
    assert_eq!(
        statuses,
        [StatusCode::FOUND, StatusCode::FOUND, StatusCode::FOUND, StatusCode::TOO_MANY_REQUESTS]
    );

    // RFC 7239's header when configured; IPv6 clients are told apart by /64.
    let app = spawn_app_with(TestOptions {
        rate_limit: tight_limits(),
        forwarded_header: Some("Forwarded"),
        ..TestOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for host in 1..=4 {
        let value = format!("for=\"[2001:db8:1:2::{host}]:4711\";proto=https");
        statuses.push(connect_from(&app, "forwarded", &value).await);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let other = connect_from(&app, "forwarded", "for=\"[2001:db8:1:3::1]\"").await;
    assert_eq!(other, StatusCode::FOUND, "another /64 is another client");
    // X-Forwarded-For is not read when Forwarded is configured.
    let mut statuses = Vec::new();
    for client in 1..=4 {
        statuses.push(connect_from(&app, "x-forwarded-for", &format!("192.0.2.{client}")).await);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

#[tokio::test]
async fn a_client_that_fails_api_keys_is_shut_out_then_let_back() {
    let app =
        spawn_app_with(TestOptions { rate_limit: tight_limits(), ..TestOptions::default() }).await;
    let api = app.api().await;
    // Valid calls do not count, however many.
    for _ in 0..20 {
        assert_eq!(api.get("/connections").await.status, 200);
    }
    let guess = api.with_key("noh_0000000000000000_guess");
    assert_eq!(guess.get("/connections").await.status, 401);
    assert_eq!(api.with_key("not a key at all").get("/connections").await.status, 401);
    let refused = guess.get("/connections").await;
    assert_eq!((refused.status, refused.error_code()), (429, "rate_limited"), "{}", refused.body);
    assert_eq!(refused.headers["retry-after"], "1");
    // Now even the right key waits: otherwise guessing would go on, 429 meaning "wrong".
    let right = api.get("/connections").await;
    assert_eq!((right.status, right.error_code()), (429, "rate_limited"));
    // Another client behind the proxy is not held up.
    let response = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/connections", app.address))
        .bearer_auth(app.api_key().await)
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("/connections").await.status, 200, "let back after Retry-After");
}

#[tokio::test]
async fn a_request_body_that_stops_coming_is_given_up_after_the_header_timeout() {
    let app =
        spawn_app_with(TestOptions { header_timeout_seconds: 1, ..TestOptions::default() }).await;
    let key = app.api_key().await;
    let mut stream = TcpStream::connect(socket_address(&app)).await.unwrap();
    let head = format!(
        "POST /api/v1/connect-links HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"ref\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();

    // The rest of the body never comes.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after 5 s");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "given up after {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

//! Smoke tests of the whole router, in-process via `oneshot` (one over loopback): the flows the server relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Emulator, EmulatorConfig, Endpoint, ErrorShape, Fault, ReauthMode};

const CB: &str = "http://localhost:3000/callback";

fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config =
        EmulatorConfig { redirect_uris: vec![CB.to_owned()], ..EmulatorConfig::default() };
    tweak(&mut config);
    Emulator::new(config)
}

async fn send(emulator: &Emulator, request: Request<Body>) -> Response {
    emulator.router().oneshot(request).await.unwrap()
}

async fn json_of(response: Response) -> Value {
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn location(response: &Response) -> url::Url {
    let raw = response.headers()[header::LOCATION].to_str().unwrap();
    url::Url::parse(raw).unwrap()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn basic(emulator: &Emulator) -> String {
    let (id, secret) =
        emulator.with(|s| (s.config.client_id.clone(), s.config.client_secret.clone()));
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn authorize_url(emulator: &Emulator, extra: &str) -> String {
    let id = emulator.with(|s| s.config.client_id.clone());
    format!(
        "/v1/oauth/authorize?client_id={id}&response_type=code&owner=user&redirect_uri={}&state=st%201{extra}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    )
}

async fn get(emulator: &Emulator, uri: &str) -> Response {
    send(emulator, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_json(emulator: &Emulator, path: &str, auth: &str, body: Value) -> Response {
    let request = Request::post(path)
        .header(header::AUTHORIZATION, auth)
        .header(header::CONTENT_TYPE, "application/json")
        .header("notion-version", "2026-03-11")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(emulator, request).await
}

async fn code_for(emulator: &Emulator, extra: &str) -> String {
    let response =
        get(emulator, &authorize_url(emulator, &format!("&mock_decision=allow{extra}"))).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let url = location(&response);
    assert_eq!(query(&url, "state").as_deref(), Some("st 1"));
    query(&url, "code").unwrap()
}

async fn exchange(emulator: &Emulator, code: &str) -> Response {
    let body = json!({"grant_type": "authorization_code", "code": code, "redirect_uri": CB});
    post_json(emulator, "/v1/oauth/token", &basic(emulator), body).await
}

async fn users_me(emulator: &Emulator, token: &str) -> Response {
    let request = Request::get("/v1/users/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("notion-version", "2026-03-11")
        .body(Body::empty())
        .unwrap();
    send(emulator, request).await
}

#[tokio::test]
async fn code_exchange_api_refresh_revoke() {
    let emulator = emulator(|_| {});
    let code = code_for(&emulator, "").await;
    let response = exchange(&emulator, &code).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-notion-request-id"));
    let tokens = json_of(response).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("ntn_") && refresh.starts_with("nrt_"));
    assert_eq!(tokens["owner"]["user"]["name"], "Ada Lovelace");
    assert_eq!(tokens["workspace_name"], "Acme Corp");
    assert!(emulator.issued_secrets().contains(&code));

    // Second use of the code.
    let again = json_of(exchange(&emulator, &code).await).await;
    assert_eq!(again["error"], "invalid_grant");
    assert_eq!(again["error_description"], "Invalid code: this code has been revoked.");

    let me = json_of(users_me(&emulator, &access).await).await;
    assert_eq!(me["id"], tokens["bot_id"]);
    assert_eq!(me["bot"]["owner"], tokens["owner"]);

    let intro = json_of(
        post_json(&emulator, "/v1/oauth/introspect", &basic(&emulator), json!({"token": access}))
            .await,
    )
    .await;
    assert_eq!(intro["active"], true);
    assert!(intro["iat"].as_u64().unwrap() > 1_700_000_000_000);

    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let rotated =
        json_of(post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body.clone()).await)
            .await;
    assert_eq!(rotated["bot_id"], tokens["bot_id"]);
    assert_ne!(rotated["access_token"], tokens["access_token"]);
    assert!(!emulator.is_access_token_active(&access));
    assert!(!emulator.is_refresh_token_active(&refresh));
    let reused =
        json_of(post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body).await).await;
    assert_eq!(reused["error_description"], "Invalid refresh token");

    let new_access = rotated["access_token"].as_str().unwrap();
    let revoked =
        post_json(&emulator, "/v1/oauth/revoke", &basic(&emulator), json!({"token": new_access}))
            .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let me = users_me(&emulator, new_access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(me).await["code"], "unauthorized");
}

#[tokio::test]
async fn consent_page_then_form_post() {
    let emulator = emulator(|_| {});
    let page = get(&emulator, &authorize_url(&emulator, "&scope=x&code_challenge=y")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().contains_key("x-notion-request-id"));
    let id = emulator.with(|s| s.config.client_id.clone());
    let form = format!(
        "client_id={id}&response_type=code&owner=user&redirect_uri={}&state=s&user=Grace+Hopper&workspace=Personal&decision=allow",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let request = Request::post("/v1/oauth/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.clone()))
        .unwrap();
    let response = send(&emulator, request).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = query(&location(&response), "code").unwrap();
    let tokens = json_of(exchange(&emulator, &code).await).await;
    assert_eq!(tokens["owner"]["user"]["person"]["email"], "grace.hopper@example.com");
    assert_eq!(tokens["workspace_name"], "Personal");

    // Tampered hidden field.
    let request = Request::post("/v1/oauth/authorize")
        .body(Body::from(form.replace("callback", "evil")))
        .unwrap();
    let response = send(&emulator, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.headers().contains_key(header::LOCATION));
}

#[tokio::test]
async fn deny_and_invalid_authorize() {
    let emulator = emulator(|c| c.echo_state_on_deny = false);
    let response = get(&emulator, &authorize_url(&emulator, "&mock_decision=deny")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        location(&response).as_str(),
        "http://localhost:3000/callback?error=access_denied&state="
    );
    let response =
        get(&emulator, "/v1/oauth/authorize?client_id=nope&response_type=code&owner=user").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.headers().contains_key(header::LOCATION));
}

#[tokio::test]
async fn reauthorization_keeps_bot_id() {
    for mode in [ReauthMode::FreshPair, ReauthMode::SameToken] {
        let emulator = emulator(|c| c.reauth = mode);
        let ada = "&mock_user=Ada+Lovelace";
        let first = json_of(exchange(&emulator, &code_for(&emulator, ada).await).await).await;
        let second = json_of(exchange(&emulator, &code_for(&emulator, ada).await).await).await;
        // A flow that names no user is a person of its own: it re-authorizes nobody.
        let unnamed = json_of(exchange(&emulator, &code_for(&emulator, "").await).await).await;
        assert_ne!(unnamed["bot_id"], first["bot_id"]);
        let other = json_of(
            exchange(&emulator, &code_for(&emulator, "&mock_user=Bob&mock_template=1").await).await,
        )
        .await;
        assert_eq!(first["bot_id"], second["bot_id"]);
        assert_ne!(first["bot_id"], other["bot_id"]);
        assert_eq!(first["workspace_id"], other["workspace_id"]);
        assert!(other["duplicated_template_id"].is_string());
        let same = first["access_token"] == second["access_token"];
        assert_eq!(same, mode == ReauthMode::SameToken);
        let first_access = first["access_token"].as_str().unwrap();
        assert_eq!(emulator.is_access_token_active(first_access), same);
    }
}

#[tokio::test]
async fn client_auth_and_body_encodings() {
    let emulator = emulator(|c| c.error_shape = ErrorShape::Notion);
    let code = code_for(&emulator, "").await;
    let bad = post_json(&emulator, "/v1/oauth/token", "Basic Zm9vOmJhcg==", json!({})).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let bad = json_of(bad).await;
    assert_eq!(
        (bad["object"].as_str(), bad["code"].as_str()),
        (Some("error"), Some("invalid_client"))
    );

    let missing = post_json(
        &emulator,
        "/v1/oauth/token",
        &basic(&emulator),
        json!({"grant_type": "authorization_code", "code": code}),
    )
    .await;
    assert_eq!(json_of(missing).await["code"], "invalid_request");

    // Form encoding, no Notion-Version.
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    );
    let request = Request::post("/v1/oauth/token")
        .header(header::AUTHORIZATION, basic(&emulator))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    assert_eq!(send(&emulator, request).await.status(), StatusCode::OK);

    emulator.set_client_secret("rotated");
    let stale = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:secret_dev", emulator.with(|s| s.config.client_id.clone())))
    );
    let response = post_json(
        &emulator,
        "/v1/oauth/token",
        &stale,
        json!({"grant_type": "refresh_token", "refresh_token": "nrt_x"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Recorded before the auth check.
    assert_eq!(emulator.requests_to(Endpoint::Token).len(), 4);
}

#[tokio::test]
async fn faults_and_catch_alls() {
    let emulator = emulator(|_| {});
    emulator.set_fault_times(
        Endpoint::Token,
        Fault::Error {
            status: 503,
            code: "service_unavailable".to_owned(),
            message: "down".to_owned(),
        },
        1,
    );
    let code = code_for(&emulator, "").await;
    let failed = exchange(&emulator, &code).await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(failed.headers().contains_key("x-notion-request-id"));
    assert_eq!(json_of(failed).await["error"], "service_unavailable");
    assert_eq!(exchange(&emulator, &code).await.status(), StatusCode::OK);

    emulator.set_fault(Endpoint::Introspect, Fault::NonJson);
    let response = post_json(&emulator, "/v1/oauth/introspect", "", json!({})).await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");

    emulator.set_fault(Endpoint::Token, Fault::MissingFields);
    let body = json_of(exchange(&emulator, "whatever").await).await;
    assert!(body.get("access_token").is_none());

    emulator.set_fault(Endpoint::Authorize, Fault::MissingFields);
    let response = get(&emulator, &authorize_url(&emulator, "&mock_decision=allow")).await;
    assert_eq!(query(&location(&response), "code"), None);
    emulator.clear_faults();

    emulator.set_fault(Endpoint::Search, Fault::Delay(Duration::from_millis(20)));
    let response = post_json(&emulator, "/v1/search", "Bearer nope", json!({})).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = get(&emulator, "/v1/blocks/123").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().contains_key("x-notion-request-id"));
    assert_eq!(json_of(response).await["code"], "invalid_request_url");
    let response = get(&emulator, "/v1/oauth/token").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().contains_key("x-notion-request-id"));
    let last = emulator.requests().pop().unwrap();
    assert_eq!((last.endpoint, last.method.as_str()), (Some(Endpoint::Token), "GET"));
    assert!(emulator.requests().iter().any(|r| r.endpoint.is_none()));
}

#[tokio::test]
async fn api_requires_version() {
    let emulator = emulator(|c| c.auto_approve = true);
    // Nothing shared: search finds nothing, as for a bot given no page.
    let response = get(&emulator, &authorize_url(&emulator, "&mock_pages=none")).await;
    let code = query(&location(&response), "code").unwrap();
    let tokens = json_of(exchange(&emulator, &code).await).await;
    let request = Request::post("/v1/search")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    let response = json_of(send(&emulator, request).await).await;
    assert_eq!(response["code"], "missing_version");
    let token = tokens["access_token"].as_str().unwrap();
    let auth = format!("Bearer {token}");
    let search =
        json_of(post_json(&emulator, "/v1/search", &auth, json!({"query": ""})).await).await;
    assert_eq!(search["object"], "list");
    assert_eq!(search["results"], json!([]));
    emulator.revoke_all_for_bot(tokens["bot_id"].as_str().unwrap());
    assert!(!emulator.is_access_token_active(token));
}

#[tokio::test]
async fn spawn_serves_on_loopback() {
    let running = Emulator::spawn(EmulatorConfig::default(), "127.0.0.1:0").await.unwrap();
    assert!(running.base_url().starts_with("http://127.0.0.1:"));
    assert!(!running.base_url().ends_with('/'));
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /v1/nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"));
    assert!(reply.contains("x-notion-request-id"));
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_its_refresh_token_still_works() {
    let emulator = emulator(|_| {});
    let code = code_for(&emulator, "").await;
    let tokens = json_of(exchange(&emulator, &code).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    emulator.expire_access_token(access);

    assert!(!emulator.is_access_token_active(access));
    assert_eq!(users_me(&emulator, access).await.status(), StatusCode::UNAUTHORIZED);
    let intro = json!({"token": access});
    let intro = post_json(&emulator, "/v1/oauth/introspect", &basic(&emulator), intro).await;
    assert_eq!(json_of(intro).await["active"], false);
    assert!(emulator.is_refresh_token_active(refresh));
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let rotated = post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body).await;
    let rotated = json_of(rotated).await;
    assert!(emulator.is_access_token_active(rotated["access_token"].as_str().unwrap()));
}

async fn exchange_with(
    emulator: &Emulator,
    auth: &str,
    code: &str,
    redirect_uri: &str,
) -> Response {
    let body =
        json!({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri});
    post_json(emulator, "/v1/oauth/token", auth, body).await
}

#[tokio::test]
async fn bench_mode_exchanges_any_code_as_its_own_install() {
    let emulator = emulator(|c| c.bench = true);
    let auth = basic(&emulator);
    let first = exchange_with(&emulator, &auth, "made-up-1", CB).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = json_of(first).await;
    // The redirect URI is not checked, nor whether it should have been sent.
    let again =
        json_of(exchange_with(&emulator, &auth, "made-up-1", "http://x/elsewhere").await).await;
    let other = json_of(exchange(&emulator, "made-up-2").await).await;
    assert_eq!(first["bot_id"], again["bot_id"]);
    assert_eq!(first["workspace_id"], again["workspace_id"]);
    assert_ne!(first["access_token"], again["access_token"]);
    assert_ne!(first["refresh_token"], again["refresh_token"]);
    assert_ne!(first["bot_id"], other["bot_id"]);
    assert_ne!(first["workspace_id"], other["workspace_id"]);
    assert!(!emulator.is_access_token_active(first["access_token"].as_str().unwrap()));
    let access = again["access_token"].as_str().unwrap();
    let me = json_of(users_me(&emulator, access).await).await;
    assert_eq!(me["id"], again["bot_id"]);

    let refused = exchange_with(&emulator, "Basic Zm9vOmJhcg==", "made-up-3", CB).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(refused).await["error"], "invalid_client");
    let empty = exchange(&emulator, "").await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(empty).await["error"], "invalid_grant");

    // Authorize approves at once, without a consent page.
    let response = get(&emulator, &authorize_url(&emulator, "")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = query(&location(&response), "code").unwrap();
    assert_eq!(exchange(&emulator, &code).await.status(), StatusCode::OK);
    assert!(emulator.issued_secrets().is_empty());
    assert!(emulator.requests().is_empty());
}

#[tokio::test]
async fn without_bench_mode_an_unknown_code_is_refused() {
    let emulator = emulator(|_| {});
    let refused = exchange(&emulator, "made-up-1").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(refused).await["error"], "invalid_grant");
}

async fn access_token(emulator: &Emulator) -> (String, String) {
    let code = code_for(emulator, "").await;
    let tokens = json_of(exchange(emulator, &code).await).await;
    let text = |key: &str| tokens[key].as_str().unwrap().to_owned();
    (text("access_token"), text("refresh_token"))
}

async fn admin(emulator: &Emulator, method: &str, path: &str, body: Option<Value>) -> Response {
    let request = Request::builder().method(method).uri(format!("/_mock{path}"));
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    send(emulator, request.unwrap()).await
}

#[tokio::test]
async fn the_api_is_rate_limited_per_token_with_notions_429_and_a_whole_retry_after() {
    let emulator = emulator(|_| {});
    let (first, _) = access_token(&emulator).await;
    let limit = json!({"rate_limit": {"requests_per_second": 1, "burst": 2, "per": "token"}});
    assert_eq!(admin(&emulator, "PATCH", "/settings", Some(limit)).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(users_me(&emulator, &first).await.status(), StatusCode::OK);
    }
    let limited = users_me(&emulator, &first).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
    let body = json_of(limited).await;
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["additional_data"]["rate_limit_reason"], "public_api_request_rate_limit");
    // The OAuth endpoints are not limited, and another user's token has its own budget.
    let (other_user, _) = {
        let code = code_for(&emulator, "&mock_user=Grace+Hopper").await;
        let tokens = json_of(exchange(&emulator, &code).await).await;
        (tokens["access_token"].as_str().unwrap().to_owned(), ())
    };
    assert_eq!(users_me(&emulator, &other_user).await.status(), StatusCode::OK);

    // Per workspace: both users are in Acme Corp, so they share one budget.
    let per_workspace =
        json!({"rate_limit": {"requests_per_second": 1, "burst": 1, "per": "workspace"}});
    admin(&emulator, "PATCH", "/settings", Some(per_workspace)).await;
    assert_eq!(users_me(&emulator, &first).await.status(), StatusCode::OK);
    let shared = json_of(users_me(&emulator, &other_user).await).await;
    assert_eq!(
        shared["additional_data"]["rate_limit_reason"],
        "public_api_space_request_rate_limit"
    );
    // Off again.
    let off = json!({"rate_limit": {"requests_per_second": 0}});
    admin(&emulator, "PATCH", "/settings", Some(off)).await;
    assert_eq!(users_me(&emulator, &first).await.status(), StatusCode::OK);
    assert!(emulator.settings().rate_limit.is_some_and(|r| r.requests_per_second == 0));
}

#[tokio::test]
async fn settings_switch_at_run_time_and_bad_ones_change_nothing() {
    let emulator = emulator(|_| {});
    let before = json_of(admin(&emulator, "GET", "/settings", None).await).await;
    assert_eq!(before["error_shape"], "oauth");
    assert_eq!(before["reauth"], "fresh_pair");
    let patch = json!({"error_shape": "notion", "reauth": "same_token", "code_ttl_seconds": 5});
    let after = json_of(admin(&emulator, "PATCH", "/settings", Some(patch)).await).await;
    assert_eq!(
        (after["error_shape"].clone(), after["code_ttl_seconds"].clone()),
        (json!("notion"), json!(5))
    );
    let refused =
        post_json(&emulator, "/v1/oauth/token", &basic(&emulator), json!({"grant_type": "x"}))
            .await;
    assert_eq!(json_of(refused).await["object"], "error", "now in Notion's shape");
    for bad in [
        json!({"code_ttl_seconds": 0}),
        json!({"workspaces": []}),
        json!({"reauth": "sometimes"}),
        json!({"no_such_setting": true}),
        json!({"error_shape": "notion", "old_token_grace_seconds": 999_999}),
    ] {
        let answer = admin(&emulator, "PATCH", "/settings", Some(bad.clone())).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json_of(answer).await["code"], "validation_error");
    }
    assert_eq!(json_of(admin(&emulator, "GET", "/settings", None).await).await, after);
}

#[tokio::test]
async fn faults_and_the_request_log_over_the_admin_endpoint() {
    let emulator = emulator(|_| {});
    let (token, _) = access_token(&emulator).await;
    let overloaded = json!({"kind": "overloaded", "retry_after": 3, "times": 1});
    assert_eq!(admin(&emulator, "PUT", "/faults/users_me", Some(overloaded)).await.status(), 204);
    let answer = users_me(&emulator, &token).await;
    assert_eq!(answer.status().as_u16(), 529);
    assert_eq!(answer.headers()[header::RETRY_AFTER], "3");
    assert_eq!(json_of(answer).await["code"], "service_overload");
    assert_eq!(users_me(&emulator, &token).await.status(), StatusCode::OK, "once only");

    let limited = json!({"kind": "rate_limited", "retry_after": 2});
    admin(&emulator, "PUT", "/faults/search", Some(limited)).await;
    let searched = post_json(&emulator, "/v1/search", &format!("Bearer {token}"), json!({})).await;
    assert_eq!(searched.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(searched.headers()[header::RETRY_AFTER], "2");
    assert_eq!(admin(&emulator, "DELETE", "/faults", None).await.status(), 204);
    let searched = post_json(&emulator, "/v1/search", &format!("Bearer {token}"), json!({})).await;
    assert_eq!(searched.status(), StatusCode::OK);

    for bad in [
        ("/faults/nowhere", json!({"kind": "drop"})),
        ("/faults/token", json!({"kind": "explode"})),
        ("/faults/token", json!({"kind": "error", "status": 200})),
        ("/faults/token", json!({"kind": "delay"})),
    ] {
        let answer = admin(&emulator, "PUT", bad.0, Some(bad.1.clone())).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }

    let searches = json_of(admin(&emulator, "GET", "/requests?endpoint=search", None).await).await;
    let searches = searches.as_array().unwrap();
    assert_eq!(searches.len(), 2, "the admin calls are not recorded");
    assert_eq!(searches[0]["method"], "POST");
    assert_eq!(searches[0]["endpoint"], "search");
    admin(&emulator, "DELETE", "/requests", None).await;
    assert_eq!(json_of(admin(&emulator, "GET", "/requests", None).await).await, json!([]));

    // Expiring a token over the admin endpoint: the API refuses it, a refresh revives it.
    let expire = json!({"access_token": token});
    assert_eq!(admin(&emulator, "POST", "/tokens/expire", Some(expire)).await.status(), 204);
    assert_eq!(users_me(&emulator, &token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_dropped_connection_gives_the_client_no_answer() {
    let running = crate::Emulator::spawn(
        EmulatorConfig { redirect_uris: vec![CB.to_owned()], ..EmulatorConfig::default() },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    running.emulator.set_fault(Endpoint::Introspect, Fault::Drop);
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"POST /v1/oauth/introspect HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection is closed");
    let text = String::from_utf8_lossy(&received);
    // Nothing a client could take for an answer: no complete body ever arrives.
    assert!(!text.contains("\r\n0\r\n\r\n") && !text.contains("active"), "{text}");
}

#[tokio::test]
async fn the_old_access_token_works_for_the_configured_grace_after_a_refresh() {
    let emulator = emulator(|c| c.old_token_grace = Duration::from_millis(300));
    let (access, refresh) = access_token(&emulator).await;
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let refreshed = post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body).await;
    assert_eq!(refreshed.headers()[header::CACHE_CONTROL], "no-store");
    let new = json_of(refreshed).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(users_me(&emulator, &access).await.status(), StatusCode::OK);
    assert_eq!(users_me(&emulator, &new).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(users_me(&emulator, &access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_authorize_url_without_owner_still_completes_and_a_cancel_always_carries_state() {
    let emulator = emulator(|_| {});
    let id = emulator.with(|s| s.config.client_id.clone());
    let cb = url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>();
    let url = format!(
        "/v1/oauth/authorize?client_id={id}&response_type=code&redirect_uri={cb}&mock_decision=allow"
    );
    let back = get(&emulator, &url).await;
    let code = query(&location(&back), "code").unwrap();
    assert_eq!(exchange(&emulator, &code).await.status(), StatusCode::OK);
    let denied = get(&emulator, &url.replace("allow", "deny")).await;
    assert_eq!(location(&denied).query(), Some("error=access_denied&state="));
}

async fn api_get(emulator: &Emulator, path: &str, token: &str, version: &str) -> Response {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("notion-version", version)
        .body(Body::empty())
        .unwrap();
    send(emulator, request).await
}

async fn search_with(emulator: &Emulator, token: &str, version: &str, body: Value) -> Response {
    let request = Request::post("/v1/search")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("notion-version", version)
        .body(Body::from(body.to_string()))
        .unwrap();
    send(emulator, request).await
}

async fn token_sharing(emulator: &Emulator, pages: &str) -> Value {
    let code = code_for(emulator, &format!("&mock_pages={pages}")).await;
    json_of(exchange(emulator, &code).await).await
}

fn titles(results: &Value) -> Vec<String> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let title = if r["object"] == "page" {
                &r["properties"]["title"]["title"]
            } else {
                &r["title"]
            };
            title[0]["plain_text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn search_paginates_filters_sorts_and_validates_like_notion() {
    let emulator = emulator(|_| {});
    let tokens = token_sharing(&emulator, "all").await;
    let token = tokens["access_token"].as_str().unwrap();
    const NEW: &str = "2026-03-11";

    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    for round in 0..3 {
        let body = json!({"page_size": 10, "start_cursor": cursor});
        let page = json_of(search_with(&emulator, token, NEW, body).await).await;
        assert_eq!(page["type"], "page_or_data_source");
        seen.extend(titles(&page["results"]));
        assert_eq!(page["has_more"], json!(round < 2), "round {round}");
        cursor = page["next_cursor"].clone();
    }
    assert_eq!(seen.len(), 25);
    assert!(cursor.is_null());
    assert_eq!(seen.first().map(String::as_str), Some("Bug Tracker"), "newest edit first");

    let pages = json!({"filter": {"property": "object", "value": "page"}});
    assert_eq!(
        titles(&json_of(search_with(&emulator, token, NEW, pages).await).await["results"]).len(),
        22
    );
    let sources = json!({"filter": {"property": "object", "value": "data_source"}});
    let found = json_of(search_with(&emulator, token, NEW, sources).await).await;
    assert_eq!(found["results"][0]["object"], "data_source");
    assert_eq!(found["results"].as_array().unwrap().len(), 3);
    // Before 2025-09-03 databases are searched as databases.
    let old = json!({"filter": {"property": "object", "value": "database"}});
    let found = json_of(search_with(&emulator, token, "2022-06-28", old.clone()).await).await;
    assert_eq!(
        (found["results"][0]["object"].clone(), found["type"].clone()),
        (json!("database"), json!("page_or_database"))
    );
    let query = json!({"query": "ROAD", "sort": {"timestamp": "last_edited_time", "direction": "ascending"}});
    assert_eq!(
        titles(&json_of(search_with(&emulator, token, NEW, query).await).await["results"]),
        ["Roadmap 2026"]
    );
    let ascending = json!({"sort": {"timestamp": "last_edited_time", "direction": "ascending"}, "page_size": 1});
    assert_eq!(
        titles(&json_of(search_with(&emulator, token, NEW, ascending).await).await["results"]),
        ["Getting Started"]
    );

    for bad in [
        json!({"page_size": 1000}),
        json!({"page_size": 0}),
        json!({"page_size": "ten"}),
        json!({"start_cursor": "not-a-cursor"}),
        json!({"start_cursor": "00000000-0000-4000-8000-000000000000"}),
        json!({"filter": {"property": "title", "value": "page"}}),
        json!({"filter": {"property": "object", "value": "block"}}),
        old,
        json!({"sort": {"timestamp": "created_time", "direction": "ascending"}}),
        json!({"sort": {"timestamp": "last_edited_time", "direction": "up"}}),
        json!({"limit": 5}),
    ] {
        let answer = search_with(&emulator, token, NEW, bad.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json_of(answer).await["code"], "validation_error", "{bad}");
    }
    let answer = search_with(&emulator, token, "banana", json!({})).await;
    assert_eq!(json_of(answer).await["code"], "validation_error", "an unknown Notion-Version");
}

#[tokio::test]
async fn a_token_sees_only_what_was_picked_and_404s_the_rest() {
    let emulator = emulator(|_| {});
    let tokens = token_sharing(&emulator, "Roadmap+2026,tasks").await;
    let token = tokens["access_token"].as_str().unwrap();
    let found = json_of(search_with(&emulator, token, "2026-03-11", json!({})).await).await;
    let mut shared = titles(&found["results"]);
    shared.sort();
    assert_eq!(shared, ["Roadmap 2026", "Tasks"]);
    let roadmap =
        found["results"].as_array().unwrap().iter().find(|r| r["object"] == "page").unwrap();
    let roadmap_id = roadmap["id"].as_str().unwrap();
    let source =
        found["results"].as_array().unwrap().iter().find(|r| r["object"] == "data_source").unwrap();
    let database_id = source["parent"]["database_id"].as_str().unwrap();

    let page = api_get(
        &emulator,
        &format!("/v1/pages/{}", roadmap_id.replace('-', "")),
        token,
        "2026-03-11",
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK, "ids without dashes too");
    assert_eq!(json_of(page).await["id"], roadmap_id);
    let database = json_of(
        api_get(&emulator, &format!("/v1/databases/{database_id}"), token, "2026-03-11").await,
    )
    .await;
    assert_eq!(database["data_sources"][0]["id"], source["id"]);
    let data_source = api_get(
        &emulator,
        &format!("/v1/data_sources/{}", source["id"].as_str().unwrap()),
        token,
        "2026-03-11",
    )
    .await;
    assert_eq!(data_source.status(), StatusCode::OK);

    // Not shared: Notion's 404. Another user's token that shared everything sees it.
    let everything = token_sharing(&emulator, "all").await;
    let all = json_of(
        search_with(
            &emulator,
            everything["access_token"].as_str().unwrap(),
            "2026-03-11",
            json!({"query": "wiki"}),
        )
        .await,
    )
    .await;
    let wiki_id = all["results"][0]["id"].as_str().unwrap().to_owned();
    // Both flows named no user, so they are two connections: the first still sees only its own.
    let other_token = token;
    let hidden =
        api_get(&emulator, &format!("/v1/pages/{wiki_id}"), other_token, "2026-03-11").await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let body = json_of(hidden).await;
    assert_eq!(body["code"], "object_not_found");
    assert!(body["message"].as_str().unwrap().contains("shared with your integration"));
    let bad =
        json_of(api_get(&emulator, "/v1/pages/not-an-id", other_token, "2026-03-11").await).await;
    assert_eq!(bad["code"], "validation_error");
    // A title that is not there is the test's mistake, said on the page.
    let missing =
        get(&emulator, &authorize_url(&emulator, "&mock_decision=allow&mock_pages=Nope")).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_consent_form_shares_the_ticked_pages_and_a_template_copy_is_a_real_page() {
    let emulator = emulator(|_| {});
    let page = get(&emulator, &authorize_url(&emulator, "")).await;
    let html =
        String::from_utf8(to_bytes(page.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let ids: Vec<&str> =
        html.split("name=\"page\" value=\"").skip(1).map(|rest| &rest[..36]).collect();
    assert_eq!(ids.len(), 50, "both workspaces' pickers");
    let id = emulator.with(|s| s.config.client_id.clone());
    let cb = url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>();
    let form = format!(
        "client_id={id}&response_type=code&owner=user&redirect_uri={cb}&state=s&user=Ada&workspace=Acme+Corp\
         &pages_shown=1&page={}&page={}&mock_template=1&decision=allow",
        ids[0], ids[30]
    );
    let posted = send(
        &emulator,
        Request::post("/v1/oauth/authorize")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    let code = query(&location(&posted), "code").unwrap();
    let tokens = json_of(exchange(&emulator, &code).await).await;
    let token = tokens["access_token"].as_str().unwrap();
    let template = tokens["duplicated_template_id"].as_str().unwrap();
    let found = json_of(search_with(&emulator, token, "2026-03-11", json!({})).await).await;
    let ids_found: Vec<&str> =
        found["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    // The ticked Acme page and the template copy; the tick in the other workspace's list is not.
    assert_eq!(ids_found.len(), 2, "{ids_found:?}");
    assert!(ids_found.contains(&template) && ids_found.contains(&ids[0]));
    let copy = api_get(&emulator, &format!("/v1/pages/{template}"), token, "2026-03-11").await;
    assert_eq!(copy.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_vary_as_notions_do_icons_owners_and_emails() {
    let running = crate::Emulator::spawn(
        EmulatorConfig { redirect_uris: vec![CB.to_owned()], ..EmulatorConfig::default() },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let emulator = &running.emulator;
    let origin = running.base_url();
    let with_host = |request: axum::http::request::Builder| {
        request.header(header::HOST, running.addr.to_string())
    };
    let exchange_at = |code: String| {
        let body = json!({"grant_type": "authorization_code", "code": code, "redirect_uri": CB});
        with_host(Request::post("/v1/oauth/token"))
            .header(header::AUTHORIZATION, basic(emulator))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let acme = json_of(send(emulator, exchange_at(code_for(emulator, "").await)).await).await;
    assert_eq!(acme["workspace_icon"], format!("{origin}/_mock/icons/A.svg"));
    assert_eq!(acme["owner"]["user"]["person"]["email"], "ada.lovelace@example.com");
    let icon =
        send(emulator, Request::get("/_mock/icons/A.svg").body(Body::empty()).unwrap()).await;
    assert_eq!(icon.headers()[header::CONTENT_TYPE], "image/svg+xml");

    let personal = code_for(emulator, "&mock_workspace=Personal&mock_email=0").await;
    let personal = json_of(send(emulator, exchange_at(personal)).await).await;
    assert!(personal["workspace_icon"].is_null(), "a workspace without an icon");
    assert_eq!(personal["owner"]["user"]["person"], json!({}), "no email");

    let legacy = code_for(emulator, "&mock_owner=workspace").await;
    let legacy = json_of(send(emulator, exchange_at(legacy)).await).await;
    assert_eq!(legacy["owner"], json!({"type": "workspace", "workspace": true}));
    let me = json_of(users_me(emulator, legacy["access_token"].as_str().unwrap()).await).await;
    assert_eq!(me["bot"]["owner"], legacy["owner"]);
}

#[tokio::test]
async fn the_api_answers_cors_preflights_and_sends_cors_headers() {
    let emulator = emulator(|_| {});
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/v1/search")
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let answer = send(&emulator, preflight).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(answer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        answer.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("notion-version")
    );
    assert!(emulator.requests().is_empty(), "a preflight is not a call");
    let refused = post_json(&emulator, "/v1/search", "Bearer nope", json!({})).await;
    assert_eq!(refused.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn review_fixes_limits_grace_picker_and_control_paths() {
    // The rate limit counts a connection, across a refresh; a token Notion does not know gets
    // its 401, never a 429.
    let emulator = emulator(|c| c.old_token_grace = Duration::from_secs(60));
    let (first, refresh) = access_token(&emulator).await;
    let limit = json!({"rate_limit": {"requests_per_second": 1, "burst": 2}});
    admin(&emulator, "PATCH", "/settings", Some(limit)).await;
    assert_eq!(users_me(&emulator, &first).await.status(), StatusCode::OK);
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let second =
        json_of(post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body).await).await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(users_me(&emulator, &second).await.status(), StatusCode::OK);
    assert_eq!(
        users_me(&emulator, &first).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one budget for the connection"
    );
    for _ in 0..3 {
        assert_eq!(users_me(&emulator, "ntn_bogus").await.status(), StatusCode::UNAUTHORIZED);
    }
    admin(&emulator, "PATCH", "/settings", Some(json!({"rate_limit": {"requests_per_second": 0}})))
        .await;
    // Expiring a token in its grace ends it.
    admin(&emulator, "POST", "/tokens/expire", Some(json!({"access_token": first}))).await;
    assert_eq!(users_me(&emulator, &first).await.status(), StatusCode::UNAUTHORIZED);

    // A mistyped control path is not a call to Notion.
    let typo = admin(&emulator, "GET", "/settingz", None).await;
    assert_eq!(typo.status(), StatusCode::NOT_FOUND);
    assert!(emulator.requests().iter().all(|r| !r.path.starts_with("/_mock")));
    for bad in [
        json!({"workspaces": ["Acme Corp", "Acme Corp"]}),
        json!({"workspaces": ["a\u{0}b"]}),
        json!({"workspaces": (0..51).map(|i| format!("w{i}")).collect::<Vec<_>>()}),
    ] {
        assert_eq!(
            admin(&emulator, "PATCH", "/settings", Some(bad.clone())).await.status(),
            400,
            "{bad}"
        );
    }
    let huge = json!({"kind": "rate_limited", "retry_after": 1_000_000});
    assert_eq!(admin(&emulator, "PUT", "/faults/users_me", Some(huge)).await.status(), 400);
    let zero_burst = json!({"rate_limit": {"requests_per_second": 5, "burst": 0}});
    let settings = json_of(admin(&emulator, "PATCH", "/settings", Some(zero_burst)).await).await;
    assert_eq!(settings["rate_limit"]["burst"], 1, "reported as used");
    admin(&emulator, "PATCH", "/settings", Some(json!({"rate_limit": {"requests_per_second": 0}})))
        .await;

    // The consent page ticks what mock_pages names, and carries mock_email through its form.
    let page = get(&emulator, &authorize_url(&emulator, "&mock_pages=OKRs&mock_email=0")).await;
    let html =
        String::from_utf8(to_bytes(page.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let acme = html.split("data-workspace=\"Personal\"").next().unwrap();
    assert_eq!(acme.matches(" checked>").count(), 1, "only OKRs ticked in the chosen workspace");
    assert!(html.contains(r#"name="mock_email" value="0""#));

    // Search reads a body's wrong types as validation errors, and 1.0 as 1.
    let (token, _) = access_token(&emulator).await;
    let auth = format!("Bearer {token}");
    let typed = json_of(post_json(&emulator, "/v1/search", &auth, json!({"query": 5})).await).await;
    assert_eq!(typed["code"], "validation_error");
    let one =
        json_of(post_json(&emulator, "/v1/search", &auth, json!({"page_size": 1.0})).await).await;
    assert_eq!(one["results"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn reauthorization_keeps_or_replaces_the_shared_pages_by_mode_and_owner_can_be_required() {
    let emulator = emulator(|c| c.reauth = ReauthMode::SameToken);
    let ada = "&mock_user=Ada+Lovelace";
    let first = json_of(
        exchange(&emulator, &code_for(&emulator, &format!("{ada}&mock_pages=Tasks")).await).await,
    )
    .await;
    let again = json_of(exchange(&emulator, &code_for(&emulator, ada).await).await).await;
    assert_eq!(first["access_token"], again["access_token"]);
    let token = again["access_token"].as_str().unwrap();
    let found =
        json_of(post_json(&emulator, "/v1/search", &format!("Bearer {token}"), json!({})).await)
            .await;
    assert_eq!(titles(&found["results"]), ["Tasks"], "a legacy re-authorization picks no pages");

    let strict = emulator_with_owner_required();
    let id = strict.with(|s| s.config.client_id.clone());
    let cb = url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>();
    let no_owner = format!(
        "/v1/oauth/authorize?client_id={id}&response_type=code&redirect_uri={cb}&mock_decision=allow"
    );
    assert_eq!(get(&strict, &no_owner).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&strict, &format!("{no_owner}&owner=user")).await.status(), StatusCode::FOUND);
}

fn emulator_with_owner_required() -> Emulator {
    emulator(|c| c.require_owner = true)
}

#[tokio::test]
async fn cors_preflights_echo_the_asked_headers_and_answers_expose_retry_after() {
    let emulator = emulator(|_| {});
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/v1/users/me")
        .header("access-control-request-headers", "authorization, notion-version, user-agent")
        .body(Body::empty())
        .unwrap();
    let answer = send(&emulator, preflight).await;
    assert_eq!(
        answer.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "authorization, notion-version, user-agent"
    );
    let refused = users_me(&emulator, "ntn_nope").await;
    assert!(
        refused.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .contains("retry-after")
    );
}

#[tokio::test]
async fn access_tokens_can_be_given_a_lifetime_after_which_a_refresh_revives_the_connection() {
    let emulator = emulator(|_| {});
    let ttl = json!({"access_token_ttl_seconds": 1});
    let settings = json_of(admin(&emulator, "PATCH", "/settings", Some(ttl)).await).await;
    assert_eq!(settings["access_token_ttl_seconds"], 1);
    let (token, refresh) = access_token(&emulator).await;
    assert_eq!(users_me(&emulator, &token).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(users_me(&emulator, &token).await.status(), StatusCode::UNAUTHORIZED);
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let refreshed =
        json_of(post_json(&emulator, "/v1/oauth/token", &basic(&emulator), body).await).await;
    let fresh = refreshed["access_token"].as_str().unwrap();
    assert_eq!(users_me(&emulator, fresh).await.status(), StatusCode::OK);
    // Off again: tokens live for good.
    admin(&emulator, "PATCH", "/settings", Some(json!({"access_token_ttl_seconds": 0}))).await;
    assert!(
        admin(
            &emulator,
            "PATCH",
            "/settings",
            Some(json!({"access_token_ttl_seconds": 99_999_999}))
        )
        .await
        .status()
            == 400
    );
}

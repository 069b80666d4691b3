//! Every callback a visitor (or an attacker) can forge gets a clear page, the right status,
//! no call to Notion and nothing stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use notion_oauth::StateClaims;

use crate::helpers::{Browser, Page, TestApp, http, query_param, spawn_app};

/// Asserts the refusal: status, reason, no exchange at Notion, no connection.
async fn assert_refused(app: &TestApp, page: &Page, status: u16, reason: &str) {
    assert_eq!((page.status, page.reason()), (status, reason), "{}", page.body);
    let again = page.body.split("id=\"try-again\" href=\"").nth(1).unwrap_or("");
    assert!(
        again.split('"').next().unwrap_or("").replace("&#x2f;", "/").ends_with("/connect"),
        "every error page offers a way to start again: {}",
        page.body
    );
    assert_eq!(app.token_requests(), 0, "a refused callback must not reach Notion");
    assert!(app.connections().await.is_empty(), "a refused callback must store nothing");
}

/// A real state and code for `browser`, as Notion would send them back.
async fn real_callback(app: &TestApp, browser: &Browser) -> (String, String) {
    let authorize = app.connect(browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    (query_param(&callback, "code").unwrap(), query_param(&callback, "state").unwrap())
}

/// The browser binding a real state carries, read as anyone holding the state can: states are
/// signed, not encrypted.
fn binding_of(state: &str) -> String {
    let (payload, _) = state.split_once('.').unwrap();
    let claims: StateClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims.browser.unwrap()
}

#[tokio::test]
async fn malformed_callbacks_are_refused_with_400() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let (code, state) = real_callback(&app, &browser).await;
    let long = "x".repeat(5000);
    let cases = [
        (String::new(), "missing_code"),
        (format!("state={state}"), "missing_code"),
        (format!("code=&state={state}"), "missing_code"),
        (format!("code={code}"), "missing_state"),
        (format!("code={code}&state="), "missing_state"),
        (format!("code={code}&state=not-a-state"), "invalid_state"),
        (format!("code={code}&state=%FF%FE.%00"), "invalid_state"),
        (format!("code={code}&code={code}&state={state}"), "malformed_callback"),
        (format!("code={code}&state={state}&state={state}"), "malformed_callback"),
        (format!("code={code}&state={state}&admin=true"), "malformed_callback"),
        (format!("code={code}&state={state}&error=access_denied"), "malformed_callback"),
        (format!("code={long}&state={state}"), "malformed_callback"),
        (format!("code={code}&state={long}"), "malformed_callback"),
        (format!("code={code}&state={state}&error_description={long}{long}"), "malformed_callback"),
    ];
    for (query, reason) in cases {
        let page = app.callback_with_query(&browser, &query).await;
        assert_refused(&app, &page, 400, reason).await;
        assert!(!page.body.contains(&code), "pages never echo the code");
    }
    // The real state and code were never consumed by those attempts: they still work.
    let page = app.callback_with_query(&browser, &format!("code={code}&state={state}")).await;
    assert_eq!((page.status, page.reason()), (200, "created"));
}

#[tokio::test]
async fn a_huge_query_string_is_refused_without_a_panic() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let page =
        app.callback_with_query(&browser, &format!("code=a&state={}", "s".repeat(60_000))).await;
    assert!(matches!(page.status, 400 | 414 | 431), "got {}", page.status);
    assert_eq!(app.token_requests(), 0);
    // The server is still up.
    assert_eq!(browser.get(&format!("{}/healthz", app.address)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn a_forged_state_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let (code, state) = real_callback(&app, &browser).await;
    let (payload, signature) = state.split_once('.').unwrap();
    // Change one character of the payload, keep the signature.
    let mut edited = payload.to_owned();
    let last = edited.pop().unwrap();
    edited.push(if last == 'A' { 'B' } else { 'A' });
    // Claims signed with a key that is not the server's.
    let claims = StateClaims::new(Some(binding_of(&state)), Some("victim".into())).unwrap();
    let other_key =
        notion_oauth::StateSigner::new(&[42u8; 32], std::time::Duration::from_secs(600))
            .sign(&claims);

    for forged in
        [format!("{edited}.{signature}"), format!("{payload}.{}", "A".repeat(43)), other_key]
    {
        let page = app.callback_with_query(&browser, &format!("code={code}&state={forged}")).await;
        assert_refused(&app, &page, 400, "invalid_state").await;
    }
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let (code, state) = real_callback(&app, &browser).await;
    let mut claims = StateClaims::new(Some(binding_of(&state)), None).unwrap();
    claims.issued_at -= 11 * 60;
    let expired = app.sign_state(&claims);

    let page = app.callback_with_query(&browser, &format!("code={code}&state={expired}")).await;

    assert_refused(&app, &page, 400, "expired_state").await;
    assert!(page.body.contains("More than 10 minutes"), "{}", page.body);
}

#[tokio::test]
async fn a_replayed_callback_never_reaches_notion_twice() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let first = app.callback(&browser, callback.as_str()).await;
    assert_eq!(first.status, 200);

    // Replayed by someone holding this browser's binding cookie, but not its proof of having
    // finished the flow (the browser itself sees its success page again: tests/api/pages.rs).
    let binding = browser.binding_cookie(&app.address).unwrap();
    let second = http()
        .build()
        .unwrap()
        .get(callback.as_str())
        .header("cookie", format!("noh_browser={binding}"))
        .send()
        .await
        .unwrap();
    let second = Page { status: second.status().as_u16(), body: second.text().await.unwrap() };

    assert_eq!((second.status, second.reason()), (400, "replayed_state"));
    assert_eq!(app.token_requests(), 1, "the replay must not call Notion");
    assert_eq!(app.connections().await.len(), 1);
}

#[tokio::test]
async fn concurrent_double_submits_exchange_the_code_once() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, None).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;

    let pages = futures_join(&app, &browser, callback.as_str()).await;

    // One exchange; a submit that arrives after it finished may see its success page again.
    let reloaded = |p: &Page| p.body.contains("data-reloaded");
    let statuses: Vec<_> = pages.iter().map(|p| (p.status, p.reason().to_owned())).collect();
    let fresh = pages.iter().filter(|p| p.status == 200 && !reloaded(p)).count();
    assert_eq!(fresh, 1, "{statuses:?}");
    assert!(
        pages
            .iter()
            .filter(|p| p.status != 200 || reloaded(p))
            .all(|p| reloaded(p) || (p.status, p.reason()) == (400, "replayed_state")),
        "{statuses:?}"
    );
    assert_eq!(app.token_requests(), 1);
}

async fn futures_join(app: &TestApp, browser: &Browser, url: &str) -> Vec<Page> {
    let (a, b, c, d) = tokio::join!(
        app.callback(browser, url),
        app.callback(browser, url),
        app.callback(browser, url),
        app.callback(browser, url)
    );
    vec![a, b, c, d]
}

#[tokio::test]
async fn a_state_from_another_browser_or_without_the_cookie_is_refused() {
    let app = spawn_app().await;
    let (victim, attacker) = (Browser::new(), Browser::new());
    // The attacker starts a flow and lures the victim to the callback (login CSRF).
    let authorize = app.connect(&attacker, Some("attacker")).await;
    let callback = app.decide(&authorize, "allow", "Mallory").await;
    app.connect(&victim, None).await; // the victim has a binding cookie of its own

    let page = app.callback(&victim, callback.as_str()).await;
    assert_refused(&app, &page, 403, "other_browser").await;

    let cookieless =
        crate::helpers::http().build().unwrap().get(callback.as_str()).send().await.unwrap();
    assert_eq!(cookieless.status().as_u16(), 403);
    assert_eq!(app.token_requests(), 0);
}

#[tokio::test]
async fn an_oauth_error_other_than_access_denied_is_notions_only_in_a_flow_of_ours() {
    let app = spawn_app().await;
    let browser = Browser::new();
    // Anyone can type an error into this URL: without this browser's state it is not Notion's.
    let typed = app.callback_with_query(&browser, "error=temporarily_unavailable&state=").await;
    assert_refused(&app, &typed, 400, "unknown_flow").await;
    assert!(!typed.body.contains("temporarily_unavailable"));

    let (_, state) = real_callback(&app, &browser).await;
    let state = url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>();
    let query = format!("error=temporarily_unavailable&state={state}");
    let page = app.callback_with_query(&browser, &query).await;
    assert_refused(&app, &page, 502, "notion_error").await;
    assert!(page.body.contains("temporarily_unavailable"));
    let (_, state) = real_callback(&app, &browser).await;
    let state = url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>();
    let query = format!("error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}");
    let injected = app.callback_with_query(&browser, &query).await;
    assert_eq!(injected.status, 502);
    assert!(!injected.body.contains("<script>"), "{}", injected.body);
}

#[tokio::test]
async fn connect_refuses_a_bad_ref_and_ignores_campaign_tags() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let cases = [
        (format!("ref={}", "r".repeat(257)), 400),
        ("ref=a&ref=b".to_owned(), 400),
        ("ref=line%0Abreak".to_owned(), 400),
        (format!("ref={}", "r".repeat(256)), 302),
        ("ref=%E2%9C%93-unicode&utm_source=newsletter".to_owned(), 302),
    ];
    for (query, status) in cases {
        let response = browser.get(&format!("{}/connect?{query}", app.address)).await;
        assert_eq!(response.status().as_u16(), status, "{query}");
        if status == 400 {
            let body = response.text().await.unwrap();
            assert!(
                body.contains("data-reason=\"invalid_ref\"")
                    || body.contains("data-reason=\"invalid_link\"")
            );
        }
    }
}

#[tokio::test]
async fn unknown_pages_get_a_404_page() {
    let app = spawn_app().await;
    let response = Browser::new().get(&format!("{}/wp-admin.php", app.address)).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

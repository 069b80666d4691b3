//! What the browser sees around a flow: a reload after success, "Start again" links that keep
//! the flow's ref and return_to, the app's branding, and the list of what was shared.

use mock_notion::{Endpoint, FaultSpec};
use notion_oauth::StateClaims;
use notion_oauth_handler::config::{BrandingSettings, ConnectSettings, PagesSettings};
use secrecy::SecretString;
use url::Url;

use crate::helpers::{Browser, Page, TestApp, TestOptions, http, spawn_app, spawn_app_with};

const APP: &str = "https://app.example.com";

/// The `href` of the element with `id`, unescaped.
fn href(body: &str, id: &str) -> String {
    body.split(&format!("id=\"{id}\" href=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no #{id} link in {body}"))
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// A request with exactly these cookies, as a browser that holds only them would send.
async fn with_cookies(url: &str, cookies: &str) -> Page {
    let client = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(url).header("cookie", cookies).send().await.unwrap();
    Page { status: response.status().as_u16(), body: response.text().await.unwrap() }
}

fn cookie(browser: &Browser, url: &str, name: &str) -> Option<String> {
    let header = reqwest::cookie::CookieStore::cookies(&*browser.jar, &Url::parse(url).unwrap())?;
    header
        .to_str()
        .ok()?
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[tokio::test]
async fn a_reload_after_success_shows_the_success_page_again_only_in_that_browser() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let authorize = app.connect(&browser, Some("user-1")).await;
    let callback = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let first = app.callback(&browser, callback.as_str()).await;
    assert_eq!((first.status, first.reason()), (200, "created"), "{}", first.body);
    let searches = app.emulator().requests_to(Endpoint::Search).len();

    // The reload (or Back, then Allow again): the same page, from what was stored.
    let again = app.callback(&browser, callback.as_str()).await;
    assert_eq!((again.status, again.reason()), (200, "created"), "{}", again.body);
    assert!(again.body.contains("data-reloaded=\"true\""), "{}", again.body);
    assert!(again.body.contains("Connected to Acme Corp"), "{}", again.body);
    assert_eq!(app.token_requests(), 1, "a reload never reaches Notion's token endpoint");
    assert_eq!(app.emulator().requests_to(Endpoint::Search).len(), searches, "nor its search");
    assert_eq!(app.connections().await.len(), 1);

    // Another browser: refused as before.
    let other = app.callback(&Browser::new(), callback.as_str()).await;
    assert_eq!((other.status, other.reason()), (403, "other_browser"));
    // This browser's binding without the proof of finishing (cookies cleared in part), with a
    // proof whose MAC was changed, or with a proof of another flow: a replay.
    let binding = browser.binding_cookie(&app.address).unwrap();
    let proof = cookie(&browser, &app.address, "noh_finished").expect("the proof cookie is set");
    let (bot, mac) = proof.rsplit_once('.').unwrap();
    let flipped = format!("{bot}.{}{}", if mac.starts_with('0') { "1" } else { "0" }, &mac[1..]);
    let later = Browser::new();
    let other_flow = app.add_to_notion(&later, "Grace Hopper", None).await;
    assert_eq!(other_flow.status, 200);
    let other_proof = cookie(&later, &app.address, "noh_finished").unwrap();
    for cookies in [
        format!("noh_browser={binding}"),
        format!("noh_browser={binding}; noh_finished={flipped}"),
        format!("noh_browser={binding}; noh_finished={other_proof}"),
        format!("noh_browser={binding}; noh_finished=garbage"),
    ] {
        let page = with_cookies(callback.as_str(), &cookies).await;
        assert_eq!((page.status, page.reason()), (400, "replayed_state"), "{cookies}");
    }
    assert_eq!(app.token_requests(), 2, "only the second user's flow reached Notion");

    // A connection revoked since no longer shows as connected.
    let api = app.api().await;
    let bot_id =
        app.connections().await.into_iter().find(|c| c.reference.is_some()).unwrap().bot_id;
    assert_eq!(api.delete(&format!("/connections/{bot_id}")).await.status, 204);
    let after = app.callback(&browser, callback.as_str()).await;
    assert_eq!((after.status, after.reason()), (400, "replayed_state"));
}

/// A state this server signed for `browser`'s flow, issued long enough ago to have expired.
fn expired_state(app: &TestApp, browser: &Browser, reference: &str, return_to: &str) -> String {
    let claims = claims_for(app, browser, reference, return_to);
    app.sign_state(&claims)
}

/// Claims for `browser`'s flow, issued an hour ago.
fn claims_for(app: &TestApp, browser: &Browser, reference: &str, return_to: &str) -> StateClaims {
    use sha2::{Digest, Sha256};
    let binding = browser.binding_cookie(&app.address).unwrap();
    let digest = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        Sha256::new_with_prefix(b"noh browser binding\0").chain_update(&binding).finalize(),
    );
    let mut claims = StateClaims::new(Some(digest), Some(reference.into())).unwrap();
    claims.return_to = Some(return_to.into());
    claims.issued_at -= 3600;
    claims
}

#[tokio::test]
async fn start_again_keeps_the_flows_ref_and_return_to_and_the_restarted_flow_finishes() {
    let connect =
        ConnectSettings { return_to_origins: vec![APP.into()], ..ConnectSettings::default() };
    let app = spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await;
    let browser = Browser::new();
    app.connect(&browser, None).await; // gets the binding cookie
    let state = expired_state(&app, &browser, "user-7", &format!("{APP}/done"));

    let expired = app.callback_with_query(&browser, &format!("code=c&state={state}")).await;
    assert_eq!((expired.status, expired.reason()), (400, "expired_state"));
    let again = href(&expired.body, "try-again");
    let again_url = Url::parse(&again).unwrap();
    let pairs: Vec<(String, String)> = again_url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [("ref".into(), "user-7".into()), ("return_to".into(), format!("{APP}/done"))],
        "{again}"
    );

    // Following it runs the flow again and ends back at the app, with the same ref.
    let started = browser.get(&again).await;
    assert_eq!(started.status().as_u16(), 302);
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let done = browser.get(back.as_str()).await;
    assert_eq!(done.status().as_u16(), 303);
    let location = Url::parse(done.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{APP}/done?")), "{location}");
    assert!(location.query_pairs().any(|(k, v)| k == "ref" && v == "user-7"), "{location}");
    assert_eq!(app.connections().await[0].reference.as_deref(), Some("user-7"));

    // The same expired state in another browser: no ref is handed over.
    let stranger = Browser::new();
    app.connect(&stranger, None).await;
    let foreign = app.callback_with_query(&stranger, &format!("code=c&state={state}")).await;
    assert_eq!(foreign.reason(), "expired_state");
    assert_eq!(href(&foreign.body, "try-again"), format!("{}/connect", app.address));
    // Nor for a state that was forged.
    let forged = app.callback_with_query(&browser, "code=c&state=e30.AAAA").await;
    assert_eq!(href(&forged.body, "try-again"), format!("{}/connect", app.address));
}

#[tokio::test]
async fn a_signed_ref_stays_signed_on_every_start_again_link() {
    let connect = ConnectSettings {
        return_to_origins: vec![APP.into()],
        require_signed_ref: true,
        link_secret: Some(SecretString::from("link-secret-0123456789abcdef0123456789")),
        ..ConnectSettings::default()
    };
    let app = spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await;
    let api = app.api().await;
    let link = api.post_json("/connect-links", serde_json::json!({ "ref": "user-9" })).await;
    assert_eq!(link.status, 201, "{}", link.body);
    let url = link.body["url"].as_str().unwrap().to_owned();
    let browser = Browser::new();
    let started = browser.get(&url).await;
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    assert_eq!(app.callback(&browser, back.as_str()).await.status, 200);

    // Replayed from this browser without its proof: the page's link is signed or one-time,
    // and works.
    let binding = browser.binding_cookie(&app.address).unwrap();
    let replayed = with_cookies(back.as_str(), &format!("noh_browser={binding}")).await;
    assert_eq!(replayed.reason(), "replayed_state");
    let again = href(&replayed.body, "try-again");
    assert!(again.contains("sig=") || again.contains("link="), "{again}");
    let restarted = browser.get(&again).await;
    assert_eq!(restarted.status().as_u16(), 302, "the link is accepted: {again}");
}

#[tokio::test]
async fn the_pages_name_the_app_show_its_logo_and_colour_and_lead_back_to_it() {
    let logo = br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1"/></svg>"#;
    let app = spawn_app_with(TestOptions {
        branding: BrandingSettings {
            app_name: Some("Acme <Notes>".into()),
            logo: Some("logo.svg".into()),
            accent_color: Some("#ffcc00".into()),
            support_url: Some("mailto:help@acme.example".into()),
            app_url: Some(format!("{APP}/home")),
        },
        files: vec![("logo.svg", logo.to_vec())],
        ..TestOptions::default()
    })
    .await;
    let browser = Browser::new();
    let landing = browser.get(&format!("{}/", app.address)).await.text().await.unwrap();
    let landing = landing.replace("&#x2f;", "/");
    assert!(landing.contains("Connect Acme &lt;Notes&gt; to Notion"), "{landing}");
    let inline = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, logo);
    assert!(landing.contains(&format!("data:image/svg+xml;base64,{inline}")), "{landing}");
    // A yellow accent gets dark text: white on it would be unreadable.
    assert!(landing.contains("--accent: #ffcc00") && landing.contains("--on-accent: #000000"));
    assert!(landing.contains("href=\"mailto:help@acme.example\""), "{landing}");
    assert!(landing.contains("aria-current=\"step\""), "the step indicator marks where we are");

    let success = app.add_to_notion(&browser, "Ada Lovelace", None).await;
    assert_eq!(success.status, 200);
    assert_eq!(href(&success.body, "back-to-app"), format!("{APP}/home"));
    assert!(success.body.contains("Back to Acme &lt;Notes&gt;"), "{}", success.body);

    // The emulator's consent page shows the client id here: this test's emulator was given no
    // integration name (`dev` passes the app's; see tests/api/binary.rs).
    let authorize = app.connect(&browser, None).await;
    let consent = http().build().unwrap().get(authorize).send().await.unwrap();
    let consent = consent.text().await.unwrap();
    assert!(consent.contains("Integration <code>"), "unnamed: the client id is shown");
}

#[tokio::test]
async fn branding_that_cannot_work_is_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.png"), vec![0u8; 70 * 1024]).unwrap();
    let mut settings = crate::helpers::minimal_settings();
    settings.branding = BrandingSettings {
        app_name: Some("x".repeat(61)),
        logo: Some("big.png".into()),
        accent_color: Some("blue".into()),
        support_url: Some("javascript:alert(1)".into()),
        app_url: Some("ftp://app.example.com".into()),
    };
    let error = settings.validate(dir.path()).unwrap_err().to_string();
    for expected in [
        "branding.app_name",
        "branding.logo",
        "keep it under 64 KiB",
        "branding.accent_color",
        "`blue` is not a colour such as #2383e2",
        "branding.support_url",
        "branding.app_url",
    ] {
        assert!(error.contains(expected), "{expected} missing from: {error}");
    }
    for (logo, expected) in [
        ("http://cdn.example.com/logo.png", "is not an https URL"),
        ("missing.svg", "cannot read"),
        ("logo.gif", "is not an .svg, .png, .jpg or .webp file"),
    ] {
        let mut settings = crate::helpers::minimal_settings();
        settings.branding.logo = Some(logo.into());
        let error = settings.validate(dir.path()).unwrap_err().to_string();
        assert!(error.contains(expected), "{logo}: {error}");
    }
}

/// A flow Ada allows with one more choice on Notion's page (`mock_pages`, `mock_template`),
/// returning its success page.
async fn allowed_with(app: &TestApp, choice: &str, value: &str) -> Page {
    let browser = Browser::new();
    let mut authorize = app.connect(&browser, None).await;
    authorize.query_pairs_mut().append_pair(choice, value);
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let page = app.callback(&browser, back.as_str()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

#[tokio::test]
async fn the_success_page_lists_the_pages_the_user_shared() {
    let app = spawn_app().await;
    let page = allowed_with(&app, "mock_pages", "Roadmap 2026,OKRs").await;
    let list =
        page.body.split("id=\"shared\"").nth(1).expect("a list").split("</ul>").next().unwrap();
    let mut titles: Vec<&str> = list
        .split("<a href=\"")
        .skip(1)
        .filter_map(|item| item.split('>').nth(1)?.split('<').next())
        .collect();
    titles.sort_unstable();
    assert_eq!(titles, ["OKRs", "Roadmap 2026"], "{list}");
    assert!(
        list.contains("https:&#x2f;&#x2f;www.notion.so&#x2f;"),
        "each links into Notion: {list}"
    );
    assert_eq!(app.emulator().requests_to(Endpoint::Search).len(), 1, "one search call");
}

#[tokio::test]
async fn a_search_that_fails_or_is_slow_costs_only_the_list_never_the_success_page() {
    for (fault, label) in [
        (FaultSpec { kind: "error".into(), status: Some(500), ..FaultSpec::default() }, "error"),
        (FaultSpec { kind: "non_json".into(), ..FaultSpec::default() }, "garbage"),
        (FaultSpec { kind: "delay".into(), ms: Some(4000), ..FaultSpec::default() }, "slow"),
    ] {
        // Notion's own timeout well past the list's 1.5 s, so that the list's is what ends the
        // wait.
        let app =
            spawn_app_with(TestOptions { timeout_seconds: 10, ..TestOptions::default() }).await;
        app.emulator().arm("search", &fault).unwrap();
        let started = std::time::Instant::now();
        let page = app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await;
        assert_eq!((page.status, page.reason()), (200, "created"), "{label}: {}", page.body);
        assert!(!page.body.contains("id=\"shared\""), "{label}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "{label}: the page waited");
        assert_eq!(app.connections().await.len(), 1, "{label}");
    }
    // Turned off: Notion is not asked.
    let app = spawn_app_with(TestOptions {
        pages: PagesSettings { show_shared: false, ..PagesSettings::default() },
        ..TestOptions::default()
    })
    .await;
    assert_eq!(app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await.status, 200);
    assert_eq!(app.emulator().requests_to(Endpoint::Search).len(), 0);
}

#[tokio::test]
async fn start_again_never_outlives_the_apps_own_link() {
    let connect = ConnectSettings {
        return_to_origins: vec![APP.into()],
        link_secret: Some(SecretString::from("link-secret-0123456789abcdef0123456789")),
        ..ConnectSettings::default()
    };
    let app = spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await;
    let browser = Browser::new();
    app.connect(&browser, None).await;
    let now = u64::try_from(notion_oauth_handler::store::now()).unwrap();

    // Started from a signed link that works ten more minutes: the new link expires with it.
    let mut claims = claims_for(&app, &browser, "user-8", &format!("{APP}/done"));
    claims.ref_signed = true;
    claims.link_expires = Some(now + 600);
    let page = app
        .callback_with_query(&browser, &format!("code=c&state={}", app.sign_state(&claims)))
        .await;
    let again = Url::parse(&href(&page.body, "try-again")).unwrap();
    let expires: u64 =
        again.query_pairs().find(|(k, _)| k == "expires").unwrap().1.parse().unwrap();
    assert!(expires <= now + 600, "{again}");
    assert!(again.query_pairs().any(|(k, _)| k == "sig"), "still signed: {again}");

    // Started from one that has expired: no link; the app has to make a new one.
    claims.link_expires = Some(now - 1);
    let state = app.sign_state(&claims);
    let page = app.callback_with_query(&browser, &format!("code=c&state={state}")).await;
    assert_eq!(page.reason(), "expired_state");
    assert!(!page.body.contains("id=\"try-again\""), "{}", page.body);
    assert!(page.body.contains("id=\"link-expired\""), "{}", page.body);
    let denied =
        app.callback_with_query(&browser, &format!("error=access_denied&state={state}")).await;
    assert!(!denied.body.contains("id=\"try-again\""), "{}", denied.body);
    assert!(denied.body.contains("id=\"link-expired\""), "{}", denied.body);
}

#[tokio::test]
async fn a_plain_ref_stays_plain_on_every_page_that_offers_to_start_again() {
    let connect = ConnectSettings {
        return_to_origins: vec![APP.into()],
        link_secret: Some(SecretString::from("link-secret-0123456789abcdef0123456789")),
        ..ConnectSettings::default()
    };
    let app = spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await;
    let browser = Browser::new();
    // Denied, then the denied callback reloaded: both keep the ref, unsigned.
    let authorize = app.connect(&browser, Some("user-2")).await;
    let back = app.decide(&authorize, "deny", "Ada Lovelace").await;
    for attempt in ["first", "reload"] {
        let page = app.callback(&browser, back.as_str()).await;
        assert_eq!((page.status, page.reason()), (200, "denied"), "{attempt}");
        let again = href(&page.body, "try-again");
        assert!(again.ends_with("/connect?ref=user-2"), "{attempt}: {again}");
    }
    // Expired: the same.
    let state = expired_state(&app, &browser, "user-2", &format!("{APP}/x"));
    let page = app.callback_with_query(&browser, &format!("code=c&state={state}")).await;
    let again = href(&page.body, "try-again");
    assert!(!again.contains("sig="), "a plain ref is not signed on the way: {again}");
}

#[tokio::test]
async fn a_reload_of_a_flow_whose_bot_was_connected_again_under_another_ref_is_a_replay() {
    let connect =
        ConnectSettings { return_to_origins: vec![APP.into()], ..ConnectSettings::default() };
    let app = spawn_app_with(TestOptions { connect, ..TestOptions::default() }).await;
    let (first, second) = (Browser::new(), Browser::new());
    let start = |browser: &Browser, reference: &str| {
        let url = format!("{}/connect?ref={reference}&return_to={APP}/done", app.address);
        let browser = browser.client.clone();
        async move { browser.get(url).send().await.unwrap() }
    };
    let started = start(&first, "user-1").await;
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let done = first.get(back.as_str()).await;
    assert_eq!(done.status().as_u16(), 303);
    // A reload while nothing changed: back to the app again, marked as a reload.
    let reload = first.get(back.as_str()).await;
    let location = reload.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("ref=user-1") && location.contains("reloaded=true"), "{location}");
    assert!(location.contains("outcome=created"), "{location}");

    // The same person connects the same bot again, from another browser, for another user.
    let started = start(&second, "user-2").await;
    let authorize = Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back_two = app.decide(&authorize, "allow", "Ada Lovelace").await;
    assert_eq!(second.get(back_two.as_str()).await.status().as_u16(), 303);
    let reload = app.callback(&first, back.as_str()).await;
    assert_eq!((reload.status, reload.reason()), (400, "replayed_state"), "{}", reload.body);
}

#[tokio::test]
async fn a_ticked_template_is_linked_where_notion_opens_it() {
    let app = spawn_app().await;
    let page = allowed_with(&app, "mock_template", "true").await;
    let template = app.connections().await[0].duplicated_template_id.clone().expect("a template");
    let link = href(&page.body, "template");
    assert!(link.starts_with("https://www.notion.so/"), "{link}");
    assert!(link.ends_with(&template.replace('-', "")), "{link} names {template}");
    // Without the box ticked, no such link.
    let other = app.add_to_notion(&Browser::new(), "Grace Hopper", None).await;
    assert!(!other.body.contains("id=\"template\""));
}

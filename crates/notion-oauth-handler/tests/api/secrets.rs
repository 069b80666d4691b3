//! Secrets stay secret: not in the database file, not in Debug output, not in logs.

use std::process::Stdio;
use std::time::Duration;

use mock_notion::{Emulator, EmulatorConfig, Endpoint, Fault};
use notion_oauth_handler::config::Settings;
use secrecy::SecretString;

use crate::helpers::{Browser, CLIENT_SECRET, TestApp, query_param, random_key, spawn_app};

/// Every file SQLite keeps for the database (main file, write-ahead log, shared memory).
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("connections.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn the_database_files_hold_no_token_in_clear() {
    // Arrange: two users, one of them re-authorized, so old and new pairs have both been written.
    let mut app = spawn_app().await;
    let browser = Browser::new();
    app.add_to_notion(&browser, "Ada Lovelace", Some("ada")).await;
    app.add_to_notion(&browser, "Ada Lovelace", None).await;
    app.add_to_notion(&Browser::new(), "Grace Hopper", Some("grace")).await;
    app.stop().await;

    // Act
    let bytes = database_bytes(&app);

    // Assert: the metadata is there in clear (so we read the right files), no secret is.
    assert!(contains(&bytes, "Acme Corp") && contains(&bytes, "Grace Hopper"));
    let secrets = app.emulator().issued_secrets();
    assert!(secrets.iter().filter(|s| s.starts_with("ntn_")).count() >= 3, "{}", secrets.len());
    for secret in secrets.iter().chain([&CLIENT_SECRET.to_owned(), &app.master_key]) {
        assert!(!contains(&bytes, secret), "a secret is stored in clear: {}…", &secret[..6]);
    }
}

#[tokio::test]
async fn debug_output_of_the_configuration_shows_no_secret() {
    let master_key = random_key();
    let mut settings = Settings::default();
    settings.server.public_url = Some("https://notion.example.com".into());
    settings.notion.client_id = Some("client".into());
    settings.notion.client_secret = Some(SecretString::from(CLIENT_SECRET));
    settings.security.master_key = Some(SecretString::from(master_key.clone()));
    let before = format!("{settings:?}");
    let config = settings.validate(std::path::Path::new(".")).unwrap();
    let after = format!("{config:?} {:?}", config.notion);
    for shown in [before, after] {
        assert!(!shown.contains(CLIENT_SECRET) && !shown.contains(&master_key), "{shown}");
        assert!(shown.contains("client"), "the Debug output is not empty: {shown}");
    }
}

#[tokio::test]
async fn error_pages_never_show_a_secret() {
    let app = spawn_app().await;
    app.emulator().set_fault(Endpoint::Token, Fault::MissingFields);
    let page = app.add_to_notion(&Browser::new(), "Ada Lovelace", None).await;
    assert_eq!(page.status, 502);
    for secret in
        app.emulator().issued_secrets().iter().chain([&CLIENT_SECRET.to_owned(), &app.master_key])
    {
        assert!(!page.body.contains(secret.as_str()));
    }
}

/// Runs the real binary at the most verbose log level through success, replay, cancel, forged
/// and failed flows, then searches everything it wrote for every secret that existed.
#[tokio::test]
async fn the_log_never_shows_a_token_code_or_secret() {
    // Arrange: the emulator in-process, the server as the real binary with a config file.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let notion = Emulator::spawn(
        EmulatorConfig {
            client_id: "client-for-logs".into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![format!("{origin}/callback")],
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let master_key = random_key();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"{origin}\"\n\
             [notion]\nclient_id = \"client-for-logs\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_base_url = \"{}\"\ntimeout_seconds = 1\n\
             [storage]\nurl = \"sqlite://db.sqlite\"\n[security]\nmaster_key = \"{master_key}\"\n",
            notion.base_url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until_up(&format!("{origin}/healthz")).await;

    // Act: every path through the callback.
    let emulator = &notion.emulator;
    let browser = Browser::new();
    let mut states = Vec::new();
    let mut flow = async |decision: &str| {
        let location = browser.get(&format!("{origin}/connect?ref=r")).await.headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        let authorize = url::Url::parse(&format!("{location}&mock_decision={decision}")).unwrap();
        let back =
            crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let callback = back.get(authorize).send().await.unwrap().headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        states.push(query_param(&url::Url::parse(&callback).unwrap(), "state").unwrap_or_default());
        let status = browser.get(&callback).await.status().as_u16();
        (callback, status)
    };
    let (callback, status) = flow("allow").await;
    assert_eq!(status, 200);
    assert_eq!(browser.get(&callback).await.status().as_u16(), 200, "reload");
    let other = Browser::new();
    assert_eq!(other.get(&callback).await.status().as_u16(), 403, "another browser");
    assert_eq!(flow("allow").await.1, 200, "re-authorization");
    assert_eq!(flow("deny").await.1, 200, "cancel");
    for fault in [
        Fault::Error { status: 400, code: "invalid_grant".into(), message: "Invalid code".into() },
        Fault::Error { status: 500, code: "internal_server_error".into(), message: "boom".into() },
        Fault::NonJson,
        Fault::MissingFields,
        Fault::Delay(Duration::from_secs(3)),
    ] {
        emulator.set_fault(Endpoint::Token, fault);
        assert!(flow("allow").await.1 >= 400);
        emulator.clear_faults();
    }
    let forged = browser.get(&format!("{origin}/callback?code=ntn_in_a_query&state=forged")).await;
    assert_eq!(forged.status().as_u16(), 400);

    // And the Notion API proxy: a call, one after the token expired (a refresh), one after a
    // 429 (a retry), with an API key made by the binary.
    let made = tokio::process::Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"))
        .args(["api-keys", "create", "--name", "logs", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&made.stdout).into_owned();
    let api_key = printed.split_whitespace().find(|w| w.starts_with("noh_")).unwrap().to_owned();
    let bot = emulator.requests_to(Endpoint::Token).len();
    assert!(bot > 0);
    let connections = crate::helpers::http()
        .build()
        .unwrap()
        .get(format!("{origin}/api/v1/connections"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let bot_id = connections["connections"][0]["bot_id"].as_str().unwrap().to_owned();
    let proxied = async || {
        crate::helpers::http()
            .build()
            .unwrap()
            .get(format!("{origin}/api/v1/connections/{bot_id}/notion/users/me"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(proxied().await, 200);
    for token in emulator.issued_secrets().iter().filter(|s| s.starts_with("ntn_")) {
        emulator.expire_access_token(token);
    }
    assert_eq!(proxied().await, 200, "after a refresh");
    emulator.set_fault_times(Endpoint::UsersMe, Fault::RateLimited { retry_after: 1 }, 1);
    assert_eq!(proxied().await, 200, "after waiting out a 429");
    let finished =
        reqwest::cookie::CookieStore::cookies(&*browser.jar, &url::Url::parse(&origin).unwrap())
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default();
    let finished = finished
        .split("; ")
        .find_map(|c| c.strip_prefix("noh_finished="))
        .expect("the proof of the finished flow")
        .to_owned();
    server.start_kill().unwrap();
    let _ = server.wait().await;

    // Assert: the log says what happened, and nothing secret.
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("connection stored")
            && logged.contains("a callback was refused")
            && logged.contains("refreshing it once"),
        "{logged}"
    );
    assert!(logged.contains("TRACE"), "the log ran at trace level");
    let cookie = browser.binding_cookie(&origin).unwrap();
    let mut secrets = emulator.issued_secrets();
    secrets.extend([CLIENT_SECRET.to_owned(), master_key, cookie, "ntn_in_a_query".to_owned()]);
    // The API key's secret part (its id is printed and logged on purpose), and the proof.
    // `noh_<id>_<secret>`, where the secret's base64url may hold `_` itself.
    let key_secret = api_key.strip_prefix("noh_").unwrap().split_once('_').unwrap().1.to_owned();
    assert_eq!(key_secret.len(), 43, "not the API key's secret part");
    secrets.extend([key_secret, finished.rsplit('.').next().unwrap().to_owned()]);
    secrets.extend(states.into_iter().filter(|s| !s.is_empty()));
    assert!(
        secrets.len() > 12,
        "codes, tokens, states and keys were all checked: {}",
        secrets.len()
    );
    for secret in &secrets {
        let start: String = secret.chars().take(6).collect();
        assert!(!logged.contains(secret.as_str()), "the log shows a secret ({start}…)");
    }
}

async fn wait_until_up(url: &str) {
    let what = format!("the server at {url} coming up");
    crate::helpers::eventually(&what, Duration::from_secs(10), || async {
        let answer = crate::helpers::http().build().unwrap().get(url).send().await;
        answer.is_ok_and(|r| r.status().is_success()).then_some(())
    })
    .await;
}

//! Several real server processes on one database, a kill -9 in the middle of a refresh, and the
//! operator commands: the binary as it is deployed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mock_notion::{Emulator, EmulatorConfig, Endpoint, Fault, RunningEmulator};
use notion_oauth_handler::store;
use notion_oauth_handler::vault::{MasterKey, Vault};
use secrecy::SecretString;
use tokio::process::{Child, Command};

use crate::helpers::{
    Browser, CLIENT_SECRET, HANG, Receiver, WEBHOOK_SECRET, accepted, eventually, http,
    query_param, random_key,
};

const CLIENT_ID: &str = "4a1e0f4e-0000-4000-8000-0000000000aa";

/// An emulator and the configuration files of server processes sharing one SQLite file.
struct Deployment {
    dir: tempfile::TempDir,
    notion: RunningEmulator,
    master_key: String,
    ports: Vec<u16>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Deployment {
    async fn new(instances: usize, timeout_seconds: u64) -> Self {
        Self::with_extra(instances, timeout_seconds, "").await
    }

    /// With `extra` TOML appended to every instance's configuration.
    async fn with_extra(instances: usize, timeout_seconds: u64, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
        let notion = Emulator::spawn(
            EmulatorConfig {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: ports
                    .iter()
                    .map(|p| format!("http://127.0.0.1:{p}/callback"))
                    .collect(),
                ..EmulatorConfig::default()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let master_key = random_key();
        for (index, port) in ports.iter().enumerate() {
            let config = format!(
                "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
                 [notion]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_base_url = \"{}\"\ntimeout_seconds = {timeout_seconds}\n\
                                  [storage]\nurl = \"sqlite://shared.db\"\n[security]\nmaster_key = \"{master_key}\"\n{extra}",
                notion.base_url()
            );
            std::fs::write(dir.path().join(format!("instance-{index}.toml")), config).unwrap();
        }
        Self { dir, notion, master_key, ports }
    }

    fn config(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("instance-{index}.toml"))
    }

    fn url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[index])
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .kill_on_drop(true);
        command
    }

    async fn start(&self, index: usize) -> Child {
        let log =
            std::fs::File::create(self.dir.path().join(format!("instance-{index}.log"))).unwrap();
        let child = self
            .command(&["serve", "--config"])
            .arg(self.config(index))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let health = format!("{}/healthz", self.url(index));
        eventually(&format!("instance {index} coming up"), Duration::from_secs(10), || async {
            http().build().unwrap().get(&health).send().await.ok().map(drop)
        })
        .await;
        child
    }

    /// Runs an operator command against instance 0's configuration.
    async fn operator(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config(0);
        all.extend(["--config", config.to_str().unwrap()]);
        let output = self.command(&all).output().await.unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn api_key(&self) -> String {
        let (ok, stdout, stderr) = self.operator(&["api-keys", "create", "--name", "tests"]).await;
        assert!(ok, "{stderr}");
        assert!(stderr.contains("only time the key is shown"), "{stderr}");
        stdout.trim().to_owned()
    }

    /// A whole flow through instance `index`, returning the bot id.
    async fn connect(&self, index: usize, user: &str) -> String {
        let browser = Browser::new();
        let location =
            browser.get(&format!("{}/connect", self.url(index))).await.headers()["location"]
                .to_str()
                .unwrap()
                .to_owned();
        let authorize =
            format!("{location}&mock_decision=allow&mock_user={}", user.replace(' ', "+"));
        let back = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let callback = back.get(&authorize).send().await.unwrap().headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(query_param(&url::Url::parse(&callback).unwrap(), "code").is_some());
        assert_eq!(browser.get(&callback).await.status().as_u16(), 200);
        let (_, stdout, _) = self.operator(&["connections", "list", "--json"]).await;
        let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        listed.as_array().unwrap().iter().find(|c| c["owner_name"] == user).unwrap()["bot_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn get(&self, index: usize, key: &str, path: &str) -> (u16, serde_json::Value) {
        let response = http()
            .build()
            .unwrap()
            .get(format!("{}/api/v1{path}", self.url(index)))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn stored_access_token(&self, bot_id: &str) -> Option<String> {
        let store = store::open_existing(&format!(
            "sqlite://{}",
            self.dir.path().join("shared.db").display()
        ))
        .await
        .unwrap();
        let vault = Vault::new(
            &MasterKey::from_base64(&SecretString::from(self.master_key.clone())).unwrap(),
            &[],
        );
        let bot_id = notion_oauth_handler::domain::BotId::new(bot_id);
        let tokens = store.tokens(&vault, &bot_id).await.unwrap().unwrap();
        tokens.access_token.map(|t| t.expose_secret().to_owned())
    }

    fn refresh_requests(&self) -> usize {
        self.notion
            .emulator
            .requests_to(Endpoint::Token)
            .iter()
            .filter(|r| r.body.contains("\"refresh_token\""))
            .count()
    }
}

#[tokio::test]
async fn two_server_processes_on_one_sqlite_file_refresh_once() {
    // Arrange: two processes, one database, one connection made through the first.
    let deployment = Deployment::new(2, 5).await;
    let _first = deployment.start(0).await;
    let _second = deployment.start(1).await;
    let key = deployment.api_key().await;
    let bot = deployment.connect(0, "Ada Lovelace").await;
    // A Notion slow enough that every caller arrives while the first refresh is still there.
    deployment.notion.emulator.set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));

    // Act: 50 forced refreshes at each process, all at once.
    let path = format!("/connections/{bot}/token?force_refresh=true");
    let calls = (0..100).map(|i| deployment.get(i % 2, &key, &path));
    let answers = futures_util::future::join_all(calls).await;

    // Assert: Notion saw one refresh, every caller got its token, and it is the stored one.
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{:?}",
        answers.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(deployment.refresh_requests(), 1);
    let tokens: BTreeSet<&str> =
        answers.iter().map(|(_, body)| body["access_token"].as_str().unwrap()).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let token = tokens.into_iter().next().unwrap().to_owned();
    assert_eq!(deployment.stored_access_token(&bot).await.as_deref(), Some(token.as_str()));
    assert!(deployment.notion.emulator.is_access_token_active(&token));
}

#[tokio::test]
async fn a_refresh_interrupted_by_kill_9_is_reported_not_lost_silently() {
    // Arrange: Notion answers slowly, and acts on the refresh even after the caller is gone.
    let deployment = Deployment::new(1, 1).await;
    let mut server = deployment.start(0).await;
    let key = deployment.api_key().await;
    let bot = deployment.connect(0, "Ada Lovelace").await;
    deployment
        .notion
        .emulator
        .set_fault(Endpoint::Token, Fault::Delay(Duration::from_millis(1500)));

    // Act: kill -9 the server while its refresh is at Notion, then start it again.
    let url = format!("{}/api/v1/connections/{bot}/refresh", deployment.url(0));
    let key_for_call = key.clone();
    let in_flight = tokio::spawn(async move {
        http().build().unwrap().post(url).bearer_auth(key_for_call).send().await
    });
    eventually("the refresh reaching Notion", Duration::from_secs(5), || {
        std::future::ready((deployment.refresh_requests() == 1).then_some(()))
    })
    .await;
    assert_eq!(deployment.refresh_requests(), 1, "the refresh reached Notion");
    server.start_kill().unwrap();
    let _ = server.wait().await;
    assert!(in_flight.await.unwrap().is_err(), "the caller saw the server die");
    tokio::time::sleep(Duration::from_millis(2000)).await; // Notion finishes the refresh
    deployment.notion.emulator.clear_faults();
    let _restarted = deployment.start(0).await;

    // Assert: once the dead holder's lease runs out, the interruption is visible...
    // The dead holder's lease is no longer renewed and lapses within 15 s.
    let path = format!("/connections/{bot}");
    let connection = eventually("the lease lapsing", Duration::from_secs(30), || async {
        let connection = deployment.get(0, &key, &path).await.1;
        (!connection["refresh_interrupted_at"].is_null()).then_some(connection)
    })
    .await;
    assert!(connection["refresh_interrupted_at"].is_i64(), "{connection}");
    // ...and the next refresh says what it means: Notion rotated the pair, the user must reconnect.
    let (status, body) =
        deployment.get(0, &key, &format!("/connections/{bot}/token?force_refresh=true")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("needs_reauth")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("answer was lost"), "{body}");
    let (_, events) = deployment.get(0, &key, &format!("/connections/{bot}/events")).await;
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["needs_reauth", "refresh_failed", "refresh_interrupted", "connected"]);
}

#[tokio::test]
async fn a_flow_started_before_a_key_rotation_finishes_after_it() {
    let deployment = Deployment::new(1, 5).await;
    let mut server = deployment.start(0).await;
    let browser = Browser::new();
    let location =
        browser.get(&format!("{}/connect", deployment.url(0))).await.headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
    let authorize = format!("{location}&mock_decision=allow&mock_user=Ada+Lovelace");
    let back = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = back.get(&authorize).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();

    // The README's rotation: a new key, the old one listed as previous, a restart.
    server.start_kill().unwrap();
    let _ = server.wait().await;
    let config = std::fs::read_to_string(deployment.config(0)).unwrap();
    let old = format!("master_key = \"{}\"", deployment.master_key);
    let rotated = config.replace(
        &old,
        &format!(
            "master_key = \"{}\"\nprevious_master_keys = [\"{}\"]",
            random_key(),
            deployment.master_key
        ),
    );
    assert_ne!(rotated, config);
    std::fs::write(deployment.config(0), rotated).unwrap();
    let _server = deployment.start(0).await;

    let page = browser.get(&callback).await;
    assert_eq!(page.status().as_u16(), 200, "{}", page.text().await.unwrap());
}

#[tokio::test]
async fn names_from_notion_reach_the_terminal_with_control_characters_escaped() {
    let deployment = Deployment::new(1, 5).await;
    let _server = deployment.start(0).await;
    // A name that would clear the screen, as Notion could send it.
    let bot = deployment.connect(0, "E\u{1b}[2J").await;

    let (ok, listed, _) = deployment.operator(&["connections", "list"]).await;

    assert!(ok && listed.contains(&bot), "{listed}");
    assert!(!listed.contains('\u{1b}'), "the escape reached the terminal: {listed:?}");
    assert!(listed.contains("E\\u{1b}[2J"), "{listed}");
}

#[tokio::test]
async fn operators_manage_keys_and_connections_from_the_command_line() {
    let deployment = Deployment::new(1, 5).await;
    let _server = deployment.start(0).await;
    let key = deployment.api_key().await;
    let bot = deployment.connect(0, "Ada Lovelace").await;
    let before = deployment.stored_access_token(&bot).await.unwrap();

    let (ok, listed, _) = deployment.operator(&["api-keys", "list"]).await;
    assert!(ok && listed.contains("tests"), "{listed}");
    assert!(!listed.contains(key.splitn(3, '_').nth(2).unwrap()), "the secret is never listed");

    let (ok, stdout, stderr) = deployment.operator(&["connections", "refresh", &bot]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("generation 2") && !stdout.contains("ntn_"), "{stdout}");
    assert_ne!(deployment.stored_access_token(&bot).await.unwrap(), before);
    let (ok, stdout, _) = deployment.operator(&["connections", "check", &bot]).await;
    assert!(ok && stdout.contains("active"), "{stdout}");
    let (ok, shown, _) = deployment.operator(&["connections", "show", &bot]).await;
    assert!(
        ok && shown.contains("refreshed") && shown.contains("checked") && !shown.contains("ntn_"),
        "{shown}"
    );
    let (ok, stdout, _) = deployment.operator(&["connections", "revoke", &bot]).await;
    assert!(ok && stdout.contains("Revoked"), "{stdout}");
    assert!(deployment.stored_access_token(&bot).await.is_none());
    let (ok, listed, _) =
        deployment.operator(&["connections", "list", "--status", "revoked"]).await;
    assert!(ok && listed.contains(&bot), "{listed}");
    let (ok, _, stderr) = deployment.operator(&["connections", "show", "no-such-bot"]).await;
    assert!(!ok && stderr.contains("no connection"), "{stderr}");

    // A revoked key stops opening the API at once, in the running server too.
    let id = key.split('_').nth(1).unwrap().to_owned();
    assert_eq!(deployment.get(0, &key, "/connections").await.0, 200);
    let (ok, _, stderr) = deployment.operator(&["api-keys", "revoke", &id]).await;
    assert!(ok, "{stderr}");
    assert_eq!(deployment.get(0, &key, "/connections").await.0, 401);
    let (ok, _, stderr) = deployment.operator(&["api-keys", "revoke", &id]).await;
    assert!(!ok && stderr.contains("no active API key"), "{stderr}");
}

#[tokio::test]
async fn deliveries_pending_at_a_kill_9_are_all_delivered_after_restart_and_none_twice() {
    // Arrange: the receiver is down while three connections are made.
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let extra = format!(
        "[[webhooks]]\nname = \"app\"\nurl = \"{}\"\nsecret = \"{WEBHOOK_SECRET}\"\n[delivery]\nretry_base_ms = 200\n",
        receiver.url
    );
    let deployment = Deployment::with_extra(1, 5, &extra).await;
    let mut server = deployment.start(0).await;
    for user in ["Ada Lovelace", "Grace Hopper", "Alan Turing"] {
        deployment.connect(0, user).await;
    }
    let failed = receiver
        .wait_for("a failed attempt at each event", |r| {
            r.iter()
                .map(|d| d.headers["notion-oauth-event-id"].clone())
                .collect::<BTreeSet<_>>()
                .len()
                == 3
        })
        .await;

    // Act: kill -9 while all three are pending, bring the receiver back, restart.
    server.start_kill().unwrap();
    let _ = server.wait().await;
    receiver.answer(200);
    let _restarted = deployment.start(0).await;

    // Assert: every event arrives, and none twice.
    receiver.wait_for("all three events", |r| accepted(r).len() >= 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // time for a duplicate to show up
    let delivered = accepted(&receiver.received());
    let ids: BTreeSet<&String> = delivered.iter().map(|(_, id)| id).collect();
    eprintln!(
        "kill -9 with deliveries pending: {} failed attempts before the kill; after restart {} deliveries accepted, {} distinct events",
        failed.len(),
        delivered.len(),
        ids.len()
    );
    assert_eq!((delivered.len(), ids.len()), (3, 3));
    assert!(delivered.iter().all(|(event_type, _)| event_type == "connection.created"));
    let (_, stdout, _) = deployment.operator(&["deliveries", "list", "--status", "pending"]).await;
    assert!(stdout.contains("No deliveries"), "{stdout}");
}

#[tokio::test]
async fn the_connect_link_command_makes_links_the_server_trusts() {
    let extra = "[connect]\nlink_secret = \"link-secret-0123456789abcdef0123456789\"\nrequire_signed_ref = true\n";
    let deployment = Deployment::with_extra(1, 5, extra).await;
    let _server = deployment.start(0).await;
    let browser = Browser::new();
    assert_eq!(
        browser.get(&format!("{}/connect?ref=forged", deployment.url(0))).await.status().as_u16(),
        400
    );

    let (ok, stdout, stderr) =
        deployment.operator(&["connect-link", "--ref", "user-42", "--ttl", "600"]).await;
    assert!(ok, "{stderr}");
    let link = stdout.trim();
    assert!(
        link.starts_with(&format!("{}/connect?ref=user-42&expires=", deployment.url(0))),
        "{link}"
    );
    assert_eq!(browser.get(link).await.status().as_u16(), 302);
    let tampered = link.replace("user-42", "user-43");
    assert_eq!(browser.get(&tampered).await.status().as_u16(), 400);
}

#[tokio::test]
async fn deliveries_cut_short_by_a_kill_9_mid_attempt_are_delivered_after_restart() {
    // Arrange: the receiver takes each request and never answers; the webhook timeout is 2 s, so
    // a dead worker's lease lapses 7 s after its attempt began.
    let receiver = Receiver::start().await;
    receiver.answer(HANG);
    let extra = format!(
        "[[webhooks]]\nname = \"app\"\nurl = \"{}\"\nsecret = \"{WEBHOOK_SECRET}\"\n[delivery]\nretry_base_ms = 200\ntimeout_seconds = 2\n",
        receiver.url
    );
    let deployment = Deployment::with_extra(1, 5, &extra).await;
    let mut server = deployment.start(0).await;
    deployment.connect(0, "Ada Lovelace").await;
    deployment.connect(0, "Grace Hopper").await;
    receiver.wait_for("both attempts under way", |r| r.len() == 2).await;

    // Act: kill -9 while both are in flight, then restart with the receiver answering.
    server.start_kill().unwrap();
    let _ = server.wait().await;
    receiver.answer(200);
    let _restarted = deployment.start(0).await;

    // Assert: both arrive once their leases lapse, each once.
    let received = receiver.wait_for("both events accepted", |r| accepted(r).len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = accepted(&receiver.received());
    let ids: BTreeSet<&String> = delivered.iter().map(|(_, id)| id).collect();
    eprintln!(
        "kill -9 mid-attempt: {} requests in flight at the kill; after restart {} accepted, {} distinct events",
        received.iter().filter(|r| r.answered == HANG).count(),
        delivered.len(),
        ids.len()
    );
    assert_eq!((delivered.len(), ids.len()), (2, 2));
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn memory_goes_back_to_idle_after_a_burst_of_connections_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let deployment = Deployment::new(1, 5).await;
    let server = deployment.start(0).await;
    let pid = server.id().unwrap();
    let address = format!("127.0.0.1:{}", deployment.ports[0]);
    let mut warm = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut answer = [0u8; 1024];
    for _ in 0..20 {
        warm.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let _ = warm.read(&mut answer).await.unwrap();
    }
    let idle = resident_kib(pid);

    // Kept-alive connections that each made a request, under server.max_connections (768).
    let mut burst = Vec::new();
    for _ in 0..500 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        assert!(socket.read(&mut answer).await.unwrap() > 0);
        burst.push(socket);
    }
    let peak = resident_kib(pid);
    assert!(peak > idle + 2048, "the burst should take memory: idle {idle} KiB, peak {peak} KiB");
    drop(burst);

    eventually("memory back near idle", Duration::from_secs(5), || async {
        (resident_kib(pid) <= idle + 1024).then_some(())
    })
    .await;
    drop(warm);
}

/// Clears the immutable flag it set, whatever happens to the test.
struct Immutable(PathBuf);

impl Immutable {
    /// `None` where the file system or the user cannot set the flag.
    fn set(path: PathBuf) -> Option<Self> {
        let status = std::process::Command::new("chattr").arg("+i").arg(&path).status().ok()?;
        status.success().then_some(Self(path))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_server_started_on_a_database_it_cannot_write_is_not_ready_until_it_can() {
    let deployment = Deployment::new(1, 5).await;
    let mut server = deployment.start(0).await;
    deployment.connect(0, "Ada Lovelace").await;
    server.kill().await.unwrap();
    let _ = server.wait().await;

    // The owner is root here, so the file's mode would not stop it: the immutable flag does.
    let Some(flag) = Immutable::set(deployment.dir.path().join("shared.db")) else {
        crate::helpers::skip_on_this_machine(
            "chattr +i is not available on this file system or for this user",
        );
        return;
    };
    let mut server = deployment.start(0).await;
    let ready = format!("{}/readyz", deployment.url(0));
    let status = || async { http().build().unwrap().get(&ready).send().await.unwrap().status() };
    assert_eq!(status().await, 503, "a database that cannot be written is not ready");
    // A server error is logged at the shipped level, where requests have no trace layer.
    let log = std::fs::read_to_string(deployment.dir.path().join("instance-0.log")).unwrap();
    assert!(log.contains("a request failed") && log.contains("status=503"), "{log}");

    drop(flag);
    eventually("ready once the file can be written", Duration::from_secs(5), || async {
        (status().await == 200).then_some(())
    })
    .await;
    deployment.connect(0, "Grace Hopper").await;
    let _ = server.kill().await;
}

#[tokio::test]
async fn sighup_does_not_stop_a_server_without_tls() {
    // `systemctl reload` sends it; its default action would end the process.
    let deployment = Deployment::new(1, 5).await;
    let mut server = deployment.start(0).await;
    let pid = server.id().unwrap().to_string();
    for _ in 0..2 {
        let hup = Command::new("kill").args(["-HUP", &pid]).status().await.unwrap();
        assert!(hup.success());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.try_wait().unwrap().is_none(), "the server ended on SIGHUP");
    let health = http().build().unwrap().get(format!("{}/healthz", deployment.url(0))).send();
    assert_eq!(health.await.unwrap().status(), 200);
    let log = std::fs::read_to_string(deployment.dir.path().join("instance-0.log")).unwrap();
    assert!(log.contains("nothing to reload"), "{log}");
    let _ = server.kill().await;
}

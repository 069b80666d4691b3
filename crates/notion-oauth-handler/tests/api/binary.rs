//! The binary as an operator runs it.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{Browser, random_key};

pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"));
    // Only what a test passes: no NOTION_* or NOH_* from the developer's shell.
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).kill_on_drop(true);
    command
}

pub async fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// Starts a long-running subcommand and returns it with the first stdout line containing `marker`.
pub async fn start(command: &mut Command, marker: &str) -> (Child, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(marker) {
                return line;
            }
        }
        panic!("the process ended before printing {marker:?}");
    })
    .await
    .unwrap();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, line)
}

#[tokio::test]
async fn check_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"
[server]
bind = "localhost-ish"
public_url = "http://notion.example.com"
base_path = "notion"
header_timeout_seconds = 0
max_connections = 0
trusted_proxies = ["10.0.0.0/33", "proxy.internal"]
forwarded_header = "X-Real-IP"
[rate_limit]
flow_burst = 0
[notion]
api_base_url = "http://api.example.com"
version = "latest"
timeout_seconds = 0
[storage]
url = "mysql://db"
[security]
master_key = "dG9vIHNob3J0"
state_ttl_seconds = 5
[[documents]]
path = "/connect"
file = "missing.html"
"#,
    )
    .unwrap();

    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;

    assert!(!output.status.success());
    for key in [
        "server.bind",
        "server.public_url",
        "server.base_path",
        "server.header_timeout_seconds",
        "server.max_connections",
        "server.trusted_proxies[0]",
        "server.trusted_proxies[1]",
        "server.forwarded_header",
        "rate_limit.flow_burst",
        "notion.client_id",
        "notion.client_secret",
        "notion.api_base_url",
        "notion.version",
        "notion.timeout_seconds",
        "storage.url",
        "security.master_key",
        "security.state_ttl_seconds",
        "documents[0].path",
    ] {
        assert!(stderr.contains(&format!("- {key}:")), "{key} not reported:\n{stderr}");
    }
    assert!(stderr.contains("has 18 problems:"), "{stderr}");
    assert!(stderr.contains("openssl rand -base64 32"), "a fix is suggested: {stderr}");
}

#[tokio::test]
async fn check_allows_plain_http_only_where_notion_does() {
    let dir = tempfile::tempdir().unwrap();
    let check = |public_url: &str, api: &str| {
        let mut command = binary();
        command
            .arg("check")
            .current_dir(dir.path())
            .env("NOTION_CLIENT_ID", "id")
            .env("NOTION_CLIENT_SECRET", "secret_x")
            .env("NOH_MASTER_KEY", random_key())
            .env("NOH_SERVER__PUBLIC_URL", public_url)
            .env("NOH_NOTION__API_BASE_URL", api);
        command
    };
    let real = "https://api.notion.com";
    let (ok, _, stderr) = run(&mut check("http://localhost:8080", real)).await;
    assert!(ok.status.success(), "{stderr}");
    let (refused, _, stderr) = run(&mut check("http://127.0.0.1:8080", real)).await;
    assert!(!refused.status.success() && stderr.contains("http://localhost:PORT"), "{stderr}");
    let (refused, _, _) = run(&mut check("http://notion.example.com", real)).await;
    assert!(!refused.status.success());
    // A loopback address is fine against an emulator on this machine.
    let (ok, _, stderr) = run(&mut check("http://127.0.0.1:8080", "http://127.0.0.1:8081")).await;
    assert!(ok.status.success(), "{stderr}");
    // ...but the client secret never travels to a remote Notion in clear.
    let (refused, _, stderr) =
        run(&mut check("https://a.example.com", "http://api.example.com")).await;
    assert!(!refused.status.success() && stderr.contains("notion.api_base_url"), "{stderr}");
}

#[tokio::test]
async fn check_refuses_a_document_content_type_that_is_not_a_header_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.html"), "x").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[[documents]]\npath = \"/privacy\"\nfile = \"p.html\"\ncontent_type = \"text/html\\nX-Evil: 1\"\n").unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(stderr.contains("documents[0].content_type"), "{stderr}");
}

#[tokio::test]
async fn check_reports_delivery_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        r#"
[[webhooks]]
name = "app"
url = "http://app.example.com/hook"
secret = "short"
include_tokens = true
events = ["connection.created", "connection.exploded"]

[[webhooks]]
name = "app"
url = "not a url"

[command_hook]
command = []

[delivery]
max_attempts = 0
"#,
    )
    .unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    for key in [
        "webhooks[0].secret",
        "webhooks[0].include_tokens",
        "webhooks[0].events",
        "webhooks[1].name",
        "webhooks[1].url",
        "webhooks[1].secret",
        "command_hook.command",
        "delivery.max_attempts",
    ] {
        assert!(stderr.contains(&format!("- {key}:")), "{key} not reported:\n{stderr}");
    }
    assert!(stderr.contains("connection.exploded"), "{stderr}");
}

#[tokio::test]
async fn check_reports_page_overrides_that_are_broken_or_misnamed() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[pages]\ntemplates_dir = \"pages\"\n").unwrap();
    std::fs::write(pages.join("sucess.html"), "typo").unwrap();
    let (_, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(
        stderr.contains("pages.templates_dir") && stderr.contains("sucess.html is not a page"),
        "{stderr}"
    );
    std::fs::remove_file(pages.join("sucess.html")).unwrap();
    std::fs::write(pages.join("success.html"), "{% if %}").unwrap();
    let (_, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(
        stderr.contains("pages.templates_dir") && stderr.contains("does not parse"),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_refuses_an_in_memory_database() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
        let (output, _, stderr) = run(binary()
            .arg("check")
            .current_dir(dir.path())
            .env("NOTION_CLIENT_ID", "id")
            .env("NOTION_CLIENT_SECRET", "secret_x")
            .env("NOH_MASTER_KEY", random_key())
            .env("NOH_SERVER__PUBLIC_URL", "https://a.example.com")
            .env("NOH_STORAGE__URL", url))
        .await;
        assert!(!output.status.success());
        assert!(stderr.contains("in-memory SQLite database is not supported"), "{url}: {stderr}");
    }
}

#[tokio::test]
async fn check_names_unknown_keys_and_never_echoes_a_mistyped_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "[server]\nbnd = \"127.0.0.1:1\"\n").unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(stderr.contains("bnd"), "{stderr}");

    std::fs::write(&config, "[notion]\nclient_secret = 987654321987\n").unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("notion.client_secret: must be text in quotes, not that number"),
        "{stderr}"
    );
    assert!(!stderr.contains("987654321987"), "{stderr}");

    // A syntax error must not quote the broken line: it may hold a secret.
    std::fs::write(&config, "[notion]\nclient_secret = \"secret_TOPSECRET123\n").unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(stderr.contains("line 2") && stderr.contains("typo.toml"), "{stderr}");
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");

    let (output, _, stderr) =
        run(binary().args(["check", "--config", "/nonexistent/x.toml"])).await;
    assert!(!output.status.success());
    assert!(stderr.contains("does not exist") && stderr.contains("init"), "{stderr}");
}

#[tokio::test]
async fn check_accepts_a_configuration_made_of_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(binary()
        .arg("check")
        .current_dir(dir.path())
        .env("NOTION_CLIENT_ID", "from-env")
        .env("NOTION_CLIENT_SECRET", "secret_from_env")
        .env("NOH_MASTER_KEY", random_key())
        .env("NOH_SERVER__PUBLIC_URL", "https://oauth.example.com")
        .env("NOH_SERVER__BASE_PATH", "/notion")
        .env("NOH_STORAGE__URL", "postgres://noh@db.example.com/notion"))
    .await;
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("https://oauth.example.com/notion/callback"), "{stdout}");
}

#[tokio::test]
async fn a_dotenv_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "NOTION_CLIENT_ID=dotenv-id\nNOTION_CLIENT_SECRET=secret_x\nNOH_MASTER_KEY={}\nNOH_SERVER__PUBLIC_URL=https://dotenv.example.com\n",
            random_key()
        ),
    )
    .unwrap();
    let (output, stdout, stderr) = run(binary().arg("check").current_dir(dir.path())).await;
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("https://dotenv.example.com/callback"), "{stdout}");
}

#[tokio::test]
async fn init_writes_a_starting_point_that_check_understands() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, _) = run(binary().args(["init", "--dir"]).arg(dir.path())).await;
    assert!(output.status.success());
    for file in
        ["notion-oauth-handler.toml", ".env.example", "legal/privacy.html", "legal/terms.html"]
    {
        assert!(dir.path().join(file).exists(), "{file} missing; {stdout}");
    }

    // A second run does not overwrite the operator's edits.
    let (output, _, stderr) = run(binary().args(["init", "--dir"]).arg(dir.path())).await;
    assert!(!output.status.success());
    assert!(stderr.contains("--force"), "{stderr}");

    // The key is written once, for its owner only, and never replaced.
    let key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "master.key is {mode:o}");
    }
    let (output, stdout, _) =
        run(binary().args(["init", "--force", "--dir"]).arg(dir.path())).await;
    assert!(output.status.success() && stdout.contains("kept"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.path().join("master.key")).unwrap(), key);

    // The starting point lacks the client secret, and holds two placeholders that cannot
    // work: check names all three at once.
    let config = dir.path().join("notion-oauth-handler.toml");
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("has 3 problems:")
            && stderr.contains("- notion.client_secret: is required"),
        "{stderr}"
    );
    let (output, _, stderr) = run(binary()
        .args(["check", "--config"])
        .arg(&config)
        .env("NOTION_CLIENT_SECRET", "secret_x"))
    .await;
    assert!(!output.status.success(), "check passed a configuration of placeholders");
    assert!(stderr.contains("- notion.client_id: is still the placeholder"), "{stderr}");
    assert!(stderr.contains("- server.public_url: is still the placeholder"), "{stderr}");
    let (output, stdout, stderr) = run(binary()
        .args(["check", "--config"])
        .arg(&config)
        .env("NOTION_CLIENT_SECRET", "secret_x")
        .env("NOTION_CLIENT_ID", "4a1e0f4e-0000-4000-8000-000000000001")
        .env("NOH_SERVER__PUBLIC_URL", "https://oauth.acme-corp.dev"))
    .await;
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("https://oauth.acme-corp.dev/callback") && stdout.contains("/privacy"),
        "{stdout}"
    );
    // The sample legal pages work, but are not the operator's own: said, not refused.
    assert!(
        stderr.contains("warning: documents[0]: /privacy is still the sample text"),
        "{stderr}"
    );
}

#[tokio::test]
async fn every_key_that_init_suggests_is_a_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, _) = run(binary().args(["init", "--dir"]).arg(dir.path())).await;
    assert!(output.status.success());
    let written = std::fs::read_to_string(dir.path().join("notion-oauth-handler.toml")).unwrap();
    // Uncomment every suggested section and key (dropping trailing comments), as an operator would.
    let mut config = String::new();
    for line in written.lines() {
        let uncommented = line.strip_prefix("# ").filter(|rest| {
            rest.starts_with('[')
                || rest
                    .split_once(" = ")
                    .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        });
        let line = match uncommented {
            Some(rest) if rest.starts_with('[') => rest.to_owned(),
            Some(rest) => rest.split("   #").next().unwrap().trim_end().to_owned(),
            None => line.to_owned(),
        };
        // Secrets as files only, placed here.
        if line.starts_with("client_secret = ") {
            continue;
        }
        let line = line.replace("/run/secrets/", "").replace("/var/lib/notion-oauth-handler/", "");
        config.push_str(&line);
        config.push('\n');
    }
    // And the placeholders replaced, which check refuses.
    let config = config
        .replace("00000000-0000-0000-0000-000000000000", "4a1e0f4e-0000-4000-8000-000000000001")
        .replace("\"https://notion.example.com\"", "\"https://oauth.acme-corp.dev\"")
        .replace("[\"notion.example.com\"]", "[\"oauth.acme-corp.dev\"]");
    for (file, contents) in [
        ("notion_client_secret", "secret_x".to_owned()),
        ("noh_master_key", random_key()),
        ("noh_link_secret", "0123456789abcdef0123456789abcdef".to_owned()),
        ("noh_webhook_secret", "0123456789abcdef".to_owned()),
    ] {
        std::fs::write(dir.path().join(file), contents).unwrap();
    }
    std::fs::create_dir(dir.path().join("branding")).unwrap();
    std::fs::create_dir_all(dir.path().join("legal")).unwrap();
    std::fs::write(
        dir.path().join("legal/logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    // [tls] and [acme] are alternatives: each is checked without the other.
    let with_acme = without_section(&config, "[tls]");
    std::fs::write(dir.path().join("everything.toml"), &with_acme).unwrap();

    let (output, stdout, stderr) =
        run(binary().args(["check", "--config"]).arg(dir.path().join("everything.toml"))).await;

    assert!(output.status.success(), "{stderr}\n{with_acme}");
    assert!(stdout.contains("The configuration is valid"), "{stdout}");
    assert!(stdout.contains("HTTPS with a certificate from"), "{stdout}");
    assert!(
        with_acme.contains("[[webhooks]]")
            && with_acme.contains("[connect]")
            && with_acme.contains("[pages]")
            && with_acme.contains("[acme]")
            && with_acme.contains("metrics_bind = ")
            && with_acme.contains("http_bind = ")
    );
    // The files [tls] names exist only on a server: its keys are real when only they are
    // reported, as unreadable.
    let with_tls = without_section(&config, "[acme]");
    std::fs::write(dir.path().join("tls.toml"), &with_tls).unwrap();
    let (output, _, stderr) =
        run(binary().args(["check", "--config"]).arg(dir.path().join("tls.toml"))).await;
    assert!(!output.status.success());
    assert!(stderr.contains("has 2 problems:"), "{stderr}");
    assert!(
        stderr.contains("tls.cert_file: cannot read /etc/ssl/notion.example.com/fullchain.pem"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tls.key_file: cannot read /etc/ssl/notion.example.com/privkey.pem"),
        "{stderr}"
    );
}

/// `config` without the section `header` and its keys.
fn without_section(config: &str, header: &str) -> String {
    let mut inside = false;
    let mut kept = String::new();
    for line in config.lines() {
        if line == header {
            inside = true;
            continue;
        }
        if inside && line.contains(" = ") && !line.starts_with('#') {
            continue;
        }
        inside = false;
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

#[tokio::test]
async fn serve_with_a_broken_configuration_exits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[server]\npublic_url = \"https://x.example.com\"\n").unwrap();
    let (output, _, stderr) = run(binary().args(["serve", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("notion.client_id") && stderr.contains("security.master_key"),
        "{stderr}"
    );
}

pub async fn dev_flow(url: &str, user: &str) -> String {
    let browser = Browser::new();
    let authorize = browser.get(&format!("{url}connect")).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let authorize = format!("{authorize}&mock_user={}", user.replace(' ', "+"));
    let callback = browser.get(&authorize).await.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&callback).await;
    assert_eq!(page.status().as_u16(), 200);
    page.text().await.unwrap()
}

async fn list_json(data_dir: &Path) -> serde_json::Value {
    let (output, stdout, stderr) = run(binary()
        .args(["connections", "list", "--json", "--config"])
        .arg(data_dir.join("notion-oauth-handler.toml")))
    .await;
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains("ntn_") && !stdout.contains("nrt_"), "never a token: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test]
async fn dev_runs_the_whole_flow_with_nothing_configured_and_keeps_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join(".noh-dev");
    let dev = |dir: &Path| {
        let mut command = binary();
        command.args(["dev", "--bind", "127.0.0.1:0", "--auto-approve"]).current_dir(dir);
        command
    };

    // First run: secrets are generated, the flow completes, the connection is listed.
    let (mut first, line) = start(&mut dev(dir.path()), "Open in a browser").await;
    let url = line.split_whitespace().last().unwrap().to_owned();
    let page = dev_flow(&url, "Ada Lovelace").await;
    assert!(page.contains("Connected to Acme Corp"), "{page}");
    let listed = list_json(&data_dir).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let master_key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    first.start_kill().unwrap();
    let _ = first.wait().await;

    // Second run: same data, same key, and the same user re-authorizes in place.
    let (mut second, line) = start(&mut dev(dir.path()), "Open in a browser").await;
    let url = line.split_whitespace().last().unwrap().to_owned();
    let page = dev_flow(&url, "Ada Lovelace").await;
    assert!(page.contains("data-outcome=\"reauthorized\""), "{page}");
    assert_eq!(std::fs::read_to_string(data_dir.join("master.key")).unwrap(), master_key);
    let listed = list_json(&data_dir).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["authorizations"], 2);
    second.start_kill().unwrap();
    let _ = second.wait().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the generated master key is readable by its owner only");
    }
}

#[tokio::test]
async fn a_database_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // An option the driver refuses fails at once, and the error names the database.
    let url = "postgres://noh:Pa55w0rd-never-shown@127.0.0.1:1/noh?sslmode=bogus";
    std::fs::write(&config, format!("[storage]\nurl = \"{url}\"\n")).unwrap();
    for command in [["connections", "list"], ["api-keys", "list"], ["deliveries", "list"]] {
        let (output, stdout, stderr) =
            run(binary().args(command).arg("--config").arg(&config)).await;
        assert!(!output.status.success(), "{command:?}");
        assert!(stderr.contains("cannot open the database at postgres://noh:***@"), "{stderr}");
        assert!(!(stdout + &stderr).contains("Pa55w0rd"), "{command:?} printed the password");
    }
    // The server's start-up, with an otherwise complete configuration, says the same.
    let complete = format!(
        "[server]\npublic_url = \"http://localhost:1\"\nbind = \"127.0.0.1:0\"\n\
         [notion]\nclient_id = \"4a1e0f4e-0000-4000-8000-000000000001\"\nclient_secret = \"secret_abc\"\n\
         [security]\nmaster_key = \"{}\"\n[storage]\nurl = \"{url}\"\n",
        random_key()
    );
    std::fs::write(&config, complete).unwrap();
    let (output, stdout, stderr) = run(binary().arg("serve").arg("--config").arg(&config)).await;
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("postgres://noh:***@"), "{stderr}");
    assert!(!(stdout + &stderr).contains("Pa55w0rd"), "serve printed the password");
}

#[tokio::test]
async fn connections_list_prints_a_table_and_refuses_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[storage]\nurl = \"sqlite://nope.db\"\n").unwrap();
    let (output, _, stderr) =
        run(binary().args(["connections", "list", "--config"]).arg(&config)).await;
    assert!(!output.status.success());
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!dir.path().join("nope.db").exists(), "listing must not create an empty database");
}

#[tokio::test]
async fn mock_notion_runs_alone_with_the_credentials_it_is_given() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (mut emulator, line) = start(
        binary().args([
            "mock-notion",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--client-id",
            "mock-id",
            "--client-secret",
            "mock-secret",
            "--redirect-uri",
            "http://localhost:9/callback",
        ]),
        "listening on",
    )
    .await;
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    let client = crate::helpers::http().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let unknown_client = client
        .get(format!("{base}/v1/oauth/authorize?client_id=other&response_type=code&owner=user"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_client.status().as_u16(), 400);
    let no_auth = client
        .post(format!("{base}/v1/oauth/token"))
        .json(&serde_json::json!({"grant_type":"authorization_code","code":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
    assert_eq!(no_auth.json::<serde_json::Value>().await.unwrap()["error"], "invalid_client");
    emulator.start_kill().unwrap();

    let (output, _, stderr) = run(binary().args(["mock-notion", "--bind", "127.0.0.1:0"])).await;
    assert!(!output.status.success());
    assert!(stderr.contains("--client-id"), "{stderr}");
}

#[tokio::test]
async fn mock_notion_takes_every_setting_from_flags_over_its_file_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mock.toml");
    std::fs::write(
        &file,
        "client_id = \"mock-id\"\nclient_secret = \"mock-secret\"\n\
         redirect_uris = [\"http://localhost:9/callback\"]\nworkspaces = [\"Team\", \"Home\"]\n\
         error_shape = \"notion\"\nreauth = \"same_token\"\ncode_ttl_seconds = 30\n\
         rate_limit = { requests_per_second = 50, per = \"workspace\" }\ncontent_file = \"content.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("content.toml"),
        "[[workspaces]]\nname = \"Team\"\npages = [\"Alpha\", \"Beta\"]\ndatabases = [\"Gamma\"]\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (mut emulator, _) = start(
        binary()
            .args(["mock-notion", "--bind", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&file)
            // The rate-limit flag changes the file's rate, and keeps its scope.
            .args(["--error-shape", "oauth", "--rate-limit", "2"])
            .args(["--old-token-grace-seconds", "5", "--empty-state-on-deny"]),
        "listening on",
    )
    .await;
    let client = crate::helpers::http().build().unwrap();
    let settings: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/_mock/settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The workspace holds what the content file says, and a token sees what was picked.
    let base = format!("http://127.0.0.1:{port}");
    let authorize = format!(
        "{base}/v1/oauth/authorize?client_id=mock-id&response_type=code&mock_decision=allow&mock_workspace=Team&mock_pages=Alpha,Gamma"
    );
    let no_redirects =
        crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = no_redirects.get(authorize).send().await.unwrap();
    let back = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens: serde_json::Value = client
        .post(format!("{base}/v1/oauth/token"))
        .basic_auth("mock-id", Some("mock-secret"))
        .json(&serde_json::json!({"grant_type": "authorization_code", "code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found: serde_json::Value = client
        .post(format!("{base}/v1/search"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("notion-version", "2026-03-11")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    emulator.start_kill().unwrap();
    assert_eq!(found["results"].as_array().map(Vec::len), Some(2), "{found}");
    assert_eq!(settings["error_shape"], "oauth", "the flag wins over the file");
    assert_eq!(settings["reauth"], "same_token");
    assert_eq!(settings["code_ttl_seconds"], 30);
    assert_eq!(settings["old_token_grace_seconds"], 5);
    assert_eq!(settings["echo_state_on_deny"], false);
    assert_eq!(settings["workspaces"], serde_json::json!(["Team", "Home"]));
    assert_eq!(
        settings["rate_limit"],
        serde_json::json!({"requests_per_second": 2, "burst": 10, "per": "workspace"})
    );

    // What Notion would refuse, or what is not a setting, stops the start with the reason.
    let refused = [
        (
            vec!["--redirect-uri", "http://127.0.0.1:9/callback"],
            "Notion accepts http only for localhost",
        ),
        (
            vec!["--redirect-uri", "http://localhost/cb", "--code-ttl-seconds", "0"],
            "code_ttl_seconds",
        ),
        (
            vec!["--redirect-uri", "http://localhost/cb", "--reauth", "sometimes"],
            "invalid value 'sometimes'",
        ),
    ];
    for (flags, expected) in refused {
        let (output, _, stderr) = run(mock_notion_with_credentials().args(&flags)).await;
        assert!(!output.status.success(), "{flags:?}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    std::fs::write(
        dir.path().join("twins.toml"),
        "[[workspaces]]\nname = \"T\"\npages = [\"A\", \"a\"]\n",
    )
    .unwrap();
    let (output, _, stderr) = run(mock_notion_with_credentials()
        .args(["--redirect-uri", "http://localhost/cb", "--content"])
        .arg(dir.path().join("twins.toml")))
    .await;
    assert!(!output.status.success());
    assert!(stderr.contains("titles are unique (ignoring case)"), "{stderr}");
    std::fs::write(&file, "client_id = \"i\"\nclient_secret = \"s\"\nratelimit = 3\n").unwrap();
    let (output, _, stderr) =
        run(binary().args(["mock-notion", "--bind", "127.0.0.1:0", "--config"]).arg(&file)).await;
    assert!(!output.status.success());
    assert!(stderr.contains("unknown key ratelimit") && stderr.contains("rate_limit"), "{stderr}");
}

#[tokio::test]
async fn mock_notion_arms_faults_from_its_flags_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mock.toml");
    std::fs::write(
        &file,
        "client_id = \"i\"\nclient_secret = \"s\"\nredirect_uris = [\"http://localhost/cb\"]\n\
         faults = [{ endpoint = \"token\", kind = \"error\", status = 503, code = \"service_unavailable\", times = 1 }]\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (mut emulator, _) = start(
        binary()
            .args(["mock-notion", "--bind", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&file)
            .args(["--fault", "users_me=rate_limited,retry_after=2,times=1"]),
        "listening on",
    )
    .await;
    let client = crate::helpers::http().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let limited = client.get(format!("{base}/v1/users/me")).send().await.unwrap();
    let token = client.post(format!("{base}/v1/oauth/token")).send().await.unwrap();
    let again = client.get(format!("{base}/v1/users/me")).send().await.unwrap();
    emulator.start_kill().unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(token.status().as_u16(), 503);
    assert_eq!(again.status().as_u16(), 401, "once only: then the missing token is refused");

    for (flag, expected) in [
        ("nowhere=drop", "`nowhere` is not an endpoint"),
        ("token", "write --fault ENDPOINT=KIND"),
        ("token=explode", "is not a fault"),
        ("token=error,status=200", "status"),
    ] {
        let (output, _, stderr) = run(mock_notion_with_credentials().args([
            "--redirect-uri",
            "http://localhost/cb",
            "--fault",
            flag,
        ]))
        .await;
        assert!(!output.status.success(), "{flag}");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}

#[tokio::test]
async fn a_master_key_that_cannot_open_the_stored_tokens_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join(".noh-dev");
    let dev = || {
        let mut command = binary();
        command.args(["dev", "--bind", "127.0.0.1:0", "--auto-approve"]).current_dir(dir.path());
        command
    };
    let (mut first, line) = start(&mut dev(), "Open in a browser").await;
    let url = line.split_whitespace().last().unwrap().to_owned();
    assert!(dev_flow(&url, "Ada Lovelace").await.contains("Connected to"));
    first.start_kill().unwrap();
    let _ = first.wait().await;
    let config = data_dir.join("notion-oauth-handler.toml");
    let (output, stdout, _) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(output.status.success());
    let old_id = stdout.split("Master key id: ").nth(1).unwrap().lines().next().unwrap().to_owned();

    // What `export NOH_MASTER_KEY=$(openssl rand -base64 32)` in a new shell amounts to.
    let old_key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    std::fs::remove_file(data_dir.join("master.key")).unwrap();
    std::fs::write(data_dir.join("master.key"), random_key()).unwrap();

    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(!output.status.success(), "check accepted a key that opens nothing");
    assert!(stderr.contains(&format!("sealed with master key {old_id}")), "{stderr}");
    assert!(stderr.contains("previous_master_keys"), "what to do: {stderr}");
    let (output, _, stderr) = run(&mut dev()).await;
    assert!(!output.status.success(), "the server started with a key that opens nothing");
    assert!(stderr.contains(&old_id), "{stderr}");

    // After a rotation, the old key listed as previous opens the old tokens again.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[security]\n",
        &format!("[security]\nprevious_master_keys = [{:?}]\n", old_key.trim()),
    );
    std::fs::write(&config, text).unwrap();
    let (output, stdout, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(output.status.success(), "{stderr}");
    assert!(!stdout.contains(&format!("Master key id: {old_id}")), "{stdout}");

    // Re-sealed under the new key, the old one is needed no more.
    let (output, stdout, stderr) =
        run(binary().args(["keys", "rotate", "--config"]).arg(&config)).await;
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("Re-sealed 1 connection ") && stdout.contains(&old_id), "{stdout}");
    let text = std::fs::read_to_string(&config).unwrap();
    let without_old: String = text
        .lines()
        .filter(|l| !l.starts_with("previous_master_keys"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, without_old).unwrap();
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(&config)).await;
    assert!(output.status.success(), "the rotated tokens need the old key still: {stderr}");
    let (output, stdout, _) = run(binary().args(["keys", "rotate", "--config"]).arg(&config)).await;
    assert!(output.status.success() && stdout.contains("Re-sealed 0"), "{stdout}");
}

#[tokio::test]
async fn output_to_a_reader_that_went_away_ends_quietly_not_with_a_panic() {
    // As `notion-oauth-handler … | head` once head has read enough: the pipe's reader is gone.
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status.code());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `mock-notion` on a free port with a client id and secret: what every start needs, so that a
/// test's own flags are what it is about.
fn mock_notion_with_credentials() -> Command {
    let mut command = binary();
    command.args([
        "mock-notion",
        "--bind",
        "127.0.0.1:0",
        "--client-id",
        "i",
        "--client-secret",
        "s",
    ]);
    command
}

#[tokio::test]
async fn dev_names_the_app_on_its_pages_and_on_the_emulators_consent_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = binary();
    command
        .args(["dev", "--bind", "127.0.0.1:0", "--app-name", "Acme \"Notes\""])
        .current_dir(dir.path());
    let (mut dev, line) = start(&mut command, "Open in a browser").await;
    let url = line.split_whitespace().last().unwrap().to_owned();
    let browser = Browser::new();
    let landing = browser.get(&url).await.text().await.unwrap();
    assert!(landing.contains("Connect Acme &quot;Notes&quot; to Notion"), "{landing}");
    let authorize = browser.get(&format!("{url}connect")).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let consent = browser.get(&authorize).await.text().await.unwrap();
    assert!(
        consent.contains("Acme &quot;Notes&quot; wants to access your Notion workspace"),
        "{consent}"
    );
    dev.start_kill().unwrap();
    let _ = dev.wait().await;

    // A name that cannot be one is refused before anything starts.
    let (output, _, stderr) =
        run(binary().args(["dev", "--bind", "127.0.0.1:0", "--app-name", "two\nlines"])).await;
    assert!(!output.status.success());
    assert!(stderr.contains("--app-name must be 1 to 60 characters"), "{stderr}");
}

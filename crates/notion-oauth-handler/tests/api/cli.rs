//! The command line's own help: finding the configuration, plain messages, help texts,
//! completions, and commands it prints that must work as printed.

use std::process::Stdio;
use std::time::Duration;

use clap::CommandFactory;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::binary::{binary, run, start};
use crate::helpers::random_key;

#[tokio::test]
async fn check_finds_the_file_init_wrote_in_the_current_folder_and_refuses_its_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, _) = run(binary().arg("init").current_dir(dir.path())).await;
    assert!(output.status.success());

    // No --config: the file in the current folder is read, and said to be.
    let (output, stdout, stderr) = run(binary().arg("check").current_dir(dir.path())).await;
    assert!(!output.status.success(), "check passed an untouched init configuration: {stdout}");
    assert!(
        stdout.contains(
            "Configuration file: notion-oauth-handler.toml (found in the current folder)"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("has 3 problems:"), "{stderr}");
    assert!(
        stderr.contains("- notion.client_id: is still the placeholder `init` wrote"),
        "{stderr}"
    );
    assert!(
        stderr.contains("- server.public_url: is still the placeholder `init` wrote"),
        "{stderr}"
    );
    assert!(stderr.contains("- notion.client_secret: is required"), "{stderr}");

    // `serve` reads the same file, and will not start on placeholders Notion would refuse.
    let (output, _, stderr) = run(binary()
        .args(["serve"])
        .current_dir(dir.path())
        .env("NOTION_CLIENT_SECRET", "secret_x")
        .env("NOH_SERVER__BIND", "127.0.0.1:0"))
    .await;
    assert!(!output.status.success(), "serve started on placeholders: {stderr}");
    assert!(stderr.contains("- notion.client_id: is still the placeholder"), "{stderr}");
    assert!(stderr.contains("found in the current folder"), "which file was read: {stderr}");

    // Filled in, it passes.
    let filled = |command: &mut tokio::process::Command| {
        command
            .current_dir(dir.path())
            .env("NOTION_CLIENT_ID", "4a1e0f4e-0000-4000-8000-000000000001")
            .env("NOTION_CLIENT_SECRET", "secret_x")
            .env("NOH_SERVER__PUBLIC_URL", "https://oauth.acme-corp.dev");
    };
    let mut check = binary();
    check.arg("check");
    filled(&mut check);
    let (output, stdout, stderr) = run(&mut check).await;
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("https://oauth.acme-corp.dev/callback"), "{stdout}");

    // NOH_CONFIG names a file elsewhere, over the one in the current folder.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("other.toml"), "[server]\nbnd = \"x\"\n").unwrap();
    let mut check = binary();
    check.arg("check").env("NOH_CONFIG", elsewhere.path().join("other.toml"));
    filled(&mut check);
    let (output, stdout, stderr) = run(&mut check).await;
    assert!(!output.status.success());
    assert!(stdout.contains("other.toml") && stderr.contains("server.bnd"), "{stdout}{stderr}");

    // A folder named instead of the file in it.
    let (output, _, stderr) = run(binary().args(["check", "--config"]).arg(elsewhere.path())).await;
    assert!(!output.status.success() && stderr.contains("is a folder"), "{stderr}");
}

#[tokio::test]
async fn without_any_configuration_the_message_says_no_file_was_found_and_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["check", "serve"] {
        let (output, _, stderr) = run(binary().arg(command).current_dir(dir.path())).await;
        assert!(!output.status.success());
        assert!(
            stderr.contains(
                "No configuration file was read: there is no notion-oauth-handler.toml in"
            ),
            "{command}: {stderr}"
        );
        assert!(stderr.contains(" init`") && stderr.contains("--config FILE"), "{stderr}");
    }
    // With some keys from the environment and others missing, the hint is still there; with
    // every required key given, the environment alone is a configuration.
    let (output, _, stderr) = run(binary()
        .arg("check")
        .current_dir(dir.path())
        .env("NOTION_CLIENT_ID", "4a1e0f4e-0000-4000-8000-000000000001")
        .env("NOTION_CLIENT_SECRET", "secret_x")
        .env("NOH_MASTER_KEY", random_key())
        .env("NOH_SERVER__PUBLIC_URL", "https://oauth.acme-corp.dev"))
    .await;
    assert!(output.status.success(), "{stderr}");
}

#[tokio::test]
async fn unknown_keys_are_reported_with_every_other_problem_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        r#"
[sever]
bind = "127.0.0.1:1"
[server]
bnd = "127.0.0.1:1"
public_url = "http://not-local.example.org"
header_timeout_seconds = "ten"
max_connections = -3
[notion]
clientid = "x"
timeout = 5
[storage]
client_id = "x"
[security]
state_ttl_seconds = 5
[lifecycle]
check_interval_seconds = -1
[[documents]]
path = "/privacy"
fille = "p.html"
"#,
    )
    .unwrap();
    let (output, _, stderr) = run(binary()
        .args(["check", "--config"])
        .arg(&config)
        .env("NOH_DELIVERY__MAX_ATEMPTS", "3"))
    .await;
    assert!(!output.status.success());
    for expected in [
        "- sever: is not a section; did you mean [server]?",
        "- server.bnd: is not a setting; did you mean `bind`?",
        "- notion.clientid: is not a setting; did you mean `client_id`?",
        "- notion.timeout: is not a setting; did you mean `timeout_seconds`?",
        "- storage.client_id: is not a setting of [storage]; it belongs under [notion]",
        "- documents[0].fille: is not a setting; did you mean `file`?",
        "- delivery.max_atempts: is not a setting; did you mean `max_attempts`? (from an environment variable)",
        // Wrong types, in words, never quoting the value.
        "- server.header_timeout_seconds: must be a whole number, 0 or more, not text",
        // Not only a section's first wrong value.
        "- server.max_connections: must be a whole number, 0 or more, not a negative number",
        "- lifecycle.check_interval_seconds: must be a whole number, 0 or more, not a negative number",
        "- documents[0].file: is required",
        // ...and what checking the rest finds, all in the same report.
        "- security.state_ttl_seconds: must be between 60 and 3600 seconds",
        "- security.master_key: is required",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    // A section that could not be read is not checked as if it were empty.
    assert!(!stderr.contains("- server.public_url: is required"), "{stderr}");
    for rust in ["u64", "problem(s)", "invalid type", "expected", "(s)"] {
        assert!(!stderr.contains(rust), "{rust:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn every_argument_and_subcommand_is_described_in_help() {
    fn undescribed(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                found.push(format!("{path} {}", arg.get_id()));
            }
            // A flag's true/false need no words.
            let values = if arg.get_action().takes_values() {
                arg.get_possible_values()
            } else {
                Vec::new()
            };
            for value in values {
                if value.get_help().is_none() {
                    found.push(format!("{path} {} {}", arg.get_id(), value.get_name()));
                }
            }
        }
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                found.push(sub_path.clone());
            }
            undescribed(sub, &sub_path, found);
        }
    }
    let mut found = Vec::new();
    undescribed(&notion_oauth_handler::Cli::command(), "notion-oauth-handler", &mut found);
    assert!(found.is_empty(), "without a description: {found:#?}");

    // What the binary prints: the default lookup of --config, for every command that takes it.
    for command in [&["check"][..], &["serve"], &["connections", "list"], &["keys", "rotate"]] {
        let (output, stdout, _) = run(binary().args(command).arg("--help")).await;
        assert!(output.status.success());
        assert!(
            stdout.contains("[default: ./notion-oauth-handler.toml")
                && stdout.contains("NOH_CONFIG"),
            "{command:?}: {stdout}"
        );
    }
    let (_, stdout, _) = run(binary().args(["connections", "show", "--help"])).await;
    assert!(stdout.contains("The connection's bot id"), "{stdout}");
}

#[tokio::test]
async fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef notion-oauth-handler"),
        ("fish", "complete -c notion-oauth-handler"),
    ] {
        let (output, stdout, stderr) = run(binary().args(["completions", shell])).await;
        assert!(output.status.success(), "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        for subcommand in ["check", "serve", "connections", "mock-notion", "completions"] {
            assert!(stdout.contains(subcommand), "{shell} lacks {subcommand}");
        }
        if shell == "bash" && std::process::Command::new("bash").arg("--version").output().is_ok() {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("completion.bash");
            std::fs::write(&script, &stdout).unwrap();
            let parsed =
                std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
            assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
        }
    }
    let (output, _, stderr) = run(binary().args(["completions", "tcsh"])).await;
    assert!(!output.status.success() && stderr.contains("bash"), "{stderr}");
}

#[tokio::test]
async fn dev_prints_a_connections_command_that_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dev, line) = start(
        binary().args(["dev", "--bind", "127.0.0.1:0", "--auto-approve"]).current_dir(dir.path()),
        "Stored connections:",
    )
    .await;
    let printed = line.split("Stored connections:").nth(1).unwrap().trim().to_owned();
    // Pasted into a shell somewhere else, with this test binary's PATH (which does not hold the
    // program, as after `cargo run`).
    let elsewhere = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&printed)
        .current_dir(elsewhere.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    dev.start_kill().unwrap();
    let _ = dev.wait().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`{printed}` failed: {stderr}");
    assert!(stdout.contains("No connections") || stdout.contains("BOT"), "{printed}: {stdout}");
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_and_a_visitor_s_callback_error_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["dev", "--bind", "127.0.0.1:0", "--auto-approve"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Open in a browser") {
                return line.split_whitespace().last().unwrap().to_owned();
            }
        }
        panic!("dev ended before printing its address");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = crate::helpers::http().build().unwrap();
    for query in ["error=whatever", "error=server_error&state=forged", "code=x&state=forged"] {
        let page = client.get(format!("{url}callback?{query}")).send().await.unwrap();
        assert!(page.status().is_client_error(), "{query}: {}", page.status());
    }
    // The log lines of those requests are written by now; stop and read everything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
    let _ = child.wait().await;
    assert!(logs.contains("a callback was refused"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a pipe: {logs:?}");
    assert!(!logs.contains("ERROR"), "a visitor's mistake logged as an error: {logs}");
}

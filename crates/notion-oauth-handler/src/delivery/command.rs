//! The command hook: a program that receives each event's JSON on its standard input.
//!
//! It runs with a clean environment: the server's holds the master key and Notion's client
//! secret, which a hook (and whatever it runs or logs) has no business seeing. `PATH`, `HOME`,
//! `LANG` and the variables named in `command_hook.env` are passed, with the event's id, type and
//! attempt number.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::store::Delivery;

const PASSED: [&str; 3] = ["PATH", "HOME", "LANG"];

/// Why a run of the hook failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    #[error("could not start {program}: {source}")]
    Start { program: String, source: std::io::Error },
    #[error("the hook exited with {status}{}", said.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Exit { status: std::process::ExitStatus, said: Option<String> },
    #[error("the hook could not be waited for: {0}")]
    Wait(#[source] std::io::Error),
    #[error("the hook ran longer than {0} s and was stopped")]
    TimedOut(u64),
}

/// The command hook as configured.
pub(super) struct Command<'a> {
    pub(super) program: &'a str,
    pub(super) args: &'a [String],
    /// Variables passed on beyond [`PASSED`].
    pub(super) pass_env: &'a [String],
    pub(super) timeout: Duration,
}

impl Command<'_> {
    /// Runs the hook once; exit status 0 is success. A hook still running at `timeout` is killed.
    pub(super) async fn run(&self, delivery: &Delivery) -> Result<(), CommandError> {
        let Self { program, args, pass_env, timeout } = *self;
        let mut command = tokio::process::Command::new(program);
        command.args(args).env_clear();
        for name in PASSED.iter().copied().chain(pass_env.iter().map(String::as_str)) {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        let mut child = command
            .env("NOH_EVENT_ID", &delivery.event_id)
            .env("NOH_EVENT_TYPE", &delivery.event_type)
            .env("NOH_DELIVERY_ATTEMPT", (delivery.attempts + 1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CommandError::Start { program: program.to_owned(), source })?;
        let mut stderr_pipe = child.stderr.take();
        // Read what the hook says while it runs (so it never blocks on a full pipe), but do not wait
        // for the pipe to close: a process the hook left behind may hold it open after the exit.
        let (said_tx, mut said_rx) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut said = Vec::new();
            if let Some(pipe) = stderr_pipe.as_mut() {
                let _ = pipe.take(4096).read_to_end(&mut said).await;
            }
            let _ = said_tx.send(said);
        });
        let outcome = tokio::time::timeout(timeout, async {
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read its input is its own business.
                let _ = stdin.write_all(delivery.payload.as_bytes()).await;
            }
            child.wait().await
        })
        .await;
        let said = tokio::time::timeout(Duration::from_millis(200), &mut said_rx)
            .await
            .ok()
            .and_then(Result::ok);
        reader.abort();
        let said: Option<String> = said
            .map(|s| String::from_utf8_lossy(&s).trim().chars().take(300).collect::<String>())
            .filter(|s| !s.is_empty());
        match outcome {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(CommandError::Exit { status, said }),
            Ok(Err(e)) => Err(CommandError::Wait(e)),
            Err(_) => Err(CommandError::TimedOut(timeout.as_secs())),
        }
    }
}

//! The command hook: a program that receives each event's JSON on its standard input.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::store::Delivery;

/// Runs the hook once; exit status 0 is success. A hook still running at `timeout` is killed.
pub async fn run(
    program: &str,
    args: &[String],
    timeout: Duration,
    delivery: &Delivery,
) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .env("NOH_EVENT_ID", &delivery.event_id)
        .env("NOH_EVENT_TYPE", &delivery.event_type)
        .env("NOH_DELIVERY_ATTEMPT", (delivery.attempts + 1).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    let outcome = tokio::time::timeout(timeout, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its input is its own business.
            let _ = stdin.write_all(delivery.payload.as_bytes()).await;
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        (child.wait().await, stderr)
    })
    .await;
    match outcome {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), stderr)) => {
            let said: String = stderr.trim().chars().take(300).collect();
            Err(format!(
                "the hook exited with {status}{}",
                if said.is_empty() { String::new() } else { format!(": {said}") }
            ))
        }
        Ok((Err(e), _)) => Err(format!("the hook could not be waited for: {e}")),
        Err(_) => Err(format!("the hook ran longer than {} s and was stopped", timeout.as_secs())),
    }
}

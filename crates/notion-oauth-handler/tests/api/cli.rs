//! The command line's own help: finding the configuration, plain messages, help texts,
//! completions, and commands it prints that must work as printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::binary::binary;

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

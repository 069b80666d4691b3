//! `noh-bench`: a load benchmark of notion-oauth-handler that anyone can rerun.
//!
//! `noh-bench run` starts every system under test as its own process on loopback ports (a bare
//! axum "hello" as the ceiling, the Notion emulator in bench mode, our server on SQLite and
//! optionally on PostgreSQL, and the PyPI package notion-oauth-handler as the anchor), puts
//! closed-loop load on each scenario in turn, round after round, and prints one markdown table.
//! docs/BENCHMARKS.md says how to run it and how to read the table.

mod load;
mod report;
mod scenario;
mod systems;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// The `noh-bench` command line.
#[derive(Debug, Parser)]
#[command(
    name = "noh-bench",
    about = "Load benchmark of notion-oauth-handler (see docs/BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the systems under test, load each scenario round after round, print the table.
    Run(RunArgs),
    /// Serve `GET /` -> "hello" with plain axum: the ceiling (run by `run` itself).
    Hello {
        /// Where to listen.
        #[arg(long)]
        bind: SocketAddr,
    },
}

/// How a run is measured and what it measures.
#[derive(Clone, Debug, Args)]
pub(crate) struct RunArgs {
    /// The notion-oauth-handler binary [default: target/release/notion-oauth-handler in the
    /// workspace].
    #[arg(long)]
    pub(crate) server: Option<PathBuf>,
    /// The binary whose `mock-notion --bench` is the emulator [default: the workspace's
    /// target/release/notion-oauth-handler]: lets `--server` be an older build, measured against
    /// the same emulator.
    #[arg(long)]
    pub(crate) emulator: Option<PathBuf>,
    /// The Python that has `notion-oauth-handler==0.1.3` installed [default: python3, if it can
    /// import it; otherwise the Python rows are skipped].
    #[arg(long)]
    pub(crate) python: Option<String>,
    /// Also run our server on PostgreSQL: a URL whose server lets this user create databases,
    /// e.g. postgres://postgres@127.0.0.1:5432/test (a fresh database is made and dropped).
    #[arg(long)]
    pub(crate) postgres: Option<String>,
    /// Seconds each scenario is measured for, per round.
    #[arg(long, default_value_t = 20)]
    pub(crate) duration: u64,
    /// Seconds of load before each measurement, not counted.
    #[arg(long, default_value_t = 3)]
    pub(crate) warmup: u64,
    /// How many times every scenario runs; rounds interleave the systems, minutes apart.
    #[arg(long, default_value_t = 4)]
    pub(crate) rounds: u32,
    /// Concurrent keep-alive connections, each sending its next request when the last answered.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
    /// Worker threads of the load generator; keep it low so the servers get the other cores.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Only these scenarios, comma-separated (e.g. hello,callback,python-callback).
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Option<Vec<String>>,
    /// Also write the raw results (every round) as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    // Printed here rather than by returning the error, which would add a backtrace whenever
    // RUST_BACKTRACE is set: the message names what to do, the frames would not help.
    match run_command(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("noh-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hello { bind } => hello(bind),
        Command::Run(args) => {
            if args.threads == 0 || args.connections == 0 || args.rounds == 0 || args.duration == 0
            {
                anyhow::bail!(
                    "--threads, --connections, --rounds and --duration must be at least 1"
                );
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads)
                .enable_all()
                .build()
                .context("cannot start the load generator's runtime")?;
            let outcome = runtime.block_on(async {
                tokio::select! {
                    outcome = systems::run(args) => outcome,
                    // Dropping the run drops every child process (each is killed on drop), the
                    // temporary folder and the PostgreSQL database.
                    why = stop_requested() => Err(anyhow::anyhow!("{why}")),
                }
            });
            // Children killed on drop are reaped by the runtime; give it a moment to do so.
            runtime.shutdown_timeout(Duration::from_secs(2));
            outcome
        }
    }
}

/// Ctrl-C, or the SIGTERM of `kill` or `timeout`: either ends the run the same way, so that
/// nothing it started (processes, the folder, the PostgreSQL database) outlives it.
async fn stop_requested() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    // A signal that cannot be listened for never arrives; it must not end the run at once.
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            () = interrupt => "interrupted",
            _ = terminate.recv() => "terminated",
        },
        Err(_) => {
            interrupt.await;
            "interrupted"
        }
    }
}

/// The ceiling: the least a Rust HTTP server on this machine does per request, on the same
/// runtime flavour our server uses.
fn hello(bind: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        axum::serve(listener, app).await.context("the hello server stopped")
    })
}

//! The command line; everything it runs lives in the library.

use std::process::ExitCode;

use clap::Parser;
use notion_oauth_handler::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    // A .env beside the binary's working directory is a convenience; a missing one is normal.
    let _ = dotenvy::dotenv();
    run(Cli::parse()).await
}

//! Wires the command line to the library; nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use notion_oauth_handler::cli::{Cli, Command};
use notion_oauth_handler::{commands, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // A .env beside the binary's working directory is a convenience; a missing one is normal.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Dev(args) => commands::dev(args).await,
        Command::Serve(args) => commands::serve(args).await,
        Command::MockNotion(args) => commands::mock_notion(args).await,
        Command::Init(args) => commands::init(&args),
        Command::Check(args) => commands::check(&args),
        Command::Connections(command) => commands::connections(command).await,
        Command::ApiKeys(command) => commands::api_keys(command).await,
        Command::Deliveries(command) => commands::deliveries(command).await,
        Command::ConnectLink(args) => commands::connect_link(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line: "cannot open …: unable to open …".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

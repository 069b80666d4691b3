//! What each subcommand does, given its parsed arguments.

/// `println!` for the commands' output: a reader that went away (`… | head`) ends the command
/// quietly with success, as for any Unix tool, instead of a panic (exit 101).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod admin;
mod dev;
mod init;
mod mock;
mod private_file;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::{Cli, Command, ConfigArg, ConnectLinkArgs};
use crate::config::{Challenge, Config, Tls, load_settings};
use crate::links::ConnectLink;
use crate::startup::Application;
use crate::store::{SqlStore, Store, now};
use crate::telemetry::Chain;
use crate::vault::Vault;

/// Runs one command of the `notion-oauth-handler` binary, with logging set up as it asks; a
/// failure is printed with its whole chain of causes.
pub async fn run(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Dev(args) => dev::dev(args).await,
        Command::Serve(args) => serve(args).await,
        Command::MockNotion(args) => mock::mock_notion(args).await,
        Command::Init(args) => init::init(&args),
        Command::Check(args) => check(&args).await,
        Command::Connections(command) => admin::connections(command).await,
        Command::ApiKeys(command) => admin::api_keys(command).await,
        Command::Deliveries(command) => admin::deliveries(command).await,
        Command::ConnectLink(args) => connect_link(&args),
        Command::Keys(command) => admin::keys(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain on one line ("cannot open …: unable to open …"), each cause once.
            eprintln!("error: {}", Chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Loads and checks the configuration; relative paths in it are relative to its folder.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let settings = load_settings(path)?;
    Ok(settings.validate(&base_dir(path))?)
}

fn base_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `serve`: the production server, until SIGINT or SIGTERM.
async fn serve(args: ConfigArg) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let redirect_uri = config.redirect_uri();
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, %redirect_uri, "notion-oauth-handler is listening");
    app.run_until(shutdown_signal()).await.context("the server stopped with an error")
}

/// `check`: every problem at once, or what to register in Notion's portal; and, when the
/// database exists already, whether the configured keys open its tokens.
async fn check(args: &ConfigArg) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let vault = Vault::new(&config.master_key, &config.previous_master_keys);
    match crate::store::sqlite_file(&config.storage_url) {
        // Made by the first `serve`: no tokens yet for the keys to open.
        Some(file) if !file.exists() => {
            out!("No database yet at {}: serve makes it.", file.display());
        }
        // `check` also runs where the database cannot be reached (a build machine): that is
        // said, not failed; keys that do not open the stored tokens fail.
        _ => match SqlStore::open_existing(&config.storage_url).await {
            Ok(store) => {
                let checked = crate::startup::check_keys(&store, &vault).await;
                store.close().await;
                checked?;
            }
            Err(error) => eprintln!(
                "warning: the database at {} was not reached ({}), so whether the keys open its tokens was not checked",
                crate::config::redacted_url(&config.storage_url),
                Chain(&error)
            ),
        },
    }
    let mut cache_state = "";
    let certificate = match &config.tls {
        Some(Tls::Files(files)) => Some(crate::tls::load(files).context("[tls] cannot be served")?),
        Some(Tls::Acme(acme)) => {
            cache_state = crate::acme::check_cache(acme)?;
            match crate::tls::load(&acme.files) {
                Ok(cached) => Some(cached),
                Err(_) if !acme.files.cert_file.exists() => None,
                Err(error) => {
                    eprintln!(
                        "warning: the cached certificate cannot be used ({}); serve will order a new one",
                        Chain(&error)
                    );
                    None
                }
            }
        }
        None => None,
    };
    out!("The configuration is valid.");
    out!("Master key id: {}", vault.active_key_id());
    out!("Redirect URI to register in Notion's Developer portal: {}", config.redirect_uri());
    if let Some(Tls::Acme(acme)) = &config.tls {
        let challenge = match acme.challenge {
            Challenge::TlsAlpn01 => "tls-alpn-01 on server.bind (reached on port 443)",
            Challenge::Http01 => "http-01 on server.http_bind (reached on port 80)",
        };
        out!(
            "HTTPS with a certificate from {} for {}, validated by {challenge}; cache {} ({cache_state})",
            acme.directory_url,
            acme.domains.join(", "),
            acme.cache_dir.display()
        );
        if certificate.is_none() {
            out!("No certificate cached yet: serve orders one when it starts.");
        }
    }
    if let (Some(tls), Some(certificate)) = (&config.tls, &certificate) {
        let left = certificate.expires_at.duration_since(std::time::SystemTime::now());
        let days = left.map_or(0, |left| left.as_secs() / 86_400);
        out!(
            "HTTPS with the certificate in {} (its key matches; it expires in {days} day(s))",
            tls.files().cert_file.display()
        );
        if days < 14 && matches!(tls, Tls::Files(_)) {
            eprintln!("warning: the certificate expires in {days} day(s): renew it");
        }
    }
    for document in &config.documents {
        out!("Document served at: {}", config.public_link(&document.path));
    }
    Ok(())
}

/// `connect-link`: a link to /connect that the server will trust, signed the way the README
/// shows apps how to sign one.
fn connect_link(args: &ConnectLinkArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.config.as_deref())?;
    let Some(secret) = &config.connect.link_secret else {
        bail!("connect.link_secret is not set: add one (`openssl rand -hex 32`) to sign links");
    };
    if let Some(return_to) = &args.return_to
        && crate::config::check_return_to(return_to, &config.connect.return_to_origins).is_none()
    {
        bail!("{return_to} is not at one of connect.return_to_origins");
    }
    let ttl = i64::try_from(args.ttl).unwrap_or(i64::MAX).min(30 * 24 * 3600);
    let link = ConnectLink::Signed {
        reference: args.reference.as_deref().unwrap_or(""),
        return_to: args.return_to.as_deref().unwrap_or(""),
        expires: now() + ttl,
        secret,
    };
    out!("{}", link.url(&config.public_link("/connect")));
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

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

use crate::cli::{Cli, Command, CompletionShell, ConfigArg, ConnectLinkArgs};
use crate::config::{Challenge, Config, ConfigError, Placeholders, Tls, count};
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
        Command::Completions { shell } => completions(shell),
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

/// The file `init` writes, read from the current folder when no other is named.
const DEFAULT_CONFIG: &str = "notion-oauth-handler.toml";

/// The configuration file a command reads: the one named by --config or NOH_CONFIG, else
/// `notion-oauth-handler.toml` in the current folder if there is one, else none (the
/// environment alone).
fn config_file(arg: &ConfigArg) -> Option<PathBuf> {
    arg.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG);
        default.is_file().then_some(default)
    })
}

/// Which file was read, in words, for `check` and the server's first log line.
fn config_source(arg: &ConfigArg, file: Option<&Path>) -> String {
    match (file, &arg.config) {
        (Some(file), Some(_)) => file.display().to_string(),
        (Some(file), None) => format!("{} (found in the current folder)", file.display()),
        (None, _) => {
            format!("none (no {DEFAULT_CONFIG} in the current folder): environment variables only")
        }
    }
}

/// Loads and checks the configuration a command was pointed at (see [`config_file`]).
fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    load_config_with(arg, Placeholders::Allow)
}

/// [`load_config`], with placeholders refused or allowed.
fn load_config_with(arg: &ConfigArg, placeholders: Placeholders) -> anyhow::Result<Config> {
    let file = config_file(arg);
    let path = file.as_deref();
    match crate::config::load_with(path, &base_dir(path), placeholders) {
        Ok(config) => Ok(config),
        // Required keys missing and no file read: likely the wrong folder, or no file made yet.
        Err(problems)
            if file.is_none()
                && problems.0.iter().any(|problem| problem.message.starts_with("is required")) =>
        {
            Err(anyhow::anyhow!("{problems}\n{}", no_config_file()))
        }
        Err(problems) => Err(problems.into()),
    }
}

/// What to do when no configuration file was found.
fn no_config_file() -> String {
    let folder = std::env::current_dir()
        .map_or_else(|_| "the current folder".to_owned(), |dir| dir.display().to_string());
    format!(
        "No configuration file was read: there is no {DEFAULT_CONFIG} in {folder}, and neither \
         --config nor NOH_CONFIG names one. Write one with `{} init`, or name yours with \
         --config FILE.",
        this_program()
    )
}

/// The database a command's configuration names, with a relative SQLite path resolved; the rest
/// is not checked, since listing needs neither the master key nor Notion's credentials.
fn storage_url(arg: &ConfigArg) -> anyhow::Result<String> {
    let file = config_file(arg);
    let settings = crate::config::load_settings(file.as_deref())?;
    Ok(crate::config::resolve_sqlite_url(&settings.storage.url, &base_dir(file.as_deref())))
}

/// Loads and checks the configuration at `path`; relative paths in it are relative to its
/// folder.
fn load_config_at(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(crate::config::load(path, &base_dir(path))?)
}

fn base_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `serve`: the production server, until SIGINT or SIGTERM.
async fn serve(args: ConfigArg) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    tracing::info!(file = %config_source(&args, config_file(&args).as_deref()), "configuration read");
    let placeholders = config.placeholders();
    // Against Notion itself they cannot work; against an emulator on this machine they can.
    if !placeholders.is_empty() && config.local_notion_origin().is_none() {
        return Err(ConfigError(placeholders).into());
    }
    for problem in placeholders {
        tracing::warn!("{problem}");
    }
    let redirect_uri = config.redirect_uri();
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, %redirect_uri, "notion-oauth-handler is listening");
    app.run_until(shutdown_signal()).await.context("the server stopped with an error")
}

/// `check`: every problem at once, or what to register in Notion's portal; and, when the
/// database exists already, whether the configured keys open its tokens.
async fn check(args: &ConfigArg) -> anyhow::Result<()> {
    out!("Configuration file: {}", config_source(args, config_file(args).as_deref()));
    let config = load_config_with(args, Placeholders::Refuse)?;
    for sample in config.unedited_samples() {
        eprintln!("warning: {sample}");
    }
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
            "HTTPS with the certificate in {} (its key matches; it expires in {})",
            tls.files().cert_file.display(),
            count(usize::try_from(days).unwrap_or(usize::MAX), "day")
        );
        if days < 14 && matches!(tls, Tls::Files(_)) {
            eprintln!(
                "warning: the certificate expires in {}: renew it",
                count(usize::try_from(days).unwrap_or(usize::MAX), "day")
            );
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
    let config = load_config(&args.config)?;
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

/// How to run this program again from a shell, as printed in hints: its name when that name on
/// PATH is this very program, else the path it was started from (after `cargo run`, say), quoted
/// for a shell where needed.
fn this_program() -> String {
    const NAME: &str = "notion-oauth-handler";
    let Ok(exe) = std::env::current_exe() else { return NAME.to_owned() };
    let exe = exe.canonicalize().unwrap_or(exe);
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| dir.join(NAME).canonicalize().is_ok_and(|found| found == exe))
    });
    if on_path { NAME.to_owned() } else { shell_quoted(&exe.display().to_string()) }
}

/// `text` as one word for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

/// `completions`: the script that teaches `shell` this command line, from the same definition
/// that parses it.
fn completions(shell: CompletionShell) -> anyhow::Result<()> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "notion-oauth-handler", &mut script);
    // Through out!, so that `… | head` ends quietly like every other command.
    out!("{}", String::from_utf8_lossy(&script).trim_end());
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

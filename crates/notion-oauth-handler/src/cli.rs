//! The command line: one subcommand per thing an operator does.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::domain::{ConnectionStatus, DeliveryStatus};
use crate::telemetry::LogFormat;

/// The `notion-oauth-handler` command line.
#[derive(Debug, Parser)]
#[command(
    name = "notion-oauth-handler",
    version,
    about = "Add to Notion, done right: OAuth flow, encrypted token storage, a local Notion emulator"
)]
pub struct Cli {
    /// How log lines look (RUST_LOG sets which ones are written).
    #[arg(long, global = true, value_enum, default_value_t, env = "NOH_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run everything on this machine: the server, a Notion emulator and SQLite, no credentials needed.
    Dev(DevArgs),
    /// Run the production server.
    Serve(ConfigArg),
    /// Run only the Notion emulator.
    MockNotion(MockNotionArgs),
    /// Write a commented notion-oauth-handler.toml, .env.example and sample legal pages to start from.
    Init(InitArgs),
    /// Check a configuration and report every problem at once.
    Check(ConfigArg),
    /// Inspect and manage stored connections (tokens are never shown).
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Manage the keys that the developer's backend uses to call the API.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// See and retry deliveries of connection events to webhooks and the command hook.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Print a signed link to /connect for one of your users (needs connect.link_secret).
    ConnectLink(ConnectLinkArgs),
    /// Manage the master keys the stored tokens are encrypted with.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script, e.g. `notion-oauth-handler completions bash >
    /// ~/.local/share/bash-completion/completions/notion-oauth-handler`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// `completions`' shells.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CompletionShell {
    /// Bash (with the bash-completion package).
    Bash,
    /// Zsh (the file goes in a folder on $fpath, named _notion-oauth-handler).
    Zsh,
    /// Fish (the file goes in ~/.config/fish/completions/notion-oauth-handler.fish).
    Fish,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Re-encrypt every stored token under security.master_key, so that the keys in
    /// security.previous_master_keys can then be removed. Safe to interrupt and to run while
    /// the server serves.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The configuration file [default: ./notion-oauth-handler.toml, as `init` writes it, when
    /// there is one]
    ///
    /// Environment variables (NOH_SECTION__KEY, NOTION_CLIENT_ID, NOTION_CLIENT_SECRET,
    /// NOH_MASTER_KEY) override what it says; without a file they are the whole configuration.
    #[arg(long, short, env = "NOH_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Where the server listens; open this address in a browser.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) bind: SocketAddr,
    /// Where the emulator listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) notion_bind: SocketAddr,
    /// Where the SQLite database and the generated secrets are kept between runs.
    #[arg(long, default_value = ".noh-dev")]
    pub(crate) data_dir: PathBuf,
    /// Approve at once instead of showing the emulator's consent page.
    #[arg(long)]
    pub(crate) auto_approve: bool,
    /// Your app's name, as the pages say it ("Connect <app> to Notion") and as the emulator's
    /// consent page names the integration.
    #[arg(long, value_name = "NAME")]
    pub(crate) app_name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MockNotionArgs {
    /// Where the emulator listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub(crate) bind: SocketAddr,
    /// A TOML file with client_id, client_secret, redirect_uris, bench, content_file and any of
    /// the settings below (snake_case keys: error_shape = "notion",
    /// rate_limit = { requests_per_second = 3 }); flags override it.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// The client id the emulator accepts.
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    /// The integration's name on the consent page (the client id is shown without one).
    #[arg(long, value_name = "NAME")]
    pub(crate) integration_name: Option<String>,
    /// The client secret the emulator accepts.
    #[arg(long, env = "MOCK_NOTION_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: Option<String>,
    /// A registered redirect URI (repeat for several).
    #[arg(long = "redirect-uri")]
    pub(crate) redirect_uris: Vec<String>,
    /// Approve at once instead of showing the consent page.
    #[arg(long)]
    pub(crate) auto_approve: bool,
    /// Be a benchmark's load target: approve at once, exchange any code (each code its own bot)
    /// without checking redirect_uri, and record nothing. Client credentials are still checked.
    #[arg(long)]
    pub(crate) bench: bool,
    /// The error body of /v1/oauth/*: RFC 6749's `{error, error_description}` or Notion's
    /// `{object: "error", status, code, message}` (Notion's docs show both) [default: oauth].
    #[arg(long, value_enum)]
    pub(crate) error_shape: Option<MockErrorShape>,
    /// What a second authorization by the same user in the same workspace gets: a fresh token
    /// pair (the old one dies) or the same live pair [default: fresh-pair].
    #[arg(long, value_enum)]
    pub(crate) reauth: Option<MockReauth>,
    /// What revoking a token ends: its whole pair, or only that token [default: whole-pair].
    #[arg(long, value_enum)]
    pub(crate) revocation: Option<MockRevocation>,
    /// How long an authorization code may be exchanged, in seconds [default: 600].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) code_ttl_seconds: Option<u64>,
    /// Access tokens stop working this many seconds after they were issued (their refresh token
    /// still works: a client must refresh on 401) [default: 0, never].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) access_token_ttl_seconds: Option<u64>,
    /// How long the previous access token keeps working after a refresh, in seconds [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) old_token_grace_seconds: Option<u64>,
    /// On Cancel, send back `state=` empty (as Notion's documented example) instead of the
    /// app's state.
    #[arg(long)]
    pub(crate) empty_state_on_deny: bool,
    /// A workspace offered on the consent page (repeat for several; the first is the default)
    /// [default: "Acme Corp", "Personal"].
    #[arg(long = "workspace", value_name = "NAME")]
    pub(crate) workspaces: Vec<String>,
    /// A TOML file of what the workspaces hold: [[workspaces]] with name, pages and databases
    /// (titles) [default: 22 pages and 3 databases in every workspace].
    #[arg(long, value_name = "FILE")]
    pub(crate) content: Option<PathBuf>,
    /// Rate-limit the API to this many requests per second: 429 `rate_limited` with an integer
    /// Retry-After past it (Notion documents about 3) [default: off].
    #[arg(long, value_name = "PER_SECOND")]
    pub(crate) rate_limit: Option<u32>,
    /// How many requests may come at once before the rate applies [default: 10].
    #[arg(long, value_name = "REQUESTS")]
    pub(crate) rate_limit_burst: Option<u32>,
    /// What one rate-limit budget covers: each connection (token), each workspace, or every
    /// request together [default: token].
    #[arg(long, value_enum)]
    pub(crate) rate_limit_per: Option<MockRateLimitScope>,
    /// A fault armed from the start: ENDPOINT=KIND[,key=value…], e.g. token=error,status=503,times=1
    /// or users_me=rate_limited,retry_after=2 or search=delay,ms=3000 (repeat for several; the
    /// README lists kinds and keys; switch them at run time at /_mock/faults).
    #[arg(long = "fault", value_name = "SPEC")]
    pub(crate) faults: Vec<String>,
    /// Refuse an authorize URL without owner=user, as Notion's documentation has it (by
    /// default it is accepted, as Notion's changelog says it is).
    #[arg(long)]
    pub(crate) require_owner: bool,
}

/// `--error-shape`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MockErrorShape {
    /// RFC 6749's `{error, error_description}`.
    Oauth,
    /// Notion's `{object: "error", status, code, message}`.
    Notion,
}

/// `--reauth`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MockReauth {
    /// A new access and refresh token; the old pair stops working.
    FreshPair,
    /// The pair already issued, still working.
    SameToken,
}

/// `--revocation`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MockRevocation {
    /// The access and the refresh token both.
    WholePair,
    /// Only the token revoked.
    OnlyThatToken,
}

/// `--rate-limit-per`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MockRateLimitScope {
    /// Each connection's token.
    Token,
    /// Each workspace.
    Workspace,
    /// Every request together.
    Integration,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The folder to write into.
    #[arg(long, default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionsCommand {
    /// List stored connections.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only connections in this state: active, needs_reauth or revoked.
        #[arg(long)]
        status: Option<ConnectionStatus>,
        /// Only connections in this workspace.
        #[arg(long)]
        workspace_id: Option<String>,
        /// Only connections started with this ref.
        #[arg(long = "ref")]
        reference: Option<String>,
    },
    /// One connection's metadata and its events.
    Show {
        /// The connection's bot id, as `connections list` shows it.
        bot_id: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Refresh a connection's token pair now (the tokens are not printed).
    Refresh {
        /// The connection's bot id, as `connections list` shows it.
        bot_id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ask Notion whether a connection still works; an inactive one becomes revoked.
    Check {
        /// The connection's bot id, as `connections list` shows it.
        bot_id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a connection at Notion and forget its tokens.
    Revoke {
        /// The connection's bot id, as `connections list` shows it.
        bot_id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeysCommand {
    /// Make a key for the API; it is printed once and only its digest is kept.
    Create {
        /// What the key is for, e.g. "billing-service".
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List keys (never the secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (the part after `noh_`, before the next `_`).
    Revoke {
        /// The key's id: the part after `noh_`, before the next `_` (as `api-keys list` shows).
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only deliveries in this state: pending, delivered or dead.
        #[arg(long)]
        status: Option<DeliveryStatus>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue a delivery again (by id), or every dead one (--dead).
    Redeliver {
        /// The delivery's id, from `deliveries list`.
        id: Option<i64>,
        /// Every dead-lettered delivery.
        #[arg(long, conflicts_with = "id")]
        dead: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConnectLinkArgs {
    /// Your own id for the user, stored with the connection.
    #[arg(long = "ref")]
    pub(crate) reference: Option<String>,
    /// Where to send the browser afterwards (one of connect.return_to_origins).
    #[arg(long)]
    pub(crate) return_to: Option<String>,
    /// How long the link works, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub(crate) ttl: u64,
    #[command(flatten)]
    pub(crate) config: ConfigArg,
}

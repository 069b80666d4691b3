//! `mock-notion`: the emulator alone, for testing a deployment or another client against it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use mock_notion::{
    ContentFile, Emulator, EmulatorConfig, ErrorShape, FaultSpec, RateLimit, RateLimitScope,
    ReauthMode, Revocation, Settings,
};
use serde::Deserialize;

use super::shutdown_signal;
use crate::cli::{MockErrorShape, MockNotionArgs, MockRateLimitScope, MockReauth, MockRevocation};

/// The emulator's file: who the integration is and where it may redirect, and any of the
/// emulator's [`Settings`].
#[derive(Debug, Default, Deserialize)]
struct MockFile {
    client_id: Option<String>,
    /// Shown on the consent page.
    integration_name: Option<String>,
    client_secret: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    bench: bool,
    /// Relative to the file.
    content_file: Option<PathBuf>,
    /// Armed from the start, each naming its endpoint.
    #[serde(default)]
    faults: Vec<FaultSpec>,
}

/// The keys [`MockFile`] holds besides the settings.
const IDENTITY_KEYS: [&str; 7] = [
    "client_id",
    "client_secret",
    "redirect_uris",
    "bench",
    "content_file",
    "faults",
    "integration_name",
];

pub(super) async fn mock_notion(args: MockNotionArgs) -> anyhow::Result<()> {
    let (file, file_settings) = match &args.config {
        Some(path) => read_file(path)?,
        None => (MockFile::default(), Settings::default()),
    };
    let mut redirect_uris = file.redirect_uris;
    redirect_uris.extend(args.redirect_uris.iter().cloned());
    let (Some(client_id), Some(client_secret)) = (
        args.client_id.clone().or(file.client_id),
        args.client_secret.clone().or(file.client_secret),
    ) else {
        bail!(
            "the emulator needs the client id and secret it should accept: pass --client-id and --client-secret (or MOCK_NOTION_CLIENT_SECRET), or put client_id and client_secret in --config"
        );
    };
    if redirect_uris.is_empty() {
        bail!(
            "register at least one redirect URI: --redirect-uri http://localhost:8080/callback (repeatable), or redirect_uris in --config"
        );
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri)?;
    }
    let bench = args.bench || file.bench;
    let content_file = args.content.clone().or_else(|| {
        let base = args.config.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
        file.content_file.map(|f| base.join(f))
    });
    let content = content_file.as_deref().map(read_content).transpose()?;
    let integration_name = args.integration_name.clone().or(file.integration_name);
    if let Some(name) = &integration_name
        && (name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control))
    {
        bail!("the integration name must be 1 to 100 characters, without line breaks");
    }
    let mut config = EmulatorConfig {
        client_id,
        client_secret,
        integration_name,
        redirect_uris,
        bench,
        content,
        ..EmulatorConfig::default()
    };
    let settings = flag_settings(&args, file_settings.rate_limit).or(file_settings);
    settings.apply_to(&mut config).map_err(|problem| anyhow::anyhow!("{problem}"))?;
    let mut faults = file.faults;
    for flag in &args.faults {
        faults.push(parse_fault(flag)?);
    }
    let emulator = Emulator::new(config);
    for fault in &faults {
        let endpoint = fault.endpoint.as_deref().unwrap_or_default();
        emulator
            .arm(endpoint, fault)
            .map_err(|problem| anyhow::anyhow!("the fault for `{endpoint}`: {problem}"))?;
    }
    let running = emulator
        .spawn_on(&args.bind.to_string())
        .await
        .with_context(|| format!("cannot listen on {} (pick another with --bind)", args.bind))?;
    let base = running.base_url();
    out!("Notion emulator listening on {base}");
    if bench {
        out!("Bench mode: any code is exchanged, each as its own install; nothing is recorded");
    }
    out!("Point the server at it with: NOH_NOTION__API_BASE_URL={base}");
    out!("Settings, faults and received requests: {base}/_mock/settings (see the README)");
    shutdown_signal().await;
    Ok(())
}

/// Notion takes plain http only for localhost (§1.1): a URI it would refuse is refused here, so
/// that what works against the emulator also registers in the portal.
fn check_redirect_uri(uri: &str) -> anyhow::Result<()> {
    let parsed =
        url::Url::parse(uri).with_context(|| format!("the redirect URI `{uri}` is not a URL"))?;
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some("localhost")) => Ok(()),
        ("http", Some(host)) => bail!(
            "the redirect URI `{uri}` is plain http at {host}: Notion accepts http only for localhost (use http://localhost:… or https)"
        ),
        _ => bail!("the redirect URI `{uri}` must be an https URL (or http://localhost…)"),
    }
}

/// The settings the flags give; unset flags leave the file's (or the default). The rate-limit
/// flags change the file's `rate_limit` field by field.
fn flag_settings(args: &MockNotionArgs, file_limit: Option<RateLimit>) -> Settings {
    let any_limit_flag = args.rate_limit.is_some()
        || args.rate_limit_burst.is_some()
        || args.rate_limit_per.is_some();
    let base = file_limit.unwrap_or(RateLimit {
        requests_per_second: 0,
        burst: 10,
        per: RateLimitScope::Token,
    });
    let rate_limit = any_limit_flag.then(|| RateLimit {
        requests_per_second: args.rate_limit.unwrap_or(base.requests_per_second),
        burst: args.rate_limit_burst.unwrap_or(base.burst),
        per: match args.rate_limit_per {
            None => base.per,
            Some(MockRateLimitScope::Token) => RateLimitScope::Token,
            Some(MockRateLimitScope::Workspace) => RateLimitScope::Workspace,
            Some(MockRateLimitScope::Integration) => RateLimitScope::Integration,
        },
    });
    Settings {
        auto_approve: args.auto_approve.then_some(true),
        error_shape: args.error_shape.map(|shape| match shape {
            MockErrorShape::Oauth => ErrorShape::OAuth,
            MockErrorShape::Notion => ErrorShape::Notion,
        }),
        reauth: args.reauth.map(|reauth| match reauth {
            MockReauth::FreshPair => ReauthMode::FreshPair,
            MockReauth::SameToken => ReauthMode::SameToken,
        }),
        revocation: args.revocation.map(|revocation| match revocation {
            MockRevocation::WholePair => Revocation::WholePair,
            MockRevocation::OnlyThatToken => Revocation::OnlyThatToken,
        }),
        code_ttl_seconds: args.code_ttl_seconds,
        old_token_grace_seconds: args.old_token_grace_seconds,
        access_token_ttl_seconds: args.access_token_ttl_seconds,
        echo_state_on_deny: args.empty_state_on_deny.then_some(false),
        workspaces: (!args.workspaces.is_empty()).then(|| args.workspaces.clone()),
        rate_limit,
        require_owner: args.require_owner.then_some(true),
    }
}

/// `--fault ENDPOINT=KIND[,key=value…]`.
fn parse_fault(flag: &str) -> anyhow::Result<FaultSpec> {
    let usage = "write --fault ENDPOINT=KIND[,key=value…], e.g. token=error,status=503,times=1";
    let Some((endpoint, rest)) = flag.split_once('=') else { bail!("`{flag}`: {usage}") };
    let mut parts = rest.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut object = serde_json::Map::new();
    object.insert("endpoint".into(), endpoint.trim().into());
    object.insert("kind".into(), kind.trim().into());
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            bail!("`{part}` in `{flag}`: {usage}")
        };
        let value = match value.trim().parse::<u64>() {
            Ok(number) => serde_json::Value::from(number),
            Err(_) => serde_json::Value::from(value.trim()),
        };
        object.insert(key.trim().to_owned(), value);
    }
    serde_json::from_value(object.into()).with_context(|| format!("`{flag}`: {usage}"))
}

fn read_content(path: &Path) -> anyhow::Result<ContentFile> {
    let content: ContentFile =
        Figment::new().merge(Toml::file_exact(path)).extract().with_context(|| {
            format!(
                "cannot read the content file {} ([[workspaces]] with name, pages, databases)",
                path.display()
            )
        })?;
    let file = path.display();
    for (index, workspace) in content.workspaces.iter().enumerate() {
        let name = &workspace.name;
        if name.trim().is_empty() || content.workspaces[..index].iter().any(|w| w.name == *name) {
            bail!(
                "{file}: every workspace needs a name of its own (`{name}` is empty or repeated)"
            );
        }
        let mut seen: Vec<String> = Vec::new();
        for title in workspace.pages.iter().chain(&workspace.databases) {
            // A test picks pages by title (mock_pages=A,B): each must be pickable, and one.
            let folded = title.to_lowercase();
            if title.trim() != title || title.is_empty() || title.contains(',') {
                bail!(
                    "{file}: `{title}` in {name}: titles are non-empty, without commas or spaces around them"
                );
            }
            if folded == "all" || folded == "none" || seen.contains(&folded) {
                bail!(
                    "{file}: `{title}` in {name}: titles are unique (ignoring case) and not `all` or `none`, the words mock_pages reserves"
                );
            }
            seen.push(folded);
        }
    }
    Ok(content)
}

fn read_file(path: &Path) -> anyhow::Result<(MockFile, Settings)> {
    let read = || format!("cannot read the emulator configuration {}", path.display());
    let table: serde_json::Map<String, serde_json::Value> =
        Figment::new().merge(Toml::file_exact(path)).extract().with_context(read)?;
    let unknown: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|key| !IDENTITY_KEYS.contains(key) && !Settings::KEYS.contains(key))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "{}: unknown {} {}; the file takes {} and {}",
            path.display(),
            crate::config::plural(unknown.len(), "key"),
            unknown.join(", "),
            IDENTITY_KEYS.join(", "),
            Settings::KEYS.join(", ")
        );
    }
    let (identity, settings): (serde_json::Map<_, _>, serde_json::Map<_, _>) =
        table.into_iter().partition(|(key, _)| IDENTITY_KEYS.contains(&key.as_str()));
    let file: MockFile = serde_json::from_value(identity.into()).with_context(read)?;
    let settings: Settings = serde_json::from_value(settings.into()).with_context(read)?;
    Ok((file, settings))
}

//! Checks of single values: URLs, paths, versions, and secrets given inline or in a file.

use std::net::IpAddr;
use std::path::Path;

use notion_oauth::DEFAULT_API_BASE_URL;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::problems::Problems;

/// Which database a `storage.url` names. Answered here, with the other checks of URLs, so that
/// validating the configuration does not reach up to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A SQLite file: one instance, or several processes on one machine.
    Sqlite,
    /// A PostgreSQL database: several instances.
    Postgres,
}

impl Backend {
    /// `sqlite:` or `postgres:`/`postgresql:` URLs; `None` for anything else.
    pub(crate) fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// `url` fit for a message: a password in it is replaced by `***` (a PostgreSQL URL may carry
/// one).
pub(crate) fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not a URL: nothing can be told apart from a password in it.
        Err(_) => "(the configured storage.url)".to_owned(),
    }
}

/// A relative SQLite path is relative to the configuration file, like every other path in it.
pub(crate) fn resolve_sqlite_url(url: &str, base_dir: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_owned();
    };
    if rest.starts_with('/') || rest.starts_with(":memory:") || base_dir == Path::new(".") {
        return url.to_owned();
    }
    format!("sqlite://{}", base_dir.join(rest).display())
}

/// Whether `url` names this machine: `localhost` or a loopback address.
pub(super) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `value` if it is within `range` (of `unit`s, if any).
pub(super) fn in_range(
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, String> {
    if range.contains(&value) {
        return Ok(value);
    }
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    Err(format!("must be between {} and {}{unit}", range.start(), range.end()))
}

/// Whether secrets may travel to `url`: https, or plain http to this machine.
pub(super) fn is_secure_or_loopback(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(url))
}

/// Notion accepts a plain-http redirect URI only for `localhost`; a loopback IP works only with
/// an emulator that is itself on this machine.
pub(super) fn check_public_url(text: &str, notion_is_local: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("`{text}` is not a URL ({e}); use e.g. https://notion.example.com"))?;
    let plain_http_ok = url.scheme() == "http"
        && (url.host_str() == Some("localhost") || (notion_is_local && is_loopback_host(&url)));
    if url.scheme() != "https" && !plain_http_ok {
        return Err(format!(
            "`{text}` must use https: Notion accepts plain http redirect URIs only for localhost (http://localhost:PORT)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("`{text}` must not carry a query, fragment or user name"));
    }
    Ok(url)
}

pub(super) fn check_api_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| {
        format!("`{text}` is not a URL ({e}); the default is {DEFAULT_API_BASE_URL}")
    })?;
    // The client secret travels in every token request: never in clear beyond this machine.
    if !is_secure_or_loopback(&url) {
        return Err(format!(
            "`{text}` must use https (plain http is allowed only for an emulator on localhost)"
        ));
    }
    Ok(url)
}

pub(super) fn check_base_path(text: &str) -> Result<String, String> {
    let trimmed = text.trim_end_matches('/');
    let valid = text.starts_with('/')
        && !text.contains("//")
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
    if !valid {
        return Err(format!(
            "`{text}` must be a path such as / or /notion (letters, digits, - . _ ~ and /)"
        ));
    }
    Ok(trimmed.to_owned())
}

pub(super) fn is_notion_version(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
}

/// What a secret must be: whether it is required (and how to make one), and its shortest length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Secret {
    /// `Some(how to make one)` when the secret is required.
    required: Option<&'static str>,
    min_chars: usize,
}

impl Secret {
    /// A secret the server cannot run without; `how` tells the operator where to get one.
    pub(crate) fn required(how: &'static str) -> Self {
        Self { required: Some(how), min_chars: 1 }
    }

    /// A secret that turns a feature on.
    pub(crate) fn optional() -> Self {
        Self { required: None, min_chars: 1 }
    }

    /// At least `min_chars` characters, so that it cannot be guessed.
    pub(crate) fn min_chars(self, min_chars: usize) -> Self {
        Self { min_chars, ..self }
    }
}

/// A secret given inline (`key`) or in a file (`key_file`), at most one of the two, trimmed,
/// checked against `rule`. `None` when it is absent or wrong; wrong (and absent but required)
/// is noted in `problems`, never quoting the value.
pub(crate) fn secret_from(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&Path>,
    base_dir: &Path,
    rule: Secret,
    problems: &mut Problems,
) -> Option<SecretString> {
    let file_key = format!("{key}_file");
    let how = rule.required.map(|how| format!("; {how}")).unwrap_or_default();
    let (value, from) = match (inline, file) {
        (Some(_), Some(_)) => {
            problems.add(key, format!("is set both inline and in {file_key}; keep one"));
            return None;
        }
        (Some(value), None) => (value.expose_secret().trim().to_owned(), key.to_owned()),
        (None, Some(path)) => {
            let path = base_dir.join(path);
            match std::fs::read_to_string(&path) {
                Ok(text) => (text.trim().to_owned(), file_key),
                Err(e) => {
                    problems.add(file_key, format!("cannot read {}: {e}", path.display()));
                    return None;
                }
            }
        }
        (None, None) => {
            if let Some(how) = rule.required {
                problems.add(key, format!("is required: {how}"));
            }
            return None;
        }
    };
    let length = value.chars().count();
    if length == 0 {
        problems.add(from, format!("is empty{how}"));
        return None;
    }
    if length < rule.min_chars {
        let min = rule.min_chars;
        problems
            .add(from, format!("must be at least {min} characters (e.g. `openssl rand -hex 32`)"));
        return None;
    }
    Some(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_never_shown() {
        let shown = redacted_url("postgres://app:s3cret@db.example.com/notion");
        assert_eq!(shown, "postgres://app:***@db.example.com/notion");
        assert_eq!(redacted_url("sqlite://notion.db"), "sqlite://notion.db");
        assert!(!redacted_url("postgres://app:s3cret@[bad").contains("s3cret"));
    }
}

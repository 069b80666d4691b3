//! `[connect]`: where the browser goes after the flow, and how links to `/connect` are trusted.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::{Origin, Url};

/// Longest `return_to`: it travels in the state, which has a size limit of its own.
pub const MAX_RETURN_TO_BYTES: usize = 1024;

/// Placeholders a redirect template may use; values are URL-encoded when filled in.
pub const PLACEHOLDERS: [&str; 4] = ["bot_id", "workspace_id", "ref", "outcome"];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectSettings {
    /// Instead of the success page: e.g. `https://app.example.com/notion/done?bot={bot_id}&ref={ref}`.
    pub success_redirect: Option<String>,
    /// Instead of the "access was not granted" page.
    pub denied_redirect: Option<String>,
    /// Origins `return_to` may point at, e.g. `["https://app.example.com"]`; none: `return_to` is refused.
    pub return_to_origins: Vec<String>,
    /// Refuse links that carry `ref` or `return_to` without a valid signature (or one-time link).
    pub require_signed_ref: bool,
    /// The secret your app signs connect links with.
    pub link_secret: Option<SecretString>,
    pub link_secret_file: Option<PathBuf>,
}

/// `[connect]`, checked.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    pub success_redirect: Option<String>,
    pub denied_redirect: Option<String>,
    pub return_to_origins: Vec<Origin>,
    pub require_signed_ref: bool,
    pub link_secret: Option<SecretString>,
}

/// Fills `{placeholder}`s with URL-encoded values; unknown ones are left as they are (validation
/// refuses them up front).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut filled = template.to_owned();
    for (name, value) in values {
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        filled = filled.replace(&format!("{{{name}}}"), &encoded);
    }
    filled
}

/// Whether `raw` may be a `return_to`: an absolute http(s) URL, without user info, at exactly
/// one of `allowed`. Backslashes, whitespace and control characters are refused before parsing,
/// because parsers (browsers' among them) read them in ways that move the host.
pub fn check_return_to(raw: &str, allowed: &[Origin]) -> Option<Url> {
    if raw.is_empty()
        || raw.len() > MAX_RETURN_TO_BYTES
        || raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none();
    (plain && allowed.contains(&url.origin())).then_some(url)
}

fn check_template(key: &str, template: &str, problems: &mut Vec<(String, String)>) {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + end];
        if !PLACEHOLDERS.contains(&name) {
            problems.push((
                key.into(),
                format!(
                    "`{{{name}}}` is not a placeholder; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            ));
        }
        rest = &rest[start + end + 1..];
    }
    let sample = |value: &str| Url::parse(&fill(template, &PLACEHOLDERS.map(|p| (p, value)))).ok();
    match (sample("x"), sample(".y")) {
        (Some(url), _)
            if !(url.scheme() == "https"
                || (url.scheme() == "http" && super::is_loopback_host(&url))) =>
        {
            problems.push((
                key.into(),
                format!(
                    "`{template}` must be an absolute https URL (plain http only for localhost)"
                ),
            ));
        }
        // Values come from links anyone can edit: they may not move the host.
        (Some(one), Some(other)) if one.origin() == other.origin() => {}
        (Some(_), _) => problems.push((
            key.into(),
            format!(
                "`{template}`: placeholders may appear in the path, query or fragment, not the host"
            ),
        )),
        (None, _) => problems.push((
            key.into(),
            format!("`{template}` must be an absolute https URL (plain http only for localhost)"),
        )),
    }
}

/// Checks `[connect]`, adding `(key, message)` problems.
pub fn validate(
    settings: &ConnectSettings,
    base_dir: &Path,
    problems: &mut Vec<(String, String)>,
) -> Connect {
    for (key, template) in [
        ("connect.success_redirect", &settings.success_redirect),
        ("connect.denied_redirect", &settings.denied_redirect),
    ] {
        if let Some(template) = template {
            check_template(key, template, problems);
        }
    }
    let mut origins = Vec::new();
    for (index, origin) in settings.return_to_origins.iter().enumerate() {
        let key = format!("connect.return_to_origins[{index}]");
        match Url::parse(origin) {
            Ok(url)
                if (url.scheme() == "https"
                    || (url.scheme() == "http" && super::is_loopback_host(&url)))
                    && url.username().is_empty()
                    && url.path() == "/"
                    && url.query().is_none() =>
            {
                origins.push(url.origin());
            }
            _ => problems.push((
                key,
                format!("`{origin}` must be an origin such as https://app.example.com (no path)"),
            )),
        }
    }
    let link_secret = match (&settings.link_secret, &settings.link_secret_file) {
        (Some(_), Some(_)) => {
            problems.push((
                "connect.link_secret".into(),
                "is set both inline and in link_secret_file; keep one".into(),
            ));
            None
        }
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(path)) => match std::fs::read_to_string(base_dir.join(path)) {
            Ok(text) => Some(SecretString::from(text.trim().to_owned())),
            Err(error) => {
                problems.push((
                    "connect.link_secret_file".into(),
                    format!("cannot read {}: {error}", path.display()),
                ));
                None
            }
        },
        (None, None) => None,
    };
    if link_secret.as_ref().is_some_and(|s| s.expose_secret().len() < 32) {
        problems.push((
            "connect.link_secret".into(),
            "must be at least 32 characters: `openssl rand -hex 32`".into(),
        ));
    }
    Connect {
        success_redirect: settings.success_redirect.clone(),
        denied_redirect: settings.denied_redirect.clone(),
        return_to_origins: origins,
        require_signed_ref: settings.require_signed_ref,
        link_secret,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_classic_open_redirect_bypasses_are_refused() {
        let allowed = [Url::parse("https://app.example.com").unwrap().origin()];
        for bypass in [
            "//evil.com",
            "/\\evil.com",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://app.example.com:443@evil.com/",
            "https://evil.com\\@app.example.com/",
            "https:/\\evil.com",
            "https://app.example.com%2F@evil.com/",
            "https://evil.com#@app.example.com",
            "https://evil.com?https://app.example.com",
            "javascript:alert(1)//https://app.example.com",
            "data:text/html,https://app.example.com",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://app.example.com./",
            "https://\u{0430}pp.example.com/",
            " https://app.example.com/",
            "https://app.example.com/\tpath",
            "/dashboard",
            "",
        ] {
            assert!(check_return_to(bypass, &allowed).is_none(), "{bypass} was allowed");
        }
        for fine in [
            "https://app.example.com/",
            "https://app.example.com/notion/done?x=1",
            "HTTPS://APP.EXAMPLE.COM/ok",
        ] {
            assert!(check_return_to(fine, &allowed).is_some(), "{fine} was refused");
        }
        assert!(
            check_return_to("https://app.example.com/", &[]).is_none(),
            "nothing is allowed without origins"
        );
    }

    #[test]
    fn a_placeholder_may_not_move_the_host() {
        let mut problems = Vec::new();
        let settings = ConnectSettings {
            success_redirect: Some("https://app.example.com{ref}/done".into()),
            denied_redirect: Some("https://{ref}/x".into()),
            ..ConnectSettings::default()
        };
        validate(&settings, Path::new("."), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let fine = ConnectSettings {
            success_redirect: Some("https://app.example.com/{ref}?b={bot_id}#{outcome}".into()),
            ..ConnectSettings::default()
        };
        let mut problems = Vec::new();
        validate(&fine, Path::new("."), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn templates_are_filled_url_encoded() {
        let filled = fill(
            "https://a.example.com/done?bot={bot_id}&ref={ref}",
            &[("bot_id", "b-1"), ("ref", "a&b=c d")],
        );
        assert_eq!(filled, "https://a.example.com/done?bot=b-1&ref=a%26b%3Dc+d");
    }
}

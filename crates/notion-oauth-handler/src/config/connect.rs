//! `[connect]`: where the browser goes after the flow, and how links to `/connect` are trusted.

use std::path::Path;

use secrecy::SecretString;
use url::{Origin, Url};

use super::checks::{Secret, is_secure_or_loopback, secret_from};
use super::problems::Problems;
use super::settings::ConnectSettings;

/// Longest `return_to`: it travels in the state, which has a size limit of its own.
pub(crate) const MAX_RETURN_TO_BYTES: usize = 1024;

/// Placeholders a redirect template may use; values are URL-encoded when filled in.
pub(crate) const PLACEHOLDERS: [&str; 5] = ["bot_id", "workspace_id", "ref", "outcome", "reloaded"];

/// `[connect]`, checked.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// Where the browser goes after connecting, instead of the success page.
    pub success_redirect: Option<String>,
    /// Where the browser goes after cancelling, instead of the denied page.
    pub denied_redirect: Option<String>,
    /// Origins `return_to` may point at.
    pub return_to_origins: Vec<Origin>,
    /// Whether a `ref` or `return_to` needs a signature (or a one-time link).
    pub require_signed_ref: bool,
    /// The secret connect links are signed with.
    pub link_secret: Option<SecretString>,
}

/// Fills `{placeholder}`s with URL-encoded values; unknown ones are left as they are (validation
/// refuses them up front).
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
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
pub(crate) fn check_return_to(raw: &str, allowed: &[Origin]) -> Option<Url> {
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

fn check_template(key: &str, template: &str, problems: &mut Problems) {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + end];
        if !PLACEHOLDERS.contains(&name) {
            problems.add(
                key,
                format!(
                    "`{{{name}}}` is not a placeholder; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            );
        }
        rest = &rest[start + end + 1..];
    }
    let sample = |value: &str| Url::parse(&fill(template, &PLACEHOLDERS.map(|p| (p, value)))).ok();
    let not_https =
        || format!("`{template}` must be an absolute https URL (plain http only for localhost)");
    match (sample("x"), sample(".y")) {
        (Some(url), _) if !is_secure_or_loopback(&url) => problems.add(key, not_https()),
        // Values come from links anyone can edit: they may not move the host.
        (Some(one), Some(other)) if one.origin() == other.origin() => {}
        (Some(_), _) => problems.add(
            key,
            format!(
                "`{template}`: placeholders may appear in the path, query or fragment, not the host"
            ),
        ),
        (None, _) => problems.add(key, not_https()),
    }
}

/// Checks `[connect]`.
pub(super) fn validate(
    settings: &ConnectSettings,
    base_dir: &Path,
    problems: &mut Problems,
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
        match Url::parse(origin) {
            Ok(url)
                if is_secure_or_loopback(&url)
                    && url.username().is_empty()
                    && url.path() == "/"
                    && url.query().is_none() =>
            {
                origins.push(url.origin());
            }
            _ => problems.add(
                format!("connect.return_to_origins[{index}]"),
                format!("`{origin}` must be an origin such as https://app.example.com (no path)"),
            ),
        }
    }
    let link_secret = secret_from(
        "connect.link_secret",
        settings.link_secret.as_ref(),
        settings.link_secret_file.as_deref(),
        base_dir,
        Secret::optional().min_chars(32),
        problems,
    );
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
        let problems_of = |settings: &ConnectSettings| {
            let mut problems = Problems::default();
            validate(settings, Path::new("."), &mut problems);
            problems.or_value(Some(())).err().map_or(0, |e| e.0.len())
        };
        let settings = ConnectSettings {
            success_redirect: Some("https://app.example.com{ref}/done".into()),
            denied_redirect: Some("https://{ref}/x".into()),
            ..ConnectSettings::default()
        };
        assert_eq!(problems_of(&settings), 2);
        let fine = ConnectSettings {
            success_redirect: Some("https://app.example.com/{ref}?b={bot_id}#{outcome}".into()),
            ..ConnectSettings::default()
        };
        assert_eq!(problems_of(&fine), 0);
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

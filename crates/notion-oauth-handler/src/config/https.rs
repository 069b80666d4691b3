//! `[tls]`, `[acme]` and `server.http_bind`: how the process answers HTTPS itself, if it does.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::checks::in_range;
use super::problems::Problems;
use super::settings::{AcmeSettings, ServerSettings, TlsSettings};

/// Let's Encrypt's directories, by the short names `acme.directory_url` accepts.
const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Where the certificate served over HTTPS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Files the operator keeps (and replaces; they are watched).
    Files(TlsFiles),
    /// An ACME authority, asked by this process.
    Acme(Box<Acme>),
}

impl Tls {
    /// The pair served: the operator's files, or the one the ACME cache keeps.
    pub fn files(&self) -> &TlsFiles {
        match self {
            Self::Files(files) => files,
            Self::Acme(acme) => &acme.files,
        }
    }
}

/// `[tls]`, with its paths resolved. What they hold is read when serving starts (and by
/// `check`), and again whenever they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert_file: PathBuf,
    /// The private key, PEM (may be `cert_file` itself).
    pub key_file: PathBuf,
    /// The host the certificate must be valid for: `server.public_url`'s.
    pub host: String,
}

/// `[acme]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// The names ordered, lower case; the public host is among them.
    pub domains: Vec<String>,
    /// `mailto:` URLs.
    pub contact: Vec<String>,
    /// The authority's RFC 8555 directory.
    pub directory_url: Url,
    /// The cache folder (see [`Acme::account_dir`] and [`Acme::files`]).
    pub cache_dir: PathBuf,
    /// How the authority checks that the domains are ours.
    pub challenge: Challenge,
    /// The only CA trusted for the authority's HTTPS, when set.
    pub ca_file: Option<PathBuf>,
    /// Renew this long before expiry (capped at a third of the certificate's lifetime).
    pub renew_before: Duration,
    /// The pair in the cache: one file holding the key and the chain, replaced whole, so that
    /// no reader ever sees a new certificate with the old key.
    pub files: TlsFiles,
}

impl Acme {
    /// The account's folder: one per authority, so staging and production keep their own.
    pub fn account_dir(&self) -> PathBuf {
        self.cache_dir.join(directory_folder(&self.directory_url))
    }

    /// Answers to pending challenges, for the other instances sharing the cache.
    pub fn shared_answers_dir(&self) -> PathBuf {
        self.cache_dir.join("challenges")
    }

    /// Held (flock) by the instance ordering a certificate.
    pub fn lock_file(&self) -> PathBuf {
        self.cache_dir.join("lock")
    }
}

/// The ACME challenge answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 8737: a special certificate on the HTTPS listener.
    TlsAlpn01,
    /// RFC 8555 §8.3: a file on the plain-HTTP listener.
    Http01,
}

/// `Some(None)` is TLS off; `None` a problem reported.
pub(super) fn validate(
    tls: &TlsSettings,
    acme: Option<&AcmeSettings>,
    server: &ServerSettings,
    base_dir: &Path,
    public_url: Option<&Url>,
    problems: &mut Problems,
) -> Option<(Option<Tls>, Option<SocketAddr>)> {
    let files_given = tls.cert_file.is_some() || tls.key_file.is_some();
    if files_given && acme.is_some() {
        problems.add(
            "acme",
            "cannot be used with [tls] cert_file/key_file: choose the files or ACME, not both",
        );
        return None;
    }
    let http_bind = http_bind(server, files_given || acme.is_some(), problems)?;
    if !files_given && acme.is_none() {
        return Some((None, http_bind));
    }
    // Cookies, HSTS and the redirect URI all follow the public address.
    let public_url = public_url?;
    if public_url.scheme() != "https" {
        let section = if acme.is_some() { "[acme]" } else { "[tls]" };
        problems.add(
            "server.public_url",
            format!(
                "`{public_url}` must be https when the server answers HTTPS itself ({section})"
            ),
        );
        return None;
    }
    // An IPv6 host is bracketed in a URL, not in a certificate.
    let host = public_url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let tls = match acme {
        Some(acme) => Tls::Acme(Box::new(self::acme(acme, host, http_bind, base_dir, problems)?)),
        None => Tls::Files(files(tls, host, base_dir, problems)?),
    };
    Some((Some(tls), http_bind))
}

fn http_bind(
    server: &ServerSettings,
    tls_on: bool,
    problems: &mut Problems,
) -> Option<Option<SocketAddr>> {
    let Some(text) = server.http_bind.as_deref() else { return Some(None) };
    let parsed = text
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not an address such as 0.0.0.0:80"));
    let address = problems.check("server.http_bind", parsed)?;
    if !tls_on {
        problems.add(
            "server.http_bind",
            "redirects plain HTTP to https, which this server only answers with [tls] or [acme]: \
             add one, or remove server.http_bind",
        );
        return None;
    }
    let taken = [Some(server.bind.as_str()), server.metrics_bind.as_deref()];
    let clash = taken.into_iter().flatten().filter_map(|t| t.parse::<SocketAddr>().ok());
    if clash.into_iter().any(|other| other.port() == address.port()) {
        problems.add(
            "server.http_bind",
            "must be another port than server.bind and server.metrics_bind (usually 80)",
        );
        return None;
    }
    Some(Some(address))
}

fn files(
    settings: &TlsSettings,
    host: String,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<TlsFiles> {
    let (cert_file, key_file) = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => (base_dir.join(cert), base_dir.join(key)),
        (_, None) => {
            problems.add(
                "tls.key_file",
                "is required with tls.cert_file: the certificate's private key (PEM)",
            );
            return None;
        }
        (None, Some(_)) => {
            problems
                .add("tls.cert_file", "is required with tls.key_file: the certificate chain (PEM)");
            return None;
        }
    };
    let mut readable = true;
    for (key, path) in [("tls.cert_file", &cert_file), ("tls.key_file", &key_file)] {
        if let Err(error) = std::fs::File::open(path) {
            problems.add(key, format!("cannot read {} ({error})", path.display()));
            readable = false;
        }
    }
    readable.then_some(TlsFiles { cert_file, key_file, host })
}

fn acme(
    settings: &AcmeSettings,
    host: String,
    http_bind: Option<SocketAddr>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Acme> {
    let domains = domains(&settings.domains, &host, problems);
    let contact = match settings.contact.as_deref().map(str::trim) {
        None | Some("") => Some(Vec::new()),
        Some(email) => problems.check("acme.contact", mailto(email).map(|m| vec![m])),
    };
    let directory_url =
        problems.check("acme.directory_url", directory_url(&settings.directory_url));
    let challenge = match settings.challenge.as_str() {
        "tls-alpn-01" => Some(Challenge::TlsAlpn01),
        "http-01" if http_bind.is_none() => {
            problems.add(
                "acme.challenge",
                "http-01 is answered on the plain-HTTP listener: set server.http_bind \
                 (e.g. 0.0.0.0:80), or use tls-alpn-01",
            );
            None
        }
        "http-01" => Some(Challenge::Http01),
        other => {
            problems.add(
                "acme.challenge",
                format!(
                    "`{other}` is not a challenge this server answers: use tls-alpn-01 or http-01"
                ),
            );
            None
        }
    };
    let ca_file = settings.ca_file.as_ref().map(|file| base_dir.join(file));
    let ca_readable = match &ca_file {
        Some(path) => problems.check("acme.ca_file", ca_certificates(path)).is_some(),
        None => true,
    };
    let renew_before_days = problems
        .check("acme.renew_before_days", in_range(settings.renew_before_days, 1..=60, "days"));
    let cache_dir = base_dir.join(&settings.cache_dir);
    let (domains, contact, directory_url, challenge, renew_before_days) =
        (domains?, contact?, directory_url?, challenge?, renew_before_days?);
    if !ca_readable {
        return None;
    }
    let pair = cache_dir
        .join(directory_folder(&directory_url))
        .join(domains_folder(&domains))
        .join("certificate.pem");
    Some(Acme {
        files: TlsFiles { cert_file: pair.clone(), key_file: pair, host },
        domains,
        contact,
        directory_url,
        cache_dir,
        challenge,
        ca_file,
        renew_before: Duration::from_secs(renew_before_days * 86_400),
    })
}

fn domains(given: &[String], host: &str, problems: &mut Problems) -> Option<Vec<String>> {
    if host.parse::<IpAddr>().is_ok() {
        problems.add(
            "server.public_url",
            format!(
                "`{host}` is an IP address: ACME certificates are for domain names, so give \
                 server.public_url a name that points here, or use [tls] with your own files"
            ),
        );
        return None;
    }
    let mut domains: Vec<String> = Vec::new();
    let mut good = true;
    for (index, domain) in given.iter().enumerate() {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        match check_domain(&domain) {
            Ok(()) if !domains.contains(&domain) => domains.push(domain),
            Ok(()) => {}
            Err(message) => {
                problems.add(format!("acme.domains[{index}]"), message);
                good = false;
            }
        }
    }
    let host = host.to_ascii_lowercase();
    if domains.is_empty() {
        domains.push(host);
    } else if good && !domains.contains(&host) {
        problems.add(
            "acme.domains",
            format!(
                "does not list `{host}`, the host of server.public_url, which browsers reach: \
                 add it (or leave acme.domains out to get a certificate for it alone)"
            ),
        );
        return None;
    }
    good.then_some(domains)
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.starts_with("*.") {
        return Err(format!(
            "`{domain}` is a wildcard, which needs a DNS challenge this server does not answer: \
             list the names themselves"
        ));
    }
    if domain.parse::<IpAddr>().is_ok() {
        return Err(format!("`{domain}` is an IP address: ACME certificates here are for names"));
    }
    let labels_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok {
        Ok(())
    } else {
        Err(format!(
            "`{domain}` is not a domain name such as notion.example.com (internationalized \
             names are written in their xn-- form)"
        ))
    }
}

fn mailto(email: &str) -> Result<String, String> {
    let email = email.strip_prefix("mailto:").unwrap_or(email);
    let valid = email.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !email.contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '>')
    });
    if valid {
        Ok(format!("mailto:{email}"))
    } else {
        Err(format!("`{email}` is not an email address such as ops@example.com"))
    }
}

fn directory_url(text: &str) -> Result<Url, String> {
    let text = match text.trim() {
        "letsencrypt" => LETS_ENCRYPT,
        "letsencrypt-staging" => LETS_ENCRYPT_STAGING,
        other => other,
    };
    let url = Url::parse(text).map_err(|_| {
        format!(
            "`{text}` is not a URL: use letsencrypt, letsencrypt-staging, or an ACME \
             directory URL such as {LETS_ENCRYPT}"
        )
    })?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(format!("`{text}` must be an https URL (RFC 8555 servers speak only https)"));
    }
    Ok(url)
}

/// The certificates in a PEM file, or why there are none.
fn ca_certificates(path: &Path) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|error| format!("cannot read {} ({error})", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(())
}

/// A folder name for an authority: its host (which tells staging from production at a glance)
/// and a digest of the whole URL, so that two directories on one host (a CA's products, a
/// private CA's provisioners) keep their own accounts.
fn directory_folder(url: &Url) -> String {
    use sha2::{Digest, Sha256};
    let host: String = url
        .host_str()
        .unwrap_or("acme")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    let digest = Sha256::digest(url.as_str().as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{host}+{short}")
}

/// A folder name for a list of domains: the first, and a short digest when there are more.
fn domains_folder(domains: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let first = domains.first().map_or("certificate", String::as_str);
    if domains.len() == 1 {
        return first.to_owned();
    }
    let mut sorted = domains.to_vec();
    sorted.sort();
    let digest = Sha256::digest(sorted.join(",").as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{first}+{short}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn domains_default_to_the_public_host_and_must_cover_it() {
        let mut problems = Problems::default();
        assert_eq!(
            domains(&[], "Notion.Example.com", &mut problems),
            Some(vec!["notion.example.com".into()])
        );
        let other = vec!["other.example.com".to_owned()];
        assert_eq!(domains(&other, "notion.example.com", &mut problems), None);
        let both = vec!["www.example.com".to_owned(), "Notion.example.com.".to_owned()];
        assert_eq!(
            domains(&both, "notion.example.com", &mut problems),
            Some(vec!["www.example.com".into(), "notion.example.com".into()])
        );
        assert_eq!(domains(&[], "127.0.0.1", &mut problems), None);
        for bad in ["*.example.com", "exa mple.com", "-a.example.com", "a..b", "1.2.3.4", ""] {
            let mut problems = Problems::default();
            assert_eq!(domains(&[bad.to_owned()], "x.example.com", &mut problems), None, "{bad}");
        }
    }

    #[test]
    fn directory_names_and_folders() {
        assert_eq!(directory_url("letsencrypt").unwrap().as_str(), LETS_ENCRYPT);
        assert_eq!(directory_url("letsencrypt-staging").unwrap().as_str(), LETS_ENCRYPT_STAGING);
        assert!(directory_url("http://127.0.0.1:14000/dir").is_err());
        assert!(directory_url("lets encrypt").is_err());
        assert!(directory_folder(&url("https://127.0.0.1:14000/dir")).starts_with("127.0.0.1+"));
        assert!(directory_folder(&url(LETS_ENCRYPT)).starts_with("acme-v02.api.letsencrypt.org+"));
        let (one, other) = ("https://ca.example/v2/DV", "https://ca.example/v2/OV");
        assert_ne!(directory_folder(&url(one)), directory_folder(&url(other)));
        let two = ["b.example.com".to_owned(), "a.example.com".to_owned()];
        let swapped = ["a.example.com".to_owned(), "b.example.com".to_owned()];
        assert!(domains_folder(&two).starts_with("b.example.com+"));
        assert_eq!(domains_folder(&two)[14..], domains_folder(&swapped)[14..]);
    }

    #[test]
    fn contacts_are_email_addresses() {
        assert_eq!(mailto("ops@example.com").unwrap(), "mailto:ops@example.com");
        assert_eq!(mailto("mailto:ops@example.com").unwrap(), "mailto:ops@example.com");
        for bad in ["ops", "@example.com", "ops@localhost", "a@b.c, d@e.f", "a b@c.d"] {
            assert!(mailto(bad).is_err(), "{bad}");
        }
    }
}

//! `[acme]` against Pebble, the ACME test server (Debian's `pebble` package), with real
//! validation: Pebble resolves the test domain through `pebble-challtestsrv`'s DNS (every name
//! is 127.0.0.1) and connects back to the server's own listeners for TLS-ALPN-01 and HTTP-01.
//! Without Pebble the tests say so and pass on a laptop; under `CI=true` they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use notion_oauth_handler::config::AcmeSettings;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, TestOptions, eventually, http, spawn_app_with};

const DOMAIN: &str = "notion.acme.test";

/// Pebble and its DNS server, stopped when dropped.
struct Pebble {
    _children: Vec<tokio::process::Child>,
    dir: tempfile::TempDir,
    directory_url: String,
    /// The CA of Pebble's own HTTPS listener (not the one it issues from).
    listener_ca: PathBuf,
    management: u16,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Pebble {
    /// Pebble validating on `tls_port` (TLS-ALPN-01) and `http_port` (HTTP-01), issuing
    /// certificates valid for `validity` seconds; `None` (the test skips) without Pebble.
    async fn start(tls_port: u16, http_port: u16, validity: u64) -> Option<Self> {
        if !installed("pebble") || !installed("pebble-challtestsrv") {
            crate::helpers::skip("no pebble or pebble-challtestsrv (apt-get install pebble)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // Pebble's own listener needs a certificate; the Debian package ships none.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let listener_ca = dir.path().join("listener-ca.pem");
        std::fs::write(&listener_ca, ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let (acme, management, dns, dns_management) =
            (free_tcp_port(), free_tcp_port(), free_udp_port(), free_tcp_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns_server = tokio::process::Command::new("pebble-challtestsrv")
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-defaultIPv4", "127.0.0.1"])
            .args(["-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pebble = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}"), "-strict=false"])
            // No random sleep before validating, no rejected nonces, no reused authorizations:
            // every order is validated for real, promptly.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pebble = Self {
            _children: vec![dns_server, pebble],
            directory_url: format!("https://127.0.0.1:{acme}/dir"),
            listener_ca,
            management,
            dir,
        };
        let client = pebble.client();
        eventually("Pebble answers its directory", Duration::from_secs(15), || async {
            let answer = client.get(&pebble.directory_url).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        Some(pebble)
    }

    /// A client that trusts Pebble's listener.
    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.listener_ca).unwrap();
        http().tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap()).build().unwrap()
    }

    /// The root Pebble issues from (made anew at each start).
    async fn root(&self) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        self.client().get(url).send().await.unwrap().text().await.unwrap()
    }

    fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("pebble.log"), read("pebble.err"))
    }

    /// Whether Pebble validated a challenge by connecting to us (not its always-valid mode).
    fn validated(&self) -> bool {
        let log = self.log();
        log.contains("set VALID by completed challenge") && !log.contains("always returns valid")
    }

    /// The `[acme]` settings for this Pebble, caching in `cache_dir`.
    fn settings(&self, cache_dir: &Path, challenge: &str) -> AcmeSettings {
        AcmeSettings {
            domains: vec![DOMAIN.into()],
            contact: Some("ops@example.com".into()),
            directory_url: self.directory_url.clone(),
            cache_dir: cache_dir.to_owned(),
            challenge: challenge.into(),
            ca_file: Some(self.listener_ca.clone()),
            ..AcmeSettings::default()
        }
    }
}

/// The certificate served for [`DOMAIN`] on `port` to a client trusting `root`, if a
/// handshake succeeds.
async fn served(port: u16, root: &str, alpn: &[&[u8]]) -> Option<CertificateDer<'static>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes()).ok()?).ok()?;
    let mut config =
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let stream = connector.connect(ServerName::try_from(DOMAIN).ok()?, tcp).await.ok()?;
    stream.get_ref().1.peer_certificates()?.first().cloned()
}

use rustls::pki_types::pem::PemObject;

async fn metric(app: &TestApp, name: &str) -> Option<String> {
    let text = http().build().unwrap().get(app.metrics_url.as_deref()?).send().await.ok()?;
    let text = text.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    Some(line.rsplit(' ').next()?.to_owned())
}

async fn acme_app(
    pebble: &Pebble,
    listener: TcpListener,
    cache_dir: &Path,
    challenge: &str,
    http_bind: Option<String>,
) -> TestApp {
    spawn_app_with(TestOptions {
        acme: Some((DOMAIN.into(), pebble.settings(cache_dir, challenge))),
        http_bind,
        listener: Some(listener),
        metrics: true,
        ..TestOptions::default()
    })
    .await
}

/// The certificate the app serves, once it serves one (the order takes a few seconds).
async fn first_certificate(pebble: &Pebble, port: u16, root: &str) -> CertificateDer<'static> {
    let within = Duration::from_secs(60);
    let got = tokio::time::timeout(within, async {
        loop {
            if let Some(certificate) = served(port, root, &[b"h2", b"http/1.1"]).await {
                return certificate;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    got.unwrap_or_else(|_| {
        panic!("no certificate within {within:?}; Pebble said:\n{}", pebble.log())
    })
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_first_start_obtains_a_certificate_by_tls_alpn_01_and_a_restart_reuses_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let Some(pebble) = Pebble::start(port, free_tcp_port(), 3600).await else { return };
    let cache = tempfile::tempdir().unwrap();
    let http_port = free_tcp_port();
    let app = acme_app(
        &pebble,
        listener,
        cache.path(),
        "tls-alpn-01",
        Some(format!("127.0.0.1:{http_port}")),
    )
    .await;
    let root = pebble.root().await;
    let first = first_certificate(&pebble, port, &root).await;
    // Validated for real; Pebble's HTTP-01 port has no listener, so by TLS-ALPN-01.
    assert!(pebble.validated(), "{}", pebble.log());

    // The cache: the account and the pair, readable by this user only.
    let pair: Vec<PathBuf> =
        walk(cache.path()).into_iter().filter(|p| p.ends_with("certificate.pem")).collect();
    assert_eq!(pair.len(), 1, "{pair:?}");
    let account: Vec<PathBuf> =
        walk(cache.path()).into_iter().filter(|p| p.ends_with("account.json")).collect();
    assert_eq!(account.len(), 1, "{account:?}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&pair[0]), 0o600);
        assert_eq!(mode(&account[0]), 0o600);
        assert_eq!(mode(cache.path()), 0o700);
    }
    let stored = std::fs::read_to_string(&pair[0]).unwrap();
    assert!(stored.contains("PRIVATE KEY") && stored.matches("BEGIN CERTIFICATE").count() >= 2);
    assert!(
        walk(&cache.path().join("challenges")).is_empty(),
        "answers are removed after the order"
    );

    // A whole flow over https, with a browser that trusts Pebble's root.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = http()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(root.as_bytes()).unwrap())
        .resolve(DOMAIN, ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .unwrap();
    assert_eq!(app.address, format!("https://{DOMAIN}:{port}"));
    let started = browser.get(format!("{}/connect", app.address)).send().await.unwrap();
    assert_eq!(started.status(), 302);
    let authorize = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    let done = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(done.headers()["strict-transport-security"], "max-age=31536000");
    assert!(done.text().await.unwrap().contains("data-outcome=\"created\""));

    // A client offering only acme-tls/1 with no order under way gets no certificate at all.
    assert!(served(port, &root, &[b"acme-tls/1"]).await.is_none());
    // Port 80's stand-in sends browsers to https, at the configured host whatever Host says.
    let plain = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirected = plain
        .get(format!("http://127.0.0.1:{http_port}/connect?ref=a"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), 308);
    assert_eq!(redirected.headers()["location"], format!("https://{DOMAIN}:{port}/connect?ref=a"));
    let unknown = plain
        .get(format!("http://127.0.0.1:{http_port}/.well-known/acme-challenge/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    assert_eq!(
        metric(&app, "noh_acme_orders_total{result=\"issued\"}").await.as_deref(),
        Some("1")
    );
    let expiry: i64 = metric(&app, "noh_tls_certificate_expiry_timestamp_seconds")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let renewal: i64 =
        metric(&app, "noh_acme_next_renewal_timestamp_seconds").await.unwrap().parse().unwrap();
    // A one-hour certificate: renewed at two thirds of its life.
    assert!(
        renewal < expiry && expiry - renewal > 1000 && expiry - renewal < 1300,
        "{renewal} {expiry}"
    );

    // A restart (Pebble still up) serves the cached certificate at once and orders nothing.
    let mut app = app;
    app.stop().await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let again = acme_app(&pebble, listener, cache.path(), "tls-alpn-01", None).await;
    let served_again =
        served(port, &root, &[b"http/1.1"]).await.expect("the cached pair is served");
    assert_eq!(served_again, first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(metric(&again, "noh_acme_orders_total{result=\"issued\"}").await, None);
}

#[tokio::test]
async fn http_01_on_the_plain_listener_and_a_short_certificate_is_renewed_without_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let http_port = free_tcp_port();
    // Thirty-second certificates: due for renewal ten seconds before they expire.
    let Some(pebble) = Pebble::start(free_tcp_port(), http_port, 30).await else { return };
    let cache = tempfile::tempdir().unwrap();
    let app = acme_app(
        &pebble,
        listener,
        cache.path(),
        "http-01",
        Some(format!("127.0.0.1:{http_port}")),
    )
    .await;
    let root = pebble.root().await;
    let first = first_certificate(&pebble, port, &root).await;
    // Validated for real; Pebble's TLS-ALPN-01 port has no listener, so by HTTP-01.
    assert!(pebble.validated(), "{}", pebble.log());
    // Not offered: only TLS-ALPN-01 needs it.
    assert!(served(port, &root, &[b"acme-tls/1"]).await.is_none());

    let renewed = eventually("a renewed certificate is served", Duration::from_secs(60), || {
        let root = root.clone();
        let first = first.clone();
        async move { served(port, &root, &[b"h2"]).await.filter(|now| *now != first) }
    })
    .await;
    assert_ne!(renewed, first);
    let issued = metric(&app, "noh_acme_orders_total{result=\"issued\"}").await.unwrap();
    assert!(issued.parse::<u32>().unwrap() >= 2, "{issued}");
    assert_eq!(metric(&app, "noh_acme_orders_total{result=\"failed\"}").await, None);
}

#[tokio::test]
async fn two_instances_sharing_the_cache_order_once_and_serve_the_same_certificate() {
    let one = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = one.local_addr().unwrap().port();
    let Some(pebble) = Pebble::start(port, free_tcp_port(), 3600).await else { return };
    let cache = tempfile::tempdir().unwrap();
    // The instance that orders listens elsewhere than where Pebble validates (the other
    // instance's port, as a load balancer may send the validator anywhere): its answers reach
    // Pebble only through the shared cache.
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = elsewhere.local_addr().unwrap().port();
    let ordering = acme_app(&pebble, elsewhere, cache.path(), "tls-alpn-01", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let validated = acme_app(&pebble, one, cache.path(), "tls-alpn-01", None).await;
    let root = pebble.root().await;
    let first = first_certificate(&pebble, port, &root).await;
    let second =
        eventually("the ordering instance serves the pair", Duration::from_secs(30), || {
            let root = root.clone();
            async move { served(other_port, &root, &[b"h2"]).await }
        })
        .await;
    assert_eq!(first, second);
    assert!(pebble.validated(), "{}", pebble.log());
    let issued = |app| async move { metric(app, "noh_acme_orders_total{result=\"issued\"}").await };
    assert_eq!(issued(&ordering).await.as_deref(), Some("1"));
    assert_eq!(issued(&validated).await, None, "the other instance waited for the lock");
    assert_eq!(pebble.log().matches("Issued certificate serial").count(), 1);
}

#[tokio::test]
async fn an_authority_that_cannot_be_reached_is_logged_and_retried_while_plain_http_still_redirects()
 {
    // No Pebble needed: nothing listens at the directory URL.
    let cache = tempfile::tempdir().unwrap();
    let http_port = free_tcp_port();
    let settings = AcmeSettings {
        directory_url: format!("https://127.0.0.1:{}/dir", free_tcp_port()),
        cache_dir: cache.path().to_owned(),
        ..AcmeSettings::default()
    };
    let app = spawn_app_with(TestOptions {
        acme: Some((DOMAIN.into(), settings)),
        http_bind: Some(format!("127.0.0.1:{http_port}")),
        metrics: true,
        ..TestOptions::default()
    })
    .await;
    eventually("the failed order is counted", Duration::from_secs(10), || async {
        (metric(&app, "noh_acme_orders_total{result=\"failed\"}").await.as_deref() == Some("1"))
            .then_some(())
    })
    .await;
    let plain = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirected = plain.get(format!("http://127.0.0.1:{http_port}/")).send().await.unwrap();
    assert_eq!(redirected.status(), 308);

    // The failure is counted in the cache: another instance sharing it (or a restart) waits
    // out the same backoff instead of failing again at once.
    let failures = walk(cache.path()).into_iter().find(|p| p.ends_with("failures")).unwrap();
    assert!(std::fs::read_to_string(&failures).unwrap().starts_with("1 "));
    let other = spawn_app_with(TestOptions {
        acme: Some((DOMAIN.into(), app.settings.acme.clone().unwrap())),
        metrics: true,
        ..TestOptions::default()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metric(&other, "noh_acme_orders_total{result=\"failed\"}").await, None);
    assert!(std::fs::read_to_string(&failures).unwrap().starts_with("1 "));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { walk(&path) } else { vec![path] }
        })
        .collect()
}

fn binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).kill_on_drop(true);
    command
}

/// `check` on a configuration whose `[acme]` and `[server]` end with `tail`.
async fn check(dir: &Path, public_url: &str, server: &str, tail: &str) -> (bool, String) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:8443\"\npublic_url = \"{public_url}\"\n{server}\n\
             [notion]\nclient_id = \"c\"\nclient_secret = \"s\"\napi_base_url = \"http://127.0.0.1:9\"\n\
             [storage]\nurl = \"sqlite://data.db\"\n[security]\nmaster_key = \"{}\"\n{tail}",
            crate::helpers::random_key()
        ),
    )
    .unwrap();
    let output = binary().arg("check").arg("--config").arg(&config).output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn check_accepts_acme_and_names_every_mistake_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Not init's placeholder host, which check refuses.
    let public = "https://oauth.acme-corp.dev";
    let (ok, text) = check(dir.path(), public, "", "[acme]\ncontact = \"ops@example.com\"\n").await;
    assert!(ok, "{text}");
    assert!(text.contains("HTTPS with a certificate from https://acme-v02.api.letsencrypt.org/directory for oauth.acme-corp.dev, validated by tls-alpn-01"), "{text}");
    assert!(text.contains("No certificate cached yet"), "{text}");
    assert!(text.contains("(made at the first start)"), "{text}");
    // Run as root it would leave folders the service's user cannot write: it makes none.
    assert!(!dir.path().join("acme").exists(), "check changed nothing");

    let tail = "[acme]\ndomains = [\"*.example.com\", \"www.example.com\"]\ncontact = \"ops\"\n\
                directory_url = \"http://acme.example/dir\"\nchallenge = \"dns-01\"\n\
                renew_before_days = 0\nca_file = \"missing.pem\"\n";
    let (ok, text) = check(dir.path(), public, "", tail).await;
    assert!(!ok, "{text}");
    for expected in [
        "acme.domains[0]: `*.example.com` is a wildcard",
        "acme.contact: `ops` is not an email address",
        "acme.directory_url: `http://acme.example/dir` must be an https URL",
        "acme.challenge: `dns-01` is not a challenge this server answers",
        "acme.renew_before_days: must be between 1 and 60 days",
        "acme.ca_file: cannot read",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }

    let (ok, text) =
        check(dir.path(), public, "", "[acme]\ndomains = [\"www.example.com\"]\n").await;
    assert!(!ok && text.contains("acme.domains: does not list `oauth.acme-corp.dev`"), "{text}");
    let (ok, text) = check(dir.path(), "https://127.0.0.1:8443", "", "[acme]\n").await;
    assert!(
        !ok && text.contains("is an IP address: ACME certificates are for domain names"),
        "{text}"
    );
    let (ok, text) = check(dir.path(), "http://localhost:8443", "", "[acme]\n").await;
    assert!(
        !ok && text.contains("must be https when the server answers HTTPS itself ([acme])"),
        "{text}"
    );
    let (ok, text) = check(dir.path(), public, "", "[acme]\nchallenge = \"http-01\"\n").await;
    assert!(
        !ok && text.contains(
            "acme.challenge: http-01 is answered on the plain-HTTP listener: set server.http_bind"
        ),
        "{text}"
    );
    let both = "[acme]\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";
    let (ok, text) = check(dir.path(), public, "", both).await;
    assert!(!ok && text.contains("acme: cannot be used with [tls]"), "{text}");
    let (ok, text) = check(dir.path(), public, "http_bind = \"0.0.0.0:80\"", "").await;
    assert!(!ok && text.contains("server.http_bind: redirects plain HTTP to https"), "{text}");
    let (ok, text) = check(dir.path(), public, "http_bind = \"0.0.0.0:8443\"", "[acme]\n").await;
    assert!(!ok && text.contains("server.http_bind: must be another port"), "{text}");

    // A cache folder that cannot be made: said at check, not at the first renewal.
    std::fs::write(dir.path().join("taken"), "a file").unwrap();
    let (ok, text) = check(dir.path(), public, "", "[acme]\ncache_dir = \"taken/acme\"\n").await;
    assert!(!ok && text.contains("acme.cache_dir: cannot create"), "{text}");
}

//! HTTPS served by the process: a flow over it with a test CA, HTTP/2 and HTTP/1.1 by ALPN, a
//! certificate replaced on disk served without a restart, and a broken replacement ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, TestOptions, eventually, http, spawn_app_with};

/// A certificate authority for one test, and the certificates it signs for `localhost`.
struct TestCa {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            pem: certificate.pem(),
            der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A new leaf for localhost, written to `dir` as cert.pem (with the CA after it) and
    /// key.pem; returns its DER.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        self.issue_for(dir, "localhost")
    }

    fn issue_for(&self, dir: &Path, name: &str) -> CertificateDer<'static> {
        self.issue_until(dir, name, 2035)
    }

    /// Valid from 2000 until the first of January of `year`.
    fn issue_until(&self, dir: &Path, name: &str, year: i32) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        write_atomically(&dir.join("cert.pem"), &format!("{}{}", leaf.pem(), self.pem));
        write_atomically(&dir.join("key.pem"), &key.serialize_pem());
        leaf.der().clone()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

/// As a deploy tool replaces a file: written beside it, then renamed over it.
fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

async fn https_app(dir: &Path) -> TestApp {
    https_app_with(dir, TestOptions::default()).await
}

async fn https_app_with(dir: &Path, options: TestOptions) -> TestApp {
    let files: (PathBuf, PathBuf) = (dir.join("cert.pem"), dir.join("key.pem"));
    spawn_app_with(TestOptions { tls: Some(files), metrics: true, ..options }).await
}

/// `noh_tls_certificate_expiry_timestamp_seconds` as the app reports it.
async fn expiry_metric(app: &TestApp) -> String {
    let text = http().build().unwrap().get(app.metrics_url.as_deref().unwrap()).send().await;
    let text = text.unwrap().text().await.unwrap();
    let line =
        text.lines().find(|l| l.starts_with("noh_tls_certificate_expiry_timestamp_seconds "));
    line.unwrap_or_default().rsplit(' ').next().unwrap_or_default().to_owned()
}

/// Connects with `alpn`, and returns what the server chose and the certificate it presented.
async fn handshake(
    app: &TestApp,
    ca: &TestCa,
    alpn: &[&[u8]],
) -> (
    Option<Vec<u8>>,
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config =
        rustls::ClientConfig::builder().with_root_certificates(ca.roots()).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let presented = session.peer_certificates().unwrap()[0].clone();
    (alpn, presented, stream)
}

#[tokio::test]
async fn a_flow_runs_over_https_with_http2_or_http1_as_the_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let app = https_app(dir.path()).await;
    assert!(app.address.starts_with("https://localhost:"), "{}", app.address);

    // A browser that trusts the test CA runs a whole flow.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = http()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let started = browser.get(format!("{}/connect", app.address)).send().await.unwrap();
    assert_eq!(started.status(), 302);
    let cookie = started.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-noh_browser=") && cookie.contains("Secure"), "{cookie}");
    let authorize = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let back = app.decide(&authorize, "allow", "Ada Lovelace").await;
    assert!(back.as_str().starts_with("https://localhost:"), "{back}");
    let done = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(done.headers()["strict-transport-security"], "max-age=31536000");
    assert!(done.text().await.unwrap().contains("data-outcome=\"created\""));

    // HTTP/2 when the client offers it, HTTP/1.1 when that is all it speaks.
    let (alpn, _, _) = handshake(&app, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (alpn, _, mut stream) = handshake(&app, &ca, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(dir.path());
    let app = https_app(dir.path()).await;
    assert_eq!(handshake(&app, &ca, &[b"http/1.1"]).await.1, first);

    // 2035-01-01T00:00:00Z.
    assert_eq!(expiry_metric(&app).await, "2051222400");

    // Renewed: a new key and certificate, swapped in as deploy tools do.
    let second = ca.issue_until(dir.path(), "localhost", 2036);
    assert_ne!(first, second);
    eventually("the new certificate served", Duration::from_secs(10), || async {
        (handshake(&app, &ca, &[b"http/1.1"]).await.1 == second).then_some(())
    })
    .await;
    // 2036-01-01T00:00:00Z.
    assert_eq!(expiry_metric(&app).await, "2082758400");

    // A key that is not the certificate's, then a half-written certificate: neither is used.
    let stray = KeyPair::generate().unwrap();
    write_atomically(&dir.path().join("key.pem"), &stray.serialize_pem());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handshake(&app, &ca, &[b"http/1.1"]).await.1, second, "the mismatched pair");
    write_atomically(&dir.path().join("cert.pem"), "-----BEGIN CERTIFICATE-----\nMIIB");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handshake(&app, &ca, &[b"http/1.1"]).await.1, second, "the broken file");
    assert_eq!(
        http()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
            .build()
            .unwrap()
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

fn binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_notion-oauth-handler"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).kill_on_drop(true);
    command
}

/// A configuration serving https://localhost:`port` from `dir`'s cert.pem and key.pem.
fn tls_config(dir: &Path, port: u16, emulator: &str) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"https://localhost:{port}\"\n\
             [notion]\nclient_id = \"c\"\nclient_secret = \"s\"\napi_base_url = \"{emulator}\"\n\
             [storage]\nurl = \"sqlite://data.db\"\n[security]\nmaster_key = \"{}\"\n\
             [tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
            crate::helpers::random_key()
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn check_and_serve_refuse_a_pair_that_does_not_match_and_sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = tls_config(dir.path(), port, "http://127.0.0.1:9");
    let check = binary().arg("check").arg("--config").arg(&config).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("HTTPS with the certificate in"), "{stdout}");

    // A key that is not the certificate's: check and serve both say so and stop.
    let good_key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    write_atomically(&dir.path().join("key.pem"), &KeyPair::generate().unwrap().serialize_pem());
    for command in ["check", "serve"] {
        let output = binary().arg(command).arg("--config").arg(&config).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} accepted a mismatched pair");
        assert!(stderr.contains("is not the key of the certificate"), "{command}: {stderr}");
    }
    assert!(stdout.contains("it expires in"), "{stdout}");
    // An expired certificate.
    let good_cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    ca.issue_until(dir.path(), "localhost", 2001);
    let output = binary().arg("check").arg("--config").arg(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("expired"), "{stderr}");
    write_atomically(&dir.path().join("cert.pem"), &good_cert);
    // A certificate for another name than the public address's host.
    ca.issue_for(dir.path(), "notion.example.com");
    let output = binary().arg("check").arg("--config").arg(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a certificate for another host was accepted");
    assert!(stderr.contains("is not valid for localhost"), "{stderr}");
    write_atomically(&dir.path().join("cert.pem"), &good_cert);
    // The public address must be https with [tls] on.
    let plain = std::fs::read_to_string(&config).unwrap().replace("https://", "http://");
    std::fs::write(&config, plain).unwrap();
    let output = binary().arg("check").arg("--config").arg(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("must be https when"), "{stderr}");

    // Served; a new pair is taken at SIGHUP, at once.
    let config = tls_config(dir.path(), port, "http://127.0.0.1:9");
    write_atomically(&dir.path().join("key.pem"), &good_key);
    let mut server = binary()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let presented = || async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(ca.roots())
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream =
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.ok()?;
        Some(stream.get_ref().1.peer_certificates()?[0].clone())
    };
    let served = eventually("the server up", Duration::from_secs(10), presented).await;
    assert_eq!(served, first);
    let second = ca.issue(dir.path());
    let pid = server.id().unwrap().to_string();
    let hup = tokio::process::Command::new("kill").args(["-HUP", &pid]).status().await.unwrap();
    assert!(hup.success());
    eventually("the new pair after SIGHUP", Duration::from_secs(1), || async {
        (presented().await? == second).then_some(())
    })
    .await;
    // SIGTERM with TLS on: a graceful stop, exit status 0.
    let term = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(term.success());
    let exited = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
    assert!(exited.expect("stopped within 10 s of SIGTERM").unwrap().success());
}

#[tokio::test]
async fn plain_http_beside_tls_redirects_to_the_public_address_whatever_the_host_header() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let http_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = https_app_with(
        dir.path(),
        TestOptions { http_bind: Some(format!("127.0.0.1:{http_port}")), ..TestOptions::default() },
    )
    .await;
    let plain = http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, expected) in [
        ("/privacy?x=1", format!("{}/privacy?x=1", app.address)),
        ("//evil.example/a", format!("{}/evil.example/a", app.address)),
    ] {
        let answer = plain
            .get(format!("http://127.0.0.1:{http_port}{path}"))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 308, "{path}");
        assert_eq!(answer.headers()["location"], expected.as_str(), "{path}");
    }
    // Without [acme] there is no challenge to answer.
    let challenge = plain
        .get(format!("http://127.0.0.1:{http_port}/.well-known/acme-challenge/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 404);
}

#[tokio::test]
async fn a_client_that_says_nothing_after_the_handshake_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let options = TestOptions { header_timeout_seconds: 1, ..TestOptions::default() };
    let app = https_app_with(dir.path(), options).await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let (_, _, mut stream) = handshake(&app, &ca, &[alpn]).await;
        let started = std::time::Instant::now();
        // HTTP/2 sends its settings first; then nothing more comes, until the close.
        let mut buffer = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
            }
        })
        .await;
        let protocol = String::from_utf8_lossy(alpn);
        assert!(closed.is_ok(), "{protocol}: still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(4), "{protocol}: {:?}", started.elapsed());
    }
}

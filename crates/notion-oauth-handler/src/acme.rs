//! `[acme]`: the certificate ordered from an ACME authority (RFC 8555; Let's Encrypt by
//! default), renewed well before it expires, and kept in a cache folder that survives restarts
//! and that several instances may share.
//!
//! The protocol is instant-acme's; this module decides when to order, answers the challenges
//! (TLS-ALPN-01 on the HTTPS listener, HTTP-01 on the plain-HTTP one), and keeps the files. The
//! pair goes to one file (key and chain), written whole and renamed into place, and is served
//! through [`Certificate`], whose watcher also picks up a pair another instance wrote.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{Acme, Challenge};
use crate::metrics::{AcmeOutcome, Metrics};
use crate::tls::{ACME_TLS_ALPN, Certificate};

/// How long one order may take from the first request to the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// Each HTTP request to the authority.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first wait after a failed order; it doubles up to [`MAX_BACKOFF`]. Four failures fit in
/// the first hour and a half, under Let's Encrypt's five failed validations per name per hour.
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// While another instance holds the cache's lock, how often to look whether it is done.
const BUSY_RETRY: Duration = Duration::from_secs(10);
/// The longest single sleep: the monotonic clock stops while a machine is suspended, so a long
/// sleep could wake past the renewal date.
const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// Creates the cache folder (0700) with its account folder, so that a folder that cannot be
/// written stops the start instead of the first renewal.
///
/// # Errors
/// The folder cannot be made or written to.
pub(crate) fn prepare_cache(acme: &Acme) -> anyhow::Result<()> {
    for dir in [acme.cache_dir.clone(), acme.account_dir(), acme.shared_answers_dir()] {
        make_private_dir(&dir)
            .with_context(|| format!("acme.cache_dir: cannot create {}", dir.display()))?;
    }
    // A folder made beforehand (by hand, by a deploy tool) may be open to others: it holds the
    // account key, so it is closed like one this process made.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        if let Err(error) = std::fs::set_permissions(&acme.cache_dir, private) {
            tracing::warn!(error = %error, cache_dir = %acme.cache_dir.display(), "cannot make acme.cache_dir private (0700); its files are 0600 all the same");
        }
    }
    let probe = acme.cache_dir.join(".write-test");
    write_private(&probe, b"")
        .with_context(|| format!("acme.cache_dir: cannot write in {}", acme.cache_dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The answers to the challenges of an order under way: this instance's, and (read from the
/// shared cache on a miss) those of another instance ordering for all of them.
#[derive(Debug)]
pub(crate) struct Challenges {
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    http: RwLock<HashMap<String, String>>,
    shared: PathBuf,
    /// Answers made from another instance's files, with the key authorization they answer.
    made: RwLock<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl Challenges {
    pub(crate) fn new(acme: &Acme) -> Arc<Self> {
        Arc::new(Self {
            alpn: RwLock::default(),
            http: RwLock::default(),
            shared: acme.shared_answers_dir(),
            made: RwLock::default(),
        })
    }

    /// The key authorization for an HTTP-01 `token`.
    fn http_answer(&self, token: &str) -> Option<String> {
        if let Some(answer) = self.http.read().unwrap_or_else(|e| e.into_inner()).get(token) {
            return Some(answer.clone());
        }
        // The token names a file: only its own alphabet (base64url) may reach the disk.
        if token.is_empty()
            || token.len() > 128
            || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        std::fs::read_to_string(self.shared.join(format!("http-01-{token}"))).ok()
    }

    /// The TLS-ALPN-01 certificate for `name`.
    fn alpn_answer(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if let Some(answer) = self.alpn.read().unwrap_or_else(|e| e.into_inner()).get(&name) {
            return Some(answer.clone());
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || name.starts_with('.')
        {
            return None;
        }
        let key_authorization =
            std::fs::read_to_string(self.shared.join(format!("tls-alpn-01-{name}"))).ok()?;
        // Kept with what it answers, so that a validator's repeated handshakes do not each make
        // a key, and the next order's answer replaces it.
        let mut made = self.made.write().unwrap_or_else(|e| e.into_inner());
        if let Some((answered, answer)) = made.get(&name)
            && *answered == key_authorization
        {
            return Some(answer.clone());
        }
        let answer = alpn_certificate(&name, &Sha256::digest(key_authorization.as_bytes())).ok()?;
        made.insert(name, (key_authorization, answer.clone()));
        Some(answer)
    }

    fn set(
        &self,
        challenge: Challenge,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> anyhow::Result<()> {
        let file = match challenge {
            Challenge::Http01 => {
                let mut http = self.http.write().unwrap_or_else(|e| e.into_inner());
                http.insert(token.to_owned(), key_authorization.to_owned());
                format!("http-01-{token}")
            }
            Challenge::TlsAlpn01 => {
                let answer = alpn_certificate(name, &Sha256::digest(key_authorization.as_bytes()))?;
                self.alpn
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), answer);
                format!("tls-alpn-01-{name}")
            }
        };
        // The validator may reach any instance behind the load balancer: the others read it here.
        write_private(&self.shared.join(file), key_authorization.as_bytes())
            .context("cannot write the challenge answer to the shared cache")
    }

    fn clear(&self) {
        let names: Vec<String> =
            self.alpn.write().unwrap_or_else(|e| e.into_inner()).drain().map(|(n, _)| n).collect();
        let tokens: Vec<String> =
            self.http.write().unwrap_or_else(|e| e.into_inner()).drain().map(|(t, _)| t).collect();
        let files = names.iter().map(|n| format!("tls-alpn-01-{n}"));
        for file in files.chain(tokens.iter().map(|t| format!("http-01-{t}"))) {
            let _ = std::fs::remove_file(self.shared.join(file));
        }
    }
}

/// The certificate served, and during an order the TLS-ALPN-01 answer to a validator that
/// asks for `acme-tls/1` (RFC 8737); no other client ever offers that protocol.
#[derive(Debug)]
pub(crate) struct Resolver {
    pub(crate) certificate: Arc<Certificate>,
    pub(crate) challenges: Arc<Challenges>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validating =
            hello.alpn().is_some_and(|mut offered| offered.all(|p| p == ACME_TLS_ALPN));
        if validating {
            return self.challenges.alpn_answer(hello.server_name()?);
        }
        self.certificate.resolve(hello)
    }
}

/// The self-signed certificate RFC 8737 asks for: the name, and the digest of the key
/// authorization in a critical `acmeIdentifier` extension.
fn alpn_certificate(name: &str, digest: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_ecdsa_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(vec![certificate.der().clone()], signing)))
}

/// The plain-HTTP listener (`server.http_bind`): HTTP-01 answers, and a permanent redirect to
/// the same path at `public_url` for everything else. The target comes from the
/// configuration, never from `Host`, so the redirect cannot be pointed elsewhere.
pub(crate) fn plain_http_router(public_url: &Url, challenges: Option<Arc<Challenges>>) -> Router {
    let origin = public_url.origin().ascii_serialization();
    Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(
                |State((_, challenges)): State<(Arc<str>, Option<Arc<Challenges>>)>,
                 UrlPath(token): UrlPath<String>| async move {
                    match challenges.and_then(|c| c.http_answer(&token)) {
                        Some(answer) => {
                            ([(header::CONTENT_TYPE, "application/octet-stream")], answer)
                                .into_response()
                        }
                        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
                    }
                },
            ),
        )
        .fallback(
            |State((origin, _)): State<(Arc<str>, Option<Arc<Challenges>>)>, uri: Uri| async move {
                redirect(&origin, &uri)
            },
        )
        .with_state((Arc::from(origin), challenges))
}

fn redirect(origin: &str, uri: &Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // A path is always absolute here; `//host` would read as another host, so keep one slash.
    let path = format!("/{}", path.trim_start_matches('/'));
    match HeaderValue::try_from(format!("{origin}{path}")) {
        Ok(location) => {
            (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Keeps a valid certificate in `certificate`: orders one at once when there is none, then
/// again before each expires, retrying failures with backoff, until the task is dropped.
pub(crate) async fn keep_certified(
    acme: Acme,
    certificate: Arc<Certificate>,
    challenges: Arc<Challenges>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let due_in = certificate.served().map_or(Duration::ZERO, |served| {
            let due = renewal_time(served.issued_at, served.expires_at, acme.renew_before);
            metrics.acme_next_renewal_at(unix(due));
            due.duration_since(SystemTime::now()).unwrap_or_default()
        });
        if !due_in.is_zero() {
            tokio::time::sleep(due_in.min(LONGEST_SLEEP)).await;
            continue;
        }
        match order_when_free(&acme, &certificate, &challenges, &metrics).await {
            Ok(Ordered::Issued) => {
                metrics.acme_order(AcmeOutcome::Issued);
                backoff = FIRST_BACKOFF;
            }
            Ok(Ordered::ByAnother) => backoff = FIRST_BACKOFF,
            Ok(Ordered::Busy) => tokio::time::sleep(BUSY_RETRY).await,
            Err(error) => {
                metrics.acme_order(AcmeOutcome::Failed);
                let wait = jittered(backoff);
                let serving = match certificate.served() {
                    Some(_) => "the current certificate is still served",
                    None => "HTTPS handshakes fail until a certificate is obtained",
                };
                tracing::error!(
                    error = format!("{error:#}"),
                    retry_in_seconds = wait.as_secs(),
                    directory = %acme.directory_url,
                    "the ACME order failed; {serving}. Check that the domains point at this \
                     server and that the challenge's port (443 for tls-alpn-01, 80 for http-01) \
                     reaches it"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// When a certificate is renewed: `renew_before` ahead of expiry, or a third of its lifetime
/// ahead for short-lived ones (where 30 days would mean "always").
fn renewal_time(
    issued_at: SystemTime,
    expires_at: SystemTime,
    renew_before: Duration,
) -> SystemTime {
    let lifetime = expires_at.duration_since(issued_at).unwrap_or_default();
    expires_at - renew_before.min(lifetime / 3)
}

fn unix(time: SystemTime) -> i64 {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// `wait` give or take a tenth, so that instances failing together do not retry together.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let tenth = wait / 10;
    wait - tenth + tenth * 2 * u32::from(byte[0]) / 255
}

enum Ordered {
    /// This instance ordered and now serves a new certificate.
    Issued,
    /// Another instance sharing the cache renewed it meanwhile.
    ByAnother,
    /// Another instance is ordering right now.
    Busy,
}

/// Orders under the cache's lock, unless another instance holds it or has just renewed.
async fn order_when_free(
    acme: &Acme,
    certificate: &Certificate,
    challenges: &Challenges,
    metrics: &Metrics,
) -> anyhow::Result<Ordered> {
    let lock_path = acme.lock_file();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Ordered::Busy),
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", lock_path.display()));
        }
    }
    // Another instance may have renewed while this one waited for the lock.
    if let Ok(cached) = crate::tls::load(&acme.files)
        && renewal_time(cached.issued_at, cached.expires_at, acme.renew_before) > SystemTime::now()
        && certificate.served().is_none_or(|served| served.expires_at < cached.expires_at)
    {
        certificate.reload("another instance renewed it", metrics);
        return Ok(Ordered::ByAnother);
    }
    let ordered = order(acme, challenges).await;
    challenges.clear();
    let pem = ordered?;
    write_private(&acme.files.cert_file, pem.as_bytes())
        .with_context(|| format!("cannot write {}", acme.files.cert_file.display()))?;
    drop(lock);
    if !certificate.reload("ordered from the ACME authority", metrics) {
        bail!("the certificate the authority issued does not load (see the error before)");
    }
    Ok(Ordered::Issued)
}

/// One order, start to finish: the key and chain, PEM.
async fn order(acme: &Acme, challenges: &Challenges) -> anyhow::Result<String> {
    let account = load_account(acme, false).await?;
    let identifiers: Vec<Identifier> = acme.domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Err(instant_acme::Error::Api(problem)) if is_unknown_account(&problem) => {
            // The authority forgot the account (a test server restarted, a reset): make another.
            tracing::warn!(
                "the ACME account in the cache is unknown to the authority; creating a new one"
            );
            load_account(acme, true).await?.new_order(&NewOrder::new(&identifiers)).await
        }
        other => other,
    }
    .context("the authority refused the order")?;
    tracing::info!(domains = ?acme.domains, "ordering a certificate");
    let kind = match acme.challenge {
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        Challenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.context("cannot read an authorization")?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => bail!("an authorization is {other:?}: the authority will not validate it"),
        }
        let mut challenge = authorization.challenge(kind.clone()).with_context(|| {
            format!("the authority does not offer {kind:?} (set acme.challenge to the other one)")
        })?;
        let name = challenge.identifier().to_string();
        let key_authorization = challenge.key_authorization();
        challenges.set(acme.challenge, &name, &challenge.token, key_authorization.as_str())?;
        challenge.set_ready().await.context("cannot tell the authority the challenge is ready")?;
    }
    let retry = RetryPolicy::new().initial_delay(Duration::from_millis(500)).timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retry).await.context("waiting for validation")?;
    if status != OrderStatus::Ready {
        let why =
            order.state().error.as_ref().map_or_else(|| format!("{status:?}"), ToString::to_string);
        bail!("the authority did not validate the domains: {why}");
    }
    let key = rcgen::KeyPair::generate().context("cannot make a key")?;
    let mut params = rcgen::CertificateParams::new(acme.domains.clone())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).context("cannot make the certificate request")?;
    order.finalize_csr(csr.der()).await.context("the authority refused the certificate request")?;
    let chain = order.poll_certificate(&retry).await.context("waiting for the certificate")?;
    Ok(format!("{}{chain}", key.serialize_pem()))
}

fn is_unknown_account(problem: &instant_acme::Problem) -> bool {
    problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
}

/// The cached account, or a new one (also when `renew` says the cached one is dead).
async fn load_account(acme: &Acme, renew: bool) -> anyhow::Result<Account> {
    let path = acme.account_dir().join("account.json");
    let http = AcmeHttp::new(acme)?;
    if !renew && let Ok(json) = std::fs::read(&path) {
        let credentials: AccountCredentials = serde_json::from_slice(&json).with_context(|| {
            format!("{} is not an ACME account; delete it to make a new one", path.display())
        })?;
        return Account::builder_with_http(Box::new(http))
            .from_credentials(credentials)
            .await
            .context("cannot reach the ACME directory");
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = Account::builder_with_http(Box::new(http))
        .create(&new, acme.directory_url.to_string(), None)
        .await
        .context("cannot create an ACME account")?;
    let json = serde_json::to_vec(&credentials).context("cannot save the ACME account")?;
    write_private(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(account = account.id(), "ACME account created");
    Ok(account)
}

/// instant-acme's requests, sent with our reqwest: one HTTP stack, a timeout on each request,
/// and `acme.ca_file` as the only trusted root when it is set.
struct AcmeHttp(reqwest::Client);

impl AcmeHttp {
    fn new(acme: &Acme) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("notion-oauth-handler/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &acme.ca_file {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
            builder = builder.tls_certs_only(roots);
        }
        Ok(Self(builder.build().context("cannot build the ACME client")?))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let response = client
                .execute(request)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            Ok(BytesResponse::from(http::Response::<reqwest::Body>::from(response)))
        })
    }
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` readable by this user only, beside `path` and then renamed over it, so that
/// a reader sees the old file or the new one, never half of one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        make_private_dir(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file: File = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renewal_is_a_month_ahead_or_a_third_of_a_short_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let days = |n: u64| Duration::from_secs(n * 86_400);
        let month = days(30);
        assert_eq!(renewal_time(start, start + days(90), month), start + days(60));
        assert_eq!(renewal_time(start, start + days(6), month), start + days(4));
        assert_eq!(
            renewal_time(start, start + Duration::from_secs(60), month),
            start + Duration::from_secs(40)
        );
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(300));
            assert!((270..=330).contains(&wait.as_secs()), "{wait:?}");
        }
    }

    #[test]
    fn redirects_keep_the_path_and_never_leave_the_host() {
        let location = |uri: &str| {
            let response = redirect("https://notion.example.com", &uri.parse().unwrap());
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
            response.headers()[header::LOCATION].to_str().unwrap().to_owned()
        };
        assert_eq!(location("/connect?ref=a"), "https://notion.example.com/connect?ref=a");
        assert_eq!(location("//evil.example/x"), "https://notion.example.com/evil.example/x");
        assert_eq!(location("http://evil.example/y"), "https://notion.example.com/y");
    }
}

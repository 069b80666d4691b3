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

/// How long to wait for the authority to validate, and then to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// Each HTTP request to the authority.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first wait after a failed order; it doubles up to [`MAX_BACKOFF`]. Four failures fit in
/// the first hour and a quarter, under Let's Encrypt's five failed validations per name per
/// hour; the count is shared by every instance using the cache (see [`Failures`]).
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// While another instance holds the cache's lock, how often to look whether it is done.
const BUSY_RETRY: Duration = Duration::from_secs(10);
/// How long another instance may hold the lock before the log says so.
const BUSY_WARNING: Duration = Duration::from_secs(5 * 60);
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
    probe_writable(&acme.cache_dir)
        .with_context(|| format!("acme.cache_dir: cannot write in {}", acme.cache_dir.display()))?;
    Ok(())
}

/// What `check` says of the cache folder, changing nothing: a `check` run as root must not leave
/// folders the service's user cannot write.
///
/// # Errors
/// The folder (or, when it does not exist yet, the folder it would be made in) cannot be
/// written to.
pub(crate) fn check_cache(acme: &Acme) -> anyhow::Result<&'static str> {
    let mut existing = acme.cache_dir.as_path();
    while !existing.exists() {
        existing = existing.parent().unwrap_or_else(|| Path::new("/"));
    }
    if !existing.is_dir() {
        bail!(
            "acme.cache_dir: cannot create {}: {} is not a folder",
            acme.cache_dir.display(),
            existing.display()
        );
    }
    probe_writable(existing)
        .with_context(|| format!("acme.cache_dir: cannot write in {}", existing.display()))?;
    Ok(if existing == acme.cache_dir { "writable" } else { "made at the first start" })
}

fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let (probe, file) = create_temporary(&dir.join("write-test"))?;
    drop(file);
    std::fs::remove_file(probe)
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
    /// Only these names are ever answered, or looked for on disk.
    domains: Vec<String>,
    challenge: Challenge,
}

impl Challenges {
    pub(crate) fn new(acme: &Acme) -> Arc<Self> {
        Arc::new(Self {
            alpn: RwLock::default(),
            http: RwLock::default(),
            shared: acme.shared_answers_dir(),
            made: RwLock::default(),
            domains: acme.domains.clone(),
            challenge: acme.challenge,
        })
    }

    /// The key authorization for an HTTP-01 `token`.
    async fn http_answer(&self, token: &str) -> Option<String> {
        if let Some(answer) = self.http.read().unwrap_or_else(|e| e.into_inner()).get(token) {
            return Some(answer.clone());
        }
        // The token names a file: only its own alphabet may reach the disk.
        if self.challenge != Challenge::Http01 || !is_token(token) {
            return None;
        }
        tokio::fs::read_to_string(self.shared.join(format!("http-01-{token}"))).await.ok()
    }

    /// The TLS-ALPN-01 certificate for `name`.
    fn alpn_answer(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if let Some(answer) = self.alpn.read().unwrap_or_else(|e| e.into_inner()).get(&name) {
            return Some(answer.clone());
        }
        // A validator asks only for the configured names: any other name, from anyone, costs
        // nothing. For those, the small file read blocks the handshake's thread briefly; it
        // happens only while a validator is at work.
        if self.challenge != Challenge::TlsAlpn01 || !self.domains.contains(&name) {
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
        // Both end up in a file name: refuse what RFC 8555 would never send rather than trust
        // the authority with the cache folder.
        if !is_token(token) || !self.domains.iter().any(|domain| domain == name) {
            bail!(
                "the authority sent a challenge for `{name}` (token `{token}`) that this server did not order"
            );
        }
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

    /// Forgets every answer, and removes every answer file: also those an instance that
    /// stopped mid-order left behind (only the lock's holder writes them).
    fn clear(&self) {
        self.alpn.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.http.write().unwrap_or_else(|e| e.into_inner()).clear();
        if let Ok(entries) = std::fs::read_dir(&self.shared) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Clears the answers when an order ends, however it ends (an error, the task aborted at
/// shutdown).
struct ClearOnDrop<'a>(&'a Challenges);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// RFC 8555 §8.1: a token is base64url.
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
                    let answer = match &challenges {
                        Some(challenges) => challenges.http_answer(&token).await,
                        None => None,
                    };
                    match answer {
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
    let mut busy_since: Option<std::time::Instant> = None;
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
        let ordered = order_when_free(&acme, &certificate, &challenges, &metrics).await;
        if !matches!(ordered, Ordered::Busy) {
            busy_since = None;
        }
        match ordered {
            Ordered::Issued => metrics.acme_order(AcmeOutcome::Issued),
            Ordered::ByAnother => {}
            Ordered::Busy => {
                let since = *busy_since.get_or_insert_with(std::time::Instant::now);
                let busy = since.elapsed();
                // Once after five minutes, then hourly: a holder that hangs (a stuck NFS client)
                // shows in the log.
                if busy >= BUSY_WARNING
                    && (busy - BUSY_WARNING).as_secs() % 3600 < BUSY_RETRY.as_secs()
                {
                    tracing::warn!(
                        lock = %acme.lock_file().display(),
                        busy_minutes = busy.as_secs() / 60,
                        "another instance sharing acme.cache_dir has held its lock for minutes; this one waits for it"
                    );
                }
                tokio::time::sleep(BUSY_RETRY).await;
            }
            Ordered::NotBefore(at) => {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::sleep(wait.min(LONGEST_SLEEP)).await;
            }
            Ordered::Failed { error, retry_in } => {
                metrics.acme_order(AcmeOutcome::Failed);
                let serving = match certificate.served() {
                    Some(_) => "the current certificate is still served",
                    None => "HTTPS handshakes fail until a certificate is obtained",
                };
                tracing::error!(
                    error = format!("{error:#}"),
                    retry_in_seconds = retry_in.as_secs(),
                    directory = %acme.directory_url,
                    "the ACME order failed; {serving}. Check that the domains point at this \
                     server and that the challenge's port (443 for tls-alpn-01, 80 for http-01) \
                     reaches it"
                );
                tokio::time::sleep(retry_in.min(LONGEST_SLEEP)).await;
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
    /// A failed order (this instance's or another's) asks to wait until then.
    NotBefore(SystemTime),
    /// The order failed; the next attempt is due after `retry_in`.
    Failed { error: anyhow::Error, retry_in: Duration },
}

/// Orders under the cache's lock, unless another instance holds it or has just renewed, or a
/// recent failure asks to wait. Failures are counted in the cache, so that instances sharing it
/// (and restarts) back off together: Let's Encrypt allows five failed validations per name per
/// hour.
async fn order_when_free(
    acme: &Acme,
    certificate: &Certificate,
    challenges: &Challenges,
    metrics: &Metrics,
) -> Ordered {
    let lock_path = acme.lock_file();
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let opened = options.open(&lock_path);
    let lock = match opened {
        Ok(lock) => lock,
        Err(error) => {
            let error =
                anyhow::Error::new(error).context(format!("cannot open {}", lock_path.display()));
            return Ordered::Failed { error, retry_in: jittered(FIRST_BACKOFF) };
        }
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ordered::Busy,
        Err(std::fs::TryLockError::Error(error)) => {
            let error =
                anyhow::Error::new(error).context(format!("cannot lock {}", lock_path.display()));
            return Ordered::Failed { error, retry_in: jittered(FIRST_BACKOFF) };
        }
    }
    // Another instance may have renewed while this one waited for the lock.
    if let Ok(cached) = crate::tls::load(&acme.files)
        && renewal_time(cached.issued_at, cached.expires_at, acme.renew_before) > SystemTime::now()
        && certificate.served().is_none_or(|served| served.expires_at < cached.expires_at)
    {
        certificate.reload("another instance renewed it", metrics);
        return Ordered::ByAnother;
    }
    let failures = Failures::read(acme);
    if failures.next_attempt > SystemTime::now() {
        return Ordered::NotBefore(failures.next_attempt);
    }
    let issued = {
        let _clear = ClearOnDrop(challenges);
        challenges.clear();
        order(acme, challenges).await
    };
    let stored = issued.and_then(|pem| {
        write_private(&acme.files.cert_file, pem.as_bytes())
            .with_context(|| format!("cannot write {}", acme.files.cert_file.display()))
    });
    if let Err(error) = stored {
        let retry_in = failures.record_another(acme);
        return Ordered::Failed { error, retry_in };
    }
    Failures::reset(acme);
    drop(lock);
    if !certificate.reload("ordered from the ACME authority", metrics) {
        let error = anyhow::anyhow!(
            "the certificate the authority issued does not load (see the error before)"
        );
        return Ordered::Failed { error, retry_in: jittered(FIRST_BACKOFF) };
    }
    Ordered::Issued
}

/// Failed orders in a row and when the next may be made, kept beside the account as
/// `failures`: `<count> <unix seconds>`.
struct Failures {
    count: u32,
    next_attempt: SystemTime,
}

impl Failures {
    fn path(acme: &Acme) -> PathBuf {
        acme.account_dir().join("failures")
    }

    fn read(acme: &Acme) -> Self {
        let text = std::fs::read_to_string(Self::path(acme)).unwrap_or_default();
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(count)), Some(Ok(at))) => Self {
                count: u32::try_from(count).unwrap_or(u32::MAX),
                next_attempt: std::time::UNIX_EPOCH + Duration::from_secs(at),
            },
            _ => Self { count: 0, next_attempt: std::time::UNIX_EPOCH },
        }
    }

    /// Counts one more failure and returns how long to wait: 5, 10, 20 … minutes, at most 6 h.
    fn record_another(&self, acme: &Acme) -> Duration {
        let count = self.count.saturating_add(1);
        let doubled = FIRST_BACKOFF.saturating_mul(1 << (count - 1).min(12));
        let wait = jittered(doubled.min(MAX_BACKOFF));
        let at = unix(SystemTime::now() + wait);
        if let Err(error) = write_private(&Self::path(acme), format!("{count} {at}\n").as_bytes()) {
            tracing::warn!(error = %error, "cannot record the failed ACME order in acme.cache_dir");
        }
        wait
    }

    fn reset(acme: &Acme) {
        let _ = std::fs::remove_file(Self::path(acme));
    }
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
/// a reader sees the old file or the new one, never half of one, even after a crash.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        make_private_dir(parent)?;
    }
    let (temporary, mut file) = create_temporary(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return renamed;
    }
    // The rename itself is on disk only once its folder is.
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// A new file beside `path`, 0600, under a name no other process uses: created exclusively, so
/// neither a leftover file (with its own mode) nor a planted symbolic link is written through.
fn create_temporary(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.{}-{suffix}.tmp", std::process::id()));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&temporary)?;
    Ok((temporary, file))
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

    fn acme(dir: &Path, challenge: Challenge) -> Acme {
        let pair = dir.join("pair.pem");
        Acme {
            domains: vec!["notion.example.com".into()],
            contact: Vec::new(),
            directory_url: Url::parse("https://127.0.0.1:14000/dir").unwrap(),
            cache_dir: dir.to_owned(),
            challenge,
            ca_file: None,
            renew_before: Duration::from_secs(30 * 86_400),
            files: crate::config::TlsFiles {
                cert_file: pair.clone(),
                key_file: pair,
                host: "notion.example.com".into(),
            },
        }
    }

    #[test]
    fn answers_are_only_for_the_configured_names_and_tokens_never_leave_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config = acme(dir.path(), Challenge::TlsAlpn01);
        prepare_cache(&config).unwrap();
        let challenges = Challenges::new(&config);
        let set = |name: &str, token: &str| {
            challenges.set(Challenge::TlsAlpn01, name, token, "token.thumbprint")
        };
        assert!(set("notion.example.com", "../../pair.pem").is_err());
        assert!(set("other.example.com", "abc").is_err());
        assert!(!dir.path().join("pair.pem").exists());
        set("notion.example.com", "abc_-123").unwrap();
        assert!(challenges.alpn_answer("Notion.Example.com").is_some());

        // Another instance's answer is read from the shared folder, for a configured name only.
        let shared = config.shared_answers_dir();
        let other = Challenges::new(&config);
        assert!(other.alpn_answer("notion.example.com").is_some());
        std::fs::write(shared.join("tls-alpn-01-other.example.com"), "x.y").unwrap();
        assert!(other.alpn_answer("other.example.com").is_none());

        // The end of an order removes every answer file, leftovers of a stopped instance too.
        std::fs::write(shared.join("http-01-left_over"), "x.y").unwrap();
        drop(ClearOnDrop(&challenges));
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
        assert!(challenges.alpn_answer("notion.example.com").is_none());
    }

    #[test]
    fn private_files_are_0600_whatever_was_there_and_writers_do_not_collide() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certificate.pem");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let writers: Vec<_> = (0..8)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        write_private(&path, format!("writer {n}").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("writer "));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn failures_are_counted_in_the_cache_and_back_off_by_doubling() {
        let dir = tempfile::tempdir().unwrap();
        let config = acme(dir.path(), Challenge::Http01);
        prepare_cache(&config).unwrap();
        assert_eq!(Failures::read(&config).count, 0);
        let first = Failures::read(&config).record_another(&config);
        assert!((270..=330).contains(&first.as_secs()), "{first:?}");
        let second = Failures::read(&config).record_another(&config);
        assert!((540..=660).contains(&second.as_secs()), "{second:?}");
        let read = Failures::read(&config);
        assert_eq!(read.count, 2);
        assert!(read.next_attempt > SystemTime::now() + Duration::from_secs(500));
        Failures::reset(&config);
        assert_eq!(Failures::read(&config).count, 0);
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

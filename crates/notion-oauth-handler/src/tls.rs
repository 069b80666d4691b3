//! HTTPS in the process: the certificate from `[tls]`'s files (or the ACME cache's), served
//! with rustls (ring) over HTTP/1.1 or HTTP/2 as the client's ALPN asks, and taken again from
//! the files when they change or on SIGHUP, without a restart. A new pair that does not load
//! (half written, a key that is not the certificate's) leaves the one being served in place,
//! and the log says why.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::ring};

use crate::config::TlsFiles;
use crate::metrics::Metrics;
use crate::telemetry::Chain;

/// The ALPN protocol of ACME's TLS-ALPN-01 validators (RFC 8737): a connection that
/// negotiated it carries no HTTP.
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often the files are looked at for a change.
const WATCH: Duration = Duration::from_secs(2);

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Chain { path: String, reason: String },
    #[error("{path} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("cannot read the private key {path}: {reason} (expected PEM: PKCS#8, PKCS#1 or SEC1)")]
    Key { path: String, reason: String },
    #[error("the private key in {key} is not one rustls can sign with: {reason}")]
    UnsupportedKey { key: String, reason: String },
    #[error("the private key in {key} is not the key of the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error(
        "the certificate in {cert} is not valid for {host}, the host of server.public_url ({reason})"
    )]
    WrongHost { cert: String, host: String, reason: String },
    #[error("the certificate in {cert} expired {days} day(s) ago; renew it")]
    Expired { cert: String, days: u64 },
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] rustls::Error),
}

/// Reads and checks the pair `files` names, for `host` (`server.public_url`'s).
///
/// # Errors
/// A file that cannot be read or parsed, a key rustls cannot sign with, a key that is not the
/// certificate's, or a certificate for other names than `host`.
pub(crate) fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let cert_path = files.cert_file.display().to_string();
    let key_path = files.key_file.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(Iterator::collect)
        .map_err(|error| TlsError::Chain { path: cert_path.clone(), reason: error.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|error| TlsError::Key { path: key_path.clone(), reason: error.to_string() })?;
    let signing_key = any_supported_type(&key).map_err(|error| TlsError::UnsupportedKey {
        key: key_path.clone(),
        reason: error.to_string(),
    })?;
    // Browsers would refuse a certificate for other names: say so now, not at the first visit.
    let leaf = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|error| TlsError::Chain { path: cert_path.clone(), reason: error.to_string() })?;
    let name = ServerName::try_from(files.host.clone()).map_err(|error| TlsError::WrongHost {
        cert: cert_path.clone(),
        host: files.host.clone(),
        reason: error.to_string(),
    })?;
    leaf.verify_is_valid_for_subject_name(&name).map_err(|error| TlsError::WrongHost {
        cert: cert_path.clone(),
        host: files.host.clone(),
        reason: format!("{error:?}"),
    })?;
    let (issued_at, expires_at) = validity(&chain[0]).ok_or_else(|| TlsError::Chain {
        path: cert_path.clone(),
        reason: "no validity period".into(),
    })?;
    if let Ok(ago) = SystemTime::now().duration_since(expires_at) {
        return Err(TlsError::Expired { cert: cert_path, days: ago.as_secs() / 86_400 });
    }
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| TlsError::Mismatch { cert: cert_path, key: key_path })?;
    Ok(Loaded { key: Arc::new(certified), issued_at, expires_at })
}

/// A pair that loaded, and when its certificate expires.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    key: Arc<CertifiedKey>,
    /// The start of the certificate's validity period.
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
}

impl Loaded {
    /// Seconds since the Unix epoch.
    pub(crate) fn expires_at_unix(&self) -> i64 {
        let since = self.expires_at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    }
}

/// The start and end of the certificate's validity period.
fn validity(leaf: &CertificateDer<'_>) -> Option<(SystemTime, SystemTime)> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    let validity = certificate.tbs_certificate().validity();
    let at = |time: x509_cert::time::Time| std::time::UNIX_EPOCH + time.to_unix_duration();
    Some((at(validity.not_before), at(validity.not_after)))
}

/// The pair being served; replaced whole when the files change.
#[derive(Debug)]
pub(crate) struct Certificate {
    /// `None` only while an ACME certificate is awaited: handshakes fail until it comes.
    current: RwLock<Option<Loaded>>,
    files: TlsFiles,
    /// The files as they were just before the served pair was last read: a change after that,
    /// even before the watcher starts, is noticed.
    seen: Mutex<Stamp>,
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.served().map(|loaded| loaded.key)
    }
}

impl Certificate {
    /// The pair in `files`, read now.
    ///
    /// # Errors
    /// See [`load`].
    pub(crate) fn open(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let seen = Mutex::new(stamp_of(files));
        let current = RwLock::new(Some(load(files)?));
        Ok(Arc::new(Self { current, files: files.clone(), seen }))
    }

    /// The pair in `files` if there is one that loads (an ACME cache), else none yet.
    pub(crate) fn cached(files: &TlsFiles) -> Arc<Self> {
        let seen = Mutex::new(stamp_of(files));
        let current = match load(files) {
            Ok(loaded) => Some(loaded),
            Err(_) if !files.cert_file.exists() => None,
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "the cached certificate cannot be used; a new one will be ordered");
                None
            }
        };
        Arc::new(Self { current: RwLock::new(current), files: files.clone(), seen })
    }

    /// The pair served, if any.
    pub(crate) fn served(&self) -> Option<Loaded> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the files again; on failure the pair served stays. Whether the new pair is served.
    pub(crate) fn reload(&self, why: &str, metrics: &Metrics) -> bool {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamp_of(&self.files);
        match load(&self.files) {
            Ok(loaded) => {
                metrics.certificate_expires_at(loaded.expires_at_unix());
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
                tracing::info!(cert_file = %self.files.cert_file.display(), why, "TLS certificate loaded");
                true
            }
            Err(error) => {
                tracing::error!(
                    error = %Chain(&error),
                    why,
                    "the new TLS certificate could not be used; the previous one is still served"
                );
                false
            }
        }
    }

    /// Reloads when either file changes (looked at every [`WATCH`]) and on SIGHUP, until the
    /// task is dropped.
    pub(crate) async fn watch(self: Arc<Self>, metrics: Arc<Metrics>, mut hangup: Hangups) {
        if let Some(served) = self.served() {
            metrics.certificate_expires_at(served.expires_at_unix());
        }
        let mut every = tokio::time::interval(WATCH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = every.tick() => "the files changed",
                Some(()) = next_hangup(&mut hangup) => "SIGHUP",
            };
            let changed =
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != stamp_of(&self.files);
            if why == "SIGHUP" || changed {
                self.reload(why, &metrics);
            }
        }
    }
}

/// rustls's configuration for serving what `resolver` picks: HTTP/2 or HTTP/1.1 by ALPN, and
/// the `extra` protocols after them (ACME's `acme-tls/1`).
///
/// # Errors
/// rustls refusing its own defaults (it does not).
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    extra: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.alpn_protocols.extend(extra.iter().map(|protocol| protocol.to_vec()));
    Ok(Arc::new(config))
}

fn stamp_of(files: &TlsFiles) -> Stamp {
    [stamp(&files.cert_file), stamp(&files.key_file)]
}

/// What tells the two files were replaced or rewritten, or had their mode or owner changed
/// (a key made readable is worth another try).
type Stamp = [Option<(SystemTime, u64, u64, i64)>; 2];

fn stamp(path: &Path) -> Option<(SystemTime, u64, u64, i64)> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (inode, changed) = {
        use std::os::unix::fs::MetadataExt;
        (metadata.ino(), metadata.ctime_nsec() + metadata.ctime() * 1_000_000_000)
    };
    #[cfg(not(unix))]
    let (inode, changed) = (0, 0);
    Some((metadata.modified().ok()?, metadata.len(), inode, changed))
}

/// SIGHUPs, once asked for: from then on the signal no longer ends the process.
#[cfg(unix)]
pub(crate) type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub(crate) type Hangups = Option<()>;

/// Starts receiving SIGHUP. Done first thing at start: its default action ends the process,
/// and `systemctl reload` sends it.
pub(crate) fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Answers SIGHUPs when there is no certificate to reload: the log says so, the server goes on.
pub(crate) async fn nothing_to_reload(mut hangups: Hangups) {
    while next_hangup(&mut hangups).await.is_some() {
        tracing::info!("SIGHUP: nothing to reload ([tls] is off; other settings need a restart)");
    }
}

async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    std::future::pending().await
}

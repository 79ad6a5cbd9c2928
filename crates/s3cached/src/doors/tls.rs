//! HTTPS on the S3 listener: the certificate and key from PEM files, HTTP/2 or HTTP/1.1 by
//! ALPN, and reloading the files when they change.
//!
//! Every handshake asks [`CurrentKey`] for the certificate, so swapping it there is all a
//! reload takes: connections already set up keep the keys they negotiated and are never
//! dropped, new ones get the new certificate. A new pair that does not load is logged and the
//! old one stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use crate::model::config::TlsConfig;

/// How long a client may take to complete the TLS handshake; past it the connection is
/// closed, so half-open connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    // The causes are part of the messages (and not `#[source]`s) so that one line, in the
    // reload log as at start-up, says everything once.
    #[error("cannot read TLS {what} {path}: {error}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("no usable PEM certificate in {path}{}", detail_suffix(.detail))]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if anything.
        detail: Option<String>,
    },
    /// The key file holds no PEM private key, or one that cannot sign.
    #[error("no usable PEM private key in {path}: {detail}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the parser or the crypto provider said.
        detail: String,
    },
    /// The key does not belong to the certificate.
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Config(rustls::Error),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

/// The certificate new handshakes get; replaced on reload.
#[derive(Debug)]
struct CurrentKey(RwLock<Arc<CertifiedKey>>);

impl CurrentKey {
    fn get(&self) -> Arc<CertifiedKey> {
        // A writer only swaps an `Arc`, so a poisoned lock still holds a whole value.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The bytes of both files as last read, loaded or not: a change is a difference from them.
/// The files are small, and comparing bytes also sees a change that a coarse or preserved
/// mtime would hide.
type Seen = (Vec<u8>, Vec<u8>);

/// The S3 listener's TLS: the acceptor and the reloadable certificate behind it.
pub struct Tls {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentKey>,
    seen: Mutex<Option<Seen>>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key of `config`.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read or parsed, or the key does not match the
    /// certificate.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let files = read_files(config)?;
        let key = certified_key(config, &files, &provider)?;
        let current = Arc::new(CurrentKey(RwLock::new(Arc::new(key))));
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Self {
            config: config.clone(),
            provider,
            current,
            seen: Mutex::new(Some(files)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        }))
    }

    /// Completes the TLS handshake on `socket`; `None` (logged at debug level) when the client
    /// fails it or takes longer than [`HANDSHAKE_TIMEOUT`].
    pub async fn handshake(&self, socket: TcpStream) -> Option<TlsStream<TcpStream>> {
        let peer = socket.peer_addr().ok();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                debug!(?peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                debug!(?peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                None
            }
        }
    }

    /// Reads both files and, when they differ from the last read (or `force`), loads them:
    /// new handshakes then get the new certificate. `Ok(true)` when a new pair is in use,
    /// `Ok(false)` when nothing changed.
    ///
    /// # Errors
    /// [`TlsError`] when the new files do not load; the previous certificate stays in use,
    /// and the same files are not reported again until they change.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let files = read_files(&self.config)?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !force && seen.as_ref() == Some(&files) {
                return Ok(false);
            }
            *seen = Some(files.clone());
        }
        let key = certified_key(&self.config, &files, &self.provider)?;
        self.current.set(Arc::new(key));
        Ok(true)
    }

    /// Checks the files every `reload_interval`, and at once on SIGHUP, and reloads them when
    /// they changed; failures are logged, once per content.
    pub fn spawn_reloader(self: &Arc<Self>) -> JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls.config.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut hangup = Hangup::new();
            let mut last_read_error: Option<String> = None;
            loop {
                let force = tokio::select! {
                    _ = tick.tick() => false,
                    () = hangup.recv() => {
                        info!("SIGHUP received: reloading the TLS certificate and key");
                        true
                    }
                };
                match tls.reload(force) {
                    Ok(true) => {
                        last_read_error = None;
                        info!(cert = %tls.config.cert.display(), key = %tls.config.key.display(),
                            "TLS certificate reloaded; new connections use it");
                    }
                    Ok(false) => last_read_error = None,
                    // A file that is briefly missing while it is replaced is reported once.
                    Err(e @ TlsError::Read { .. }) => {
                        let text = e.to_string();
                        if force || last_read_error.as_ref() != Some(&text) {
                            warn!(error = %text, "TLS reload failed; the previous certificate stays in use");
                        }
                        last_read_error = Some(text);
                    }
                    Err(e) => {
                        last_read_error = None;
                        warn!(error = %e, "TLS reload failed; the previous certificate stays in use");
                    }
                }
            }
        })
    }
}

/// SIGHUP, where there is such a signal and it can be listened for; otherwise never.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| warn!(error = %e, "cannot listen for SIGHUP; TLS files are still polled"))
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut()
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

fn read_files(config: &TlsConfig) -> Result<Seen, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            what,
            path: path.to_owned(),
            error,
        })
    };
    Ok((read("certificate", &config.cert)?, read("key", &config.key)?))
}

fn certified_key(config: &TlsConfig, (cert, key): &Seen, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |detail: Option<String>| TlsError::Certificate {
        path: config.cert.clone(),
        detail,
    };
    let key_error = |detail: String| TlsError::Key {
        path: config.key.clone(),
        detail,
    };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(Some(e.to_string())))?;
    if chain.is_empty() {
        return Err(cert_error(None));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| key_error(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: config.cert.clone(),
            key: config.key.clone(),
        }),
        Err(e) => Err(cert_error(Some(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        _dir: tempfile::TempDir,
        config: TlsConfig,
    }

    /// A self-signed certificate for `name` and its key, as PEM.
    fn pair(name: &str) -> (String, String) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (cert.pem(), signing_key.serialize_pem())
    }

    fn files((cert, key): &(String, String)) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig::new(dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&config.cert, cert).unwrap();
        std::fs::write(&config.key, key).unwrap();
        Files { _dir: dir, config }
    }

    fn leaf_der(pem: &str) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    fn served_der(tls: &Tls) -> Vec<u8> {
        tls.current.get().cert[0].to_vec()
    }

    #[test]
    fn unusable_files_are_named_in_one_line() {
        let (a, b) = (pair("a.test"), pair("b.test"));
        let f = files(&a);
        assert!(Tls::load(&f.config).is_ok());

        let missing = TlsConfig::new(f.config.cert.with_file_name("nope.pem"), f.config.key.clone());
        let e = Tls::load(&missing).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Read {
                    what: "certificate",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("nope.pem"), "{e}");

        std::fs::write(&f.config.cert, "not a certificate").unwrap();
        let e = Tls::load(&f.config).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");

        std::fs::write(&f.config.cert, &a.0).unwrap();
        std::fs::write(&f.config.key, &a.0).unwrap();
        let e = Tls::load(&f.config).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");

        std::fs::write(&f.config.key, &b.1).unwrap();
        let e = Tls::load(&f.config).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        for e in [e, Tls::load(&missing).unwrap_err()] {
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn reload_takes_a_changed_pair_and_keeps_the_old_one_when_the_new_is_bad() {
        let (a, b) = (pair("a.test"), pair("b.test"));
        let f = files(&a);
        let tls = Tls::load(&f.config).unwrap();
        assert!(!tls.reload(false).unwrap(), "unchanged files are no reload");
        assert_eq!(served_der(&tls), leaf_der(&a.0));

        std::fs::write(&f.config.cert, &b.0).unwrap();
        std::fs::write(&f.config.key, &b.1).unwrap();
        assert!(tls.reload(false).unwrap());
        assert_eq!(served_der(&tls), leaf_der(&b.0));

        // Half replaced: the new certificate with the old key.
        std::fs::write(&f.config.cert, &a.0).unwrap();
        assert!(matches!(tls.reload(false), Err(TlsError::Mismatch { .. })));
        assert_eq!(served_der(&tls), leaf_der(&b.0), "the last good pair stays");
        assert!(!tls.reload(false).unwrap(), "the same bad files are reported once");

        std::fs::write(&f.config.key, &a.1).unwrap();
        assert!(tls.reload(false).unwrap());
        assert_eq!(served_der(&tls), leaf_der(&a.0));

        std::fs::remove_file(&f.config.key).unwrap();
        assert!(matches!(tls.reload(true), Err(TlsError::Read { what: "key", .. })));
        assert_eq!(served_der(&tls), leaf_der(&a.0));
    }
}

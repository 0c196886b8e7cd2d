//! Built-in TLS (`serve --tls-cert FILE --tls-key FILE`), with rustls: bearer tokens
//! never travel in clear even without a terminating proxy. The pair is read at start
//! and again on SIGHUP ([`Tls::reload`]): connections made after a reload get the new
//! certificate, and a pair that does not load leaves the old one serving. The key file
//! is held to the same modes as the other secret files (`authority::files`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file holds no certificate, or is unreadable.
    #[error("--tls-cert {path}: {why}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The key file holds no private key, is unreadable, or does not match.
    #[error("--tls-key {path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The key file's mode lets others read or change it.
    #[error("--tls-key {0}")]
    Mode(#[from] crate::authority::files::UnsafeMode),
}

/// The served pair, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// TLS for the listener: the files and the pair read from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the pair (PEM: the certificate chain, leaf first, and its private key).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let pair = read_pair(&provider, cert, key)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Cert {
                path: cert.display().to_string(),
                why: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }))
    }

    /// Reads the files again; on success, new connections get the new pair. On failure
    /// the pair served so far stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let pair = read_pair(&provider, &self.cert, &self.key)?;
        if let Ok(mut current) = self.current.0.write() {
            *current = Arc::new(pair);
        }
        Ok(())
    }

    /// What performs the handshake.
    pub(super) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

fn read_pair(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |why: String| TlsError::Cert {
        path: cert.display().to_string(),
        why,
    };
    let key_error = |why: String| TlsError::Key {
        path: key.display().to_string(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in it".into()));
    }
    crate::authority::files::check_file(key)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| key_error(format!("no PEM private key in it ({e})")))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| key_error(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|_| key_error(format!("not the key of {}", cert.display())))?;
    Ok(pair)
}

//! What a database URL asks of TLS, and the rustls connector that verifies the server.

use std::sync::Arc;

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable database URL)".into(),
    }
}

/// What the URL asks of TLS: `sslmode=require`, and libpq's `sslrootcert=FILE` (the
/// CA to trust instead of the system's roots). tokio-postgres refuses options it does
/// not know, so `sslrootcert` is taken out of the URL here.
pub(super) struct TlsAsk {
    pub(super) url: String,
    pub(super) wanted: bool,
    pub(super) root_cert: Option<std::path::PathBuf>,
}

pub(super) fn tls_ask(url: &str) -> Result<TlsAsk, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let mut root_cert = None;
    let mut wanted = false;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| match k.as_ref() {
            "sslrootcert" => {
                root_cert = Some(std::path::PathBuf::from(v.as_ref()));
                None
            }
            "sslmode" => {
                wanted = v == "require";
                Some((k.into_owned(), v.into_owned()))
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
        // Form encoding writes a space as `+`, which the driver does not decode (an
        // `options=-c x=1` would reach the server as `-c+x=1`): a `+` of the value
        // itself was written `%2B`, so every `+` left is a space.
        let query = parsed.query().map(|q| q.replace('+', "%20"));
        parsed.set_query(query.as_deref());
    }
    if root_cert.is_some() && !wanted {
        return Err("sslrootcert needs sslmode=require".into());
    }
    Ok(TlsAsk {
        url: parsed.to_string(),
        wanted,
        root_cert,
    })
}

/// TLS with rustls, verifying the server against `root_cert` or the system's roots.
pub(super) fn rustls_connector(
    root_cert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("sslmode=require, but no trusted root certificate was found".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

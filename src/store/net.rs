//! What every database server backend needs for its network connection: the TLS client
//! configuration and its trusted roots. rustls with the ring provider (no OpenSSL, no aws-lc), the public web PKI
//! roots plus `database_ca_file`, and always a verified certificate and host name.

use crate::config::Server;
use crate::error::{Exit, fail};
use anyhow::Result;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// The TLS client configuration for `server`: public roots plus the certificates in
/// `database_ca_file`. Verification is rustls's own (chain and host name); there is no way to
/// turn it off.
pub fn tls_config(server: &Server) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &server.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            fail(
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Exit::NoPerm
                } else {
                    Exit::Config
                },
                format!(
                    "database_ca_file: cannot read {}: {e}; point it at the PEM certificate of the CA that signed the database server's certificate",
                    path.display()
                ),
            )
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "database_ca_file: {} is not a PEM certificate file ({e})",
                        path.display()
                    ),
                )
            })?;
            roots.add(cert).map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "database_ca_file: {} holds a certificate rustls cannot use as a root ({e})",
                        path.display()
                    ),
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(fail(
                Exit::Config,
                format!(
                    "database_ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("setting up TLS for {}: {e}", server.describe()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Words for a TLS failure, with what to do about it.
pub fn tls_advice(server: &Server, detail: &str) -> String {
    let hint = if detail.contains("UnknownIssuer") || detail.contains("unknown issuer") {
        "its certificate is not signed by a trusted CA; if the server uses a private CA, set database_ca_file to that CA's certificate (PEM)"
    } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
        "its certificate does not name the host in the database URL; connect by the name the certificate was issued for"
    } else if detail.contains("Expired") || detail.contains("expired") {
        "its certificate has expired; renew it on the server"
    } else if detail.contains("does not support TLS") {
        "the server does not offer TLS; enable ssl on the server, or connect over a unix socket or loopback address with sslmode=disable"
    } else {
        "check the server's certificate, the host name in the URL and database_ca_file"
    };
    format!(
        "TLS to {} failed ({}): {hint}",
        server.describe(),
        crate::ui::escape(detail)
    )
}

// ---- what the MariaDB/MySQL driver, which builds its own TLS setup, takes from here -----

/// typo in the path is not reported later as an untrusted server.
pub fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| {
        fail(
            Exit::Config,
            format!(
                "database_ca_file: cannot read {}: {e}; point it at the CA certificate (PEM) that signed the database server's certificate",
                path.display()
            ),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            fail(
                Exit::Config,
                format!(
                    "database_ca_file: {} is not a PEM certificate file ({e:?})",
                    path.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(fail(
            Exit::Config,
            format!(
                "database_ca_file: {} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The public webpki roots, plus the certificates of `database_ca_file`.
pub fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots.add(cert).map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "database_ca_file: a certificate in {} cannot be used as a root: {e}",
                        path.display()
                    ),
                )
            })?;
        }
    }
    Ok(roots)
}

/// Make ring the process's rustls provider. Drivers that build their own `ClientConfig` with
/// `ClientConfig::builder()` need a process default, and with more than one provider compiled
/// in (test builds) rustls cannot choose one itself.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A verifying rustls client configuration: the roots of [`root_store`], no client certificate.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(Exit::Software, format!("TLS setup failed: {e}")))?
        .with_root_certificates(root_store(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error under an error chain, if a TLS failure is what happened.
pub fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// A failed TLS handshake in words, with what to change.
pub fn tls_hint(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "its certificate is not signed by a trusted CA; if the server uses a private CA, set database_ca_file to that CA's certificate (PEM)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "its certificate is not valid for the host name in the database URL; use the name the certificate was issued for"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its certificate has expired; renew it on the server"
        }
        _ => {
            "check the server's certificate, the host name in the database URL and database_ca_file"
        }
    }
}

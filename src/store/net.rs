//! What every database server backend needs for its network connection: the TLS client
//! configuration. rustls with the ring provider (no OpenSSL, no aws-lc), the public web PKI
//! roots plus `database_ca_file`, and always a verified certificate and host name.

use crate::config::Server;
use crate::error::{Exit, fail};
use anyhow::Result;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
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

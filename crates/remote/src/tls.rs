//! The rustls configurations both sides build from `TlsConfig`'s PEM
//! material (the connecting side's transport is in `dial`, the accepting
//! side's in `server`).

use std::sync::Arc;

use crate::error::Error;

/// The accepting side's TLS: our certificate and key and, when clients
/// must authenticate, the CA their certificates must chain to. Errors are
/// plain text (the caller says which side).
pub(crate) fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    require_client_auth: bool,
) -> Result<rustls::ServerConfig, String> {
    let (chain, key) = identity(cert_pem, key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no TLS protocol version is available: {e}"))?;
    let builder = if require_client_auth {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider)
            .build()
            .map_err(|e| format!("the CA cannot verify clients: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|e| format!("the certificate and key cannot be used: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA PEM is malformed: {e}"))?;
        roots.add(cert).map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
    }
    Ok(roots)
}

type Identity = (Vec<rustls_pki_types::CertificateDer<'static>>, rustls_pki_types::PrivateKeyDer<'static>);

fn identity(cert_pem: &str, key_pem: &str) -> Result<Identity, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate PEM is malformed: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the private key PEM is malformed: {e}"))?;
    Ok((chain, key))
}

/// The rustls client configuration for `TlsConfig`'s PEM material: the CA
/// the server must chain to, our identity (for mutual TLS), HTTP/2 by ALPN.
pub(crate) fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<rustls::ClientConfig, Error> {
    let (chain, key) = identity(cert_pem, key_pem).map_err(Error::Tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("no TLS protocol version is available: {e}")))?
        .with_root_certificates(roots(ca_pem).map_err(Error::Tls)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::Tls(format!("the client side cannot use the certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

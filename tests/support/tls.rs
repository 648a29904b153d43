//! A throwaway PKI per test (a CA, a server certificate, a client
//! certificate) written to a temp folder, and the rustls server settings the
//! fake Nomad serves HTTPS with.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TempDir;

pub struct Pki {
    /// Removed with the `Pki`.
    pub dir: TempDir,
    /// PEM file of the CA (for NOMAD_CACERT).
    pub ca_pem: PathBuf,
    /// PEM client certificate and key signed by the CA (for mutual TLS).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
}

/// A CA and a server certificate for `server_names` (DNS names or IPs).
pub fn pki(tag: &str, server_names: &[&str]) -> Pki {
    let dir = TempDir::new(&format!("pki-{tag}"));
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let names: Vec<String> = server_names.iter().map(|s| (*s).to_owned()).collect();
    let server_cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["nomad-metrics".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();

    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let client_cert_path = dir.join("client.pem");
    std::fs::write(&client_cert_path, client_cert.pem()).unwrap();
    let client_key_path = dir.join("client-key.pem");
    std::fs::write(&client_key_path, client_key.serialize_pem()).unwrap();
    Pki {
        dir,
        ca_pem,
        client_cert: client_cert_path,
        client_key: client_key_path,
        ca_der: ca_cert.der().clone(),
        server_der: server_cert.der().clone(),
        server_key: server_key.serialize_der(),
    }
}

/// Server settings; with `require_client_cert`, only clients with a
/// certificate from the CA get in (Nomad's `verify_https_client`).
pub fn server_config(pki: &Pki, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone()));
    Arc::new(
        builder
            .with_single_cert(vec![pki.server_der.clone()], key)
            .unwrap(),
    )
}

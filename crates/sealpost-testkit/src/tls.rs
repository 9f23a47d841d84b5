//! TLS for tests: a certificate authority made on the spot, a server certificate it signs for
//! `localhost` and 127.0.0.1, both written as PEM files, and a client configuration that trusts
//! only that authority.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A test CA and a server identity it signed, on disk.
#[derive(Debug)]
pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA's certificate (PEM file): what a client is told to trust.
    pub ca_cert: PathBuf,
    /// The server's certificate chain and key (PEM files), for `--tls-cert` and `--tls-key`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    ca_pem: String,
}

impl TestCa {
    /// A fresh CA, and a certificate for `localhost` and 127.0.0.1 signed by it.
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("a server key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("the server certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        let ca_pem = ca.pem();
        TestCa {
            ca_cert: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            _dir: dir,
            ca_pem,
        }
    }

    /// A rustls client that trusts this CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("the CA PEM");
        roots.add(cert).expect("a root");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A TLS connection to `addr`, checked against this CA for the name `localhost`.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a DNS name");
        TlsConnector::from(self.client_config())
            .connect(name, tcp)
            .await
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

//! How the SDK reaches a server (PROTOCOL §7): `https://` and `wss://` through rustls (the ring
//! provider) with the web's roots or the CAs it is told to trust, plain `http://` and `ws://`
//! only to a loopback address unless the user opts in, and timeouts of its own. One
//! [`Transport`] makes both the HTTP client and the stream's TLS settings, so the two never
//! disagree about whom to trust.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Connecting (TCP and the TLS handshake) gives up after this long by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, answer included, gives up after this long by default. The stream's
/// connection is not a request: only its opening is bounded.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the SDK will not talk to a server the way it was asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Plain `http://` (or `ws://`) to an address that is not loopback, without the opt-in.
    #[error(
        "refusing to send credentials to {url} over plain HTTP: use https://, or, to accept that \
         anyone on the network can read and change the traffic, opt in explicitly for this server \
         (--insecure-http on the command line, Transport::allow_insecure_http in the SDK)"
    )]
    InsecureHttp { url: String },
    /// Not an `https://` or `http://` URL with a host.
    #[error("{url} is not a server URL ({why}): give one like https://sealpost.example.com")]
    BadUrl { url: String, why: String },
    /// The CA certificates the client was told to trust cannot be used.
    #[error("cannot use the CA certificate: {0}")]
    CaCert(String),
    /// The TLS settings or the HTTP client could not be made.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// How the SDK talks to a server: whom TLS trusts, whether plain HTTP may leave this machine,
/// and the timeouts. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use sealpost_client::Transport;
///
/// # fn f(ca_pem: &[u8]) -> Result<(), sealpost_client::TransportError> {
/// let transport = Transport::new()
///     .trust_ca_pem(ca_pem)?
///     .request_timeout(Duration::from_secs(60));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Transport {
    tls: Arc<ClientConfig>,
    /// Whether the CAs were given (instead of the web's roots), for Debug.
    own_roots: bool,
    insecure_http: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field(
                "roots",
                &if self.own_roots {
                    "the CAs given"
                } else {
                    "the web's"
                },
            )
            .field("insecure_http", &self.insecure_http)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for Transport {
    fn default() -> Transport {
        Transport::new()
    }
}

impl Transport {
    /// Trusts the web's roots (Mozilla's list, built in), refuses plain HTTP except to loopback,
    /// and uses [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new() -> Transport {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Transport {
            tls: Arc::new(client_config(roots)),
            own_roots: false,
            insecure_http: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks), and only them:
    /// the web's roots no longer are. For a server whose certificate a private CA signed.
    pub fn trust_ca_pem(mut self, pem: &[u8]) -> Result<Transport, TransportError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TransportError::CaCert(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TransportError::CaCert(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TransportError::CaCert(
                "no PEM CERTIFICATE block in it".to_owned(),
            ));
        }
        self.tls = Arc::new(client_config(roots));
        self.own_roots = true;
        Ok(self)
    }

    /// With `true`, allows plain `http://` and `ws://` to any address, not only loopback: the
    /// password's auth key and the session tokens then cross the network readable by anyone on
    /// the way. For a server on a network the user trusts, when they say so.
    pub fn allow_insecure_http(mut self, allow: bool) -> Transport {
        self.insecure_http = allow;
        self
    }

    /// How long connecting (TCP and TLS, and the stream's WebSocket upgrade) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Transport {
        self.connect_timeout = timeout;
        self
    }

    /// How long a whole request may take, and how long an opening stream waits for `ready`.
    pub fn request_timeout(mut self, timeout: Duration) -> Transport {
        self.request_timeout = timeout;
        self
    }

    /// Checks `url` against PROTOCOL §7 before anything is sent: `https://` anywhere, `http://`
    /// only to loopback unless allowed.
    pub fn check(&self, url: &str) -> Result<(), TransportError> {
        let bad = |why: &str| TransportError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if self.insecure_http || is_loopback(host) => Ok(()),
            "http" => Err(TransportError::InsecureHttp {
                url: url.to_owned(),
            }),
            _ => Err(bad("neither https:// nor http://")),
        }
    }

    /// The HTTP client: these TLS settings and timeouts, HTTP/1.1, no proxy from the environment
    /// (a proxy would see the traffic of plain HTTP).
    pub(crate) fn http_client(&self) -> Result<reqwest::Client, TransportError> {
        reqwest::Client::builder()
            .use_preconfigured_tls(ClientConfig::clone(&self.tls))
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .no_proxy()
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))
    }

    /// The TLS settings, for the stream's `wss://`.
    pub(crate) fn tls(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.tls)
    }

    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn request_timeout_value(&self) -> Duration {
        self.request_timeout
    }
}

/// TLS 1.2 and 1.3 with ring's algorithms, checking the server against `roots`.
#[expect(
    clippy::expect_used,
    reason = "ring's provider has cipher suites and key exchanges for both default versions, \
              the only thing this builder step checks"
)]
fn client_config(roots: RootCertStore) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// `localhost`, `127.0.0.0/8` or `::1` (PROTOCOL §7), as a URL's host spells it.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        let strict = Transport::new();
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "https://192.0.2.1",
            "https://sealpost.example.com/",
        ] {
            assert!(strict.check(url).is_ok(), "{url}");
        }
        for url in [
            "http://192.0.2.1:8080",
            "http://10.0.0.1",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.example.com",
            "http://sealpost.example.com",
        ] {
            let error = strict.check(url).unwrap_err();
            assert!(
                matches!(error, TransportError::InsecureHttp { .. }),
                "{url}"
            );
            assert!(error.to_string().contains("--insecure-http"), "{error}");
        }
        let relaxed = Transport::new().allow_insecure_http(true);
        assert!(relaxed.check("http://192.0.2.1:8080").is_ok());
    }

    #[test]
    fn other_urls_are_refused() {
        for url in [
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
            "https://",
            "ws://127.0.0.1",
        ] {
            let error = Transport::new().allow_insecure_http(true).check(url);
            assert!(
                matches!(error, Err(TransportError::BadUrl { .. })),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn a_ca_file_needs_a_certificate() {
        let error = Transport::new().trust_ca_pem(b"not a pem").unwrap_err();
        assert!(matches!(error, TransportError::CaCert(_)), "{error}");
    }

    #[test]
    fn the_http_client_takes_the_tls_settings() {
        Transport::new().http_client().unwrap();
    }
}

//! Connections: the accept loop in front of the router. Each connection is served by hyper's own
//! HTTP/1 server with a deadline on reading a request's header, optionally behind TLS (rustls),
//! and counted against `--max-connections`, WebSocket streams included (a stream keeps its
//! connection's permit until it closes). Past the cap a plain connection is answered 503
//! `overloaded` at once and closed; nothing past the cap is read. Shutdown stops accepting, then
//! waits for the connections in flight (streams are told to close by the hub).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

/// How connections are taken.
#[derive(Clone)]
pub(crate) struct Connections {
    pub tls: Option<TlsAcceptor>,
    pub header_timeout: Duration,
    /// `--max-connections` slots; all of them free again means every connection has ended.
    pub slots: Arc<Semaphore>,
    pub max: u32,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("tls", &self.tls.is_some())
            .field("header_timeout", &self.header_timeout)
            .field("free_slots", &self.slots.available_permits())
            .finish()
    }
}

/// A connection's place under `--max-connections`, in each request's extensions: the stream
/// handler keeps it for as long as its WebSocket lives.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code, reason = "held, not read")] Arc<OwnedSemaphorePermit>);

/// What a connection past the cap is told before it is closed.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections: try again in a moment\"}}";

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not make a TLS identity")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts and serves connections until `shutdown` resolves, then waits for those in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    connections: Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or a connection reset before it was taken: the
                // listener itself is fine. Pause briefly rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = Arc::clone(&connections.slots).try_acquire_owned() else {
            tokio::spawn(refuse(tcp, connections.tls.is_some()));
            continue;
        };
        let slot = ConnectionSlot(Arc::new(permit));
        let router = router.clone();
        let connections = connections.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match &connections.tls {
                None => connection(tcp, peer, router, slot, &connections, stop).await,
                Some(tls) => {
                    // The handshake gets the header deadline too: a client that stalls in it
                    // holds a slot no longer than one that stalls in its header.
                    match tokio::time::timeout(connections.header_timeout, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, router, slot, &connections, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection finishes what it is doing and closes; streams close when the hub tells
    // them to. When every slot is free again, nothing is left.
    let _ = stopping.send(true);
    let _ = connections.slots.acquire_many(connections.max).await;
    Ok(())
}

/// Serves one connection: HTTP/1.1 with keep-alive and upgrades (the stream), the header
/// deadline, and the client's address and the connection's slot in every request.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    slot: ConnectionSlot,
    connections: &Connections,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(slot.clone());
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(connections.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopped(&mut stop) => {
            // Finish the request in flight, if any, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Resolves once the server is stopping (or its accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A connection past the cap: a plain one is told 503 (without reading what it sent) and closed;
/// a TLS one is closed (answering would cost a handshake, which is what the cap saves).
async fn refuse(mut tcp: TcpStream, tls: bool) {
    if !tls {
        let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(OVERLOADED)).await;
        let _ = tcp.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_answer_is_well_formed() {
        let text = std::str::from_utf8(OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            json["error"]["code"],
            sealpost_proto::error_code::OVERLOADED
        );
    }
}

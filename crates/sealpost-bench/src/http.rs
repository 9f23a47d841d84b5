//! The timed path's HTTP client: one keep-alive HTTP/1.1 connection per worker on hyper's
//! low-level `client::conn` API, with requests built before the clock starts. No pool, no
//! redirects, no JSON: reqwest's conveniences cost CPU that the server under test would miss on a
//! 2-core machine.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How much of an unexpected answer an error sample quotes.
const EXCERPT: usize = 160;

/// Where the server is: `http://host:port`, resolved once.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    host: HeaderValue,
    /// `ws://host:port`, for streams.
    pub ws_base: String,
}

impl Target {
    /// Parses and resolves a base URL (`http://` only, no path).
    pub async fn resolve(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("{url:?}: only http:// base URLs are supported"))?;
        if rest.contains('/') {
            anyhow::bail!("{url:?}: give the base URL without a path");
        }
        let authority = if rest.contains(':') {
            rest.to_owned()
        } else {
            format!("{rest}:80")
        };
        let addr = tokio::net::lookup_host(&authority)
            .await?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{url:?} does not resolve"))?;
        Ok(Target {
            addr,
            host: HeaderValue::from_str(rest)?,
            ws_base: format!("ws://{rest}"),
        })
    }
}

/// A request, built once and sent many times (cloning shares the bytes).
#[derive(Debug, Clone)]
pub struct Req {
    method: Method,
    uri: Uri,
    auth: Option<HeaderValue>,
    body: Option<Bytes>,
}

impl Req {
    /// `GET path`, with a bearer token when one is given.
    pub fn get(path: &str, token: Option<&str>) -> anyhow::Result<Req> {
        Ok(Req {
            method: Method::GET,
            uri: path.parse()?,
            auth: token.map(bearer).transpose()?,
            body: None,
        })
    }

    /// `POST path` with a JSON body, with a bearer token when one is given.
    pub fn post_json(path: &str, token: Option<&str>, body: Vec<u8>) -> anyhow::Result<Req> {
        Ok(Req {
            method: Method::POST,
            uri: path.parse()?,
            auth: token.map(bearer).transpose()?,
            body: Some(Bytes::from(body)),
        })
    }
}

fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Why a request did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: connection refused or reset, …
    Transport(String),
    /// A non-2xx answer, with the start of its body.
    Status(u16, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(e) => write!(f, "transport: {e}"),
            Failure::Status(status, body) => write!(f, "{status}: {body}"),
        }
    }
}

/// One keep-alive connection; reconnects by itself after a transport error.
#[derive(Debug)]
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection that opens on first use.
    pub fn new(target: &Target) -> Conn {
        Conn {
            target: target.clone(),
            sender: None,
        }
    }

    /// Opens the connection now, so that connecting is not timed.
    pub async fn open(&mut self) -> Result<(), Failure> {
        if self.sender.is_none() {
            self.sender = Some(connect(&self.target).await?);
        }
        Ok(())
    }

    /// Sends `req` and reads the whole answer: the body of a 2xx, or what went wrong.
    pub async fn send(&mut self, req: &Req) -> Result<Bytes, Failure> {
        let result = self.exchange(req).await;
        if matches!(result, Err(Failure::Transport(_))) {
            // Start over on a fresh connection next time.
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Req) -> Result<Bytes, Failure> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(connect(&self.target).await?),
        };
        sender.ready().await.map_err(transport)?;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.uri.clone())
            .header(HOST, self.target.host.clone());
        if let Some(auth) = &req.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let body = match &req.body {
            Some(body) => {
                builder =
                    builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Full::new(body.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            Err(Failure::Status(status.as_u16(), excerpt(&body)))
        }
    }
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = TcpStream::connect(target.addr).await.map_err(transport)?;
    stream.set_nodelay(true).map_err(transport)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(transport)?;
    tokio::spawn(async move {
        // Ends when the server closes or the sender is dropped; errors surface on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

fn transport(e: impl std::fmt::Display) -> Failure {
    Failure::Transport(e.to_string())
}

/// The start of a body, on one line, for an error sample.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(b"{\"a\":1}\n"), "{\"a\":1} ");
        let long = vec![b'x'; 500];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT + 1);
    }

    #[tokio::test]
    async fn base_urls() {
        let t = Target::resolve("http://127.0.0.1:8080/").await.unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.ws_base, "ws://127.0.0.1:8080");
        assert!(Target::resolve("https://127.0.0.1").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:8080/v1").await.is_err());
    }
}

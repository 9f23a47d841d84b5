//! The Sealpost server: an HTTP + WebSocket API (axum on tokio) that stores and relays only
//! ciphertext (PROTOCOL.md §4, §4.3).
//!
//! Layout, by domain:
//! - [`config`]: `sealpost serve` options (flags, environment, defaults), bounds checked by clap.
//! - `accounts`, `auth`, `users`, `messages`, `stream`, `ops`: each resource's routes, wire
//!   types, handlers; `router()` in each.
//! - [`store`]: the only module that knows SQL (its pools are private); SQLite and PostgreSQL
//!   behind one interface, a file per resource.
//! - `error`: the one error type, and the only place that writes error responses.
//! - `bearer`: who the caller is (access tokens, live sessions), and revoking a session.
//! - `extract`: strict JSON bodies in PROTOCOL §4's fault order, and the client's address.
//! - `batch` (group commit of sends, logins and refreshes), [`hub`] (push and revocation, carried
//!   between nodes by `LISTEN/NOTIFY` or by `nats`), [`pages`] (the newest-page cache), `wire`
//!   (hand-written JSON of mailbox entries).
//! - [`tokens`], `limits`, `metrics`, `state`, `validate`, [`clock`]: what the handlers share.
//! - [`retention`]: `--retention-days`, deleting old entries in the background.
//! - `fuzzing` (feature `fuzzing`, off by default): pure entry points for the fuzz targets in
//!   `fuzz/`.
//!
//! [`Server`] is the one way to start a server: `sealpost serve`, `sealpost demo` and every test
//! bind it (tests on port 0) and run it until a shutdown future resolves. [`serve`] is
//! `sealpost serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

mod accounts;
mod auth;
mod batch;
mod bearer;
pub mod clock;
pub mod config;
mod error;
mod extract;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hub;
pub mod keyfile;
mod limits;
mod listen;
mod messages;
mod metrics;
mod nats;
mod openapi;
mod ops;
pub mod pages;
pub mod retention;
mod state;
pub mod store;
mod stream;
pub mod tokens;
mod users;
mod validate;
mod web;
mod wire;

#[cfg(test)]
mod redaction_tests;

pub use config::ServeArgs;
pub use error::ApiError;
pub use state::AppState;
pub use store::Store;

#[derive(OpenApi)]
#[openapi(
    info(title = "Sealpost API", version = "1", description = "End-to-end encrypted messaging: the server stores and relays only ciphertext. The normative contract is PROTOCOL.md."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 description of this API, generated from the routes themselves.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json")))]
async fn openapi(Extension(doc): Extension<Arc<String>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
}

/// The router and the OpenAPI document, built from the same route list so they cannot drift.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(messages::router())
        .merge(ops::router())
        .merge(stream::router())
        .routes(utoipa_axum::routes!(openapi))
        .split_for_parts()
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let doc = Arc::new(openapi::finish(&doc, state.limits.max_ciphertext).to_string());
    let in_flight = Arc::new(Semaphore::new(state.config.max_in_flight));
    router
        .fallback(web::page)
        .route_layer(middleware::from_fn(tag_route))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::same_origin,
        ))
        .layer(Extension(doc))
        .layer(middleware::from_fn_with_state(
            (state.clone(), in_flight),
            observe,
        ))
        .with_state(state)
}

/// The matched route pattern, carried to [`observe`] on the response.
#[derive(Clone)]
struct Route(MatchedPath);

async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Sheds load past the in-flight bound, and counts and logs every request: method, route
/// pattern, status, latency. Never the URL's values, a header, or a body.
async fn observe(
    State((state, in_flight)): State<(AppState, Arc<Semaphore>)>,
    req: Request,
    next: Next,
) -> Response {
    // A request counts against the in-flight bound once its body has arrived: a client that
    // trickles a body in holds a connection (under --max-connections, until --body-timeout), not
    // one of the slots that every other request needs.
    let req = extract::buffer_body(&state, req).await;
    let Ok(_permit) = in_flight.try_acquire() else {
        state
            .metrics
            .overloaded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return ApiError::Overloaded.into_response();
    };
    let started = Instant::now();
    let method = req.method().clone();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("<unmatched>", |r| r.0.as_str());
    let status = response.status().as_u16();
    state.metrics.observe(&method, route, status, elapsed);
    tracing::info!(method = %method, route, status, latency_us = elapsed.as_micros() as u64, "request");
    response
}

/// A server bound to its address, with its database open and migrated: [`Server::run`] serves
/// until a shutdown future resolves, [`Server::spawn`] does so on a task.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// `--metrics-listen`'s own listener, when given.
    metrics: Option<TcpListener>,
    connections: listen::Connections,
    state: AppState,
}

impl Server {
    /// Opens (and migrates) `args.database` and binds `args.listen` (port 0 picks a free port).
    pub async fn bind(args: ServeArgs) -> anyhow::Result<Server> {
        let store = Store::connect(args.database.as_str(), args.db_pool).await?;
        Self::bind_with_store(args, store).await
    }

    /// As [`Server::bind`], over a store the caller opened.
    pub async fn bind_with_store(args: ServeArgs, store: Store) -> anyhow::Result<Server> {
        let listen = args.listen;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(listen::tls_acceptor(cert, key)?),
            _ => None,
        };
        let connections = listen::Connections {
            tls,
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
            slots: Arc::new(Semaphore::new(args.max_connections as usize)),
            max: args.max_connections,
        };
        let metrics = match args.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {address} for metrics: {e}"))?,
            ),
            None => None,
        };
        let state = AppState::with_store(args, store).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        Ok(Server {
            listener,
            metrics,
            connections,
            state,
        })
    }

    /// Whether it speaks TLS itself.
    pub fn tls(&self) -> bool {
        self.connections.tls.is_some()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on when `--metrics-listen` is given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// What its handlers share (the store, the configuration, the hub).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then tells streams to close (1001) and finishes the
    /// requests in flight. On PostgreSQL, other nodes' stores and revocations reach this node's
    /// streams through the store's `LISTEN` while it runs.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Server {
            listener,
            metrics,
            connections,
            state,
        } = self;
        // Metrics on their own address end with the process; they hold no request of a client.
        let metrics = metrics.map(|listener| {
            let router = ops::metrics_only(state.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            })
        });
        let hub = Arc::clone(&state.hub);
        let store = state.store.clone();
        let feed = match state.nats.clone() {
            // NATS carries the wake-ups; the poll repairs the ones lost.
            Some(link) => {
                let every = std::time::Duration::from_millis(state.config.hub_poll_ms);
                let (h1, h2) = (Arc::clone(&hub), Arc::clone(&hub));
                tokio::spawn(async move {
                    tokio::join!(link.feed(h1), nats::poll(store, h2, every));
                })
            }
            None => tokio::spawn({
                let hub = Arc::clone(&hub);
                async move { store.feed(hub).await }
            }),
        };
        let retention = state.config.retention_days.map(|days| {
            let every = std::time::Duration::from_secs(state.config.retention_interval);
            retention::Retention::new(&state, days, clock::Clock::system()).spawn(every)
        });
        let result = listen::serve(listener, app(state), connections, async move {
            shutdown.await;
            // Streams are not requests in flight: tell them to close (1001).
            hub.send(hub::Control::Shutdown);
        })
        .await;
        feed.abort();
        let _ = feed.await;
        if let Some(retention) = retention {
            retention.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }

    /// Runs on a task of the current runtime; the handle stops it.
    pub fn spawn(self) -> std::io::Result<RunningServer> {
        let addr = self.local_addr()?;
        let metrics_addr = self.metrics_addr();
        let state = self.state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            metrics_addr,
            state,
            stop: std::sync::Mutex::new(Some(stop)),
            task: std::sync::Mutex::new(Some(task)),
        })
    }
}

/// A server running on a task (see [`Server::spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: AppState,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when `--metrics-listen` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Tells the server to shut down (as SIGTERM would), without waiting.
    pub fn begin_shutdown(&self) {
        if let Some(stop) = sealpost_proto::sync::lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down, waits (up to `grace`) for the requests in flight, and closes the database.
    pub async fn stop(&self, grace: std::time::Duration) -> std::io::Result<()> {
        self.begin_shutdown();
        let task = sealpost_proto::sync::lock(&self.task).take();
        let result = match task {
            Some(task) => match tokio::time::timeout(grace, task).await {
                Ok(Ok(result)) => result,
                Ok(Err(join)) => Err(std::io::Error::other(join)),
                Err(_) => Err(std::io::Error::other("the server did not stop in time")),
            },
            None => Ok(()),
        };
        self.state.store.close().await;
        result
    }
}

/// `sealpost serve`: logs, connects, migrates, listens, and stops cleanly on SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("bad --log filter {:?}: {e}", args.log))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let server = Server::bind(args).await?;
    let store = server.state().store.clone();
    let scheme = if server.tls() { "https" } else { "http" };
    tracing::info!(address = %server.local_addr()?, scheme, backend = store.backend().name(), "sealpost is listening");
    server.run(shutdown_signal()).await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

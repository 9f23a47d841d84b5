//! The Sealpost server: an HTTP + WebSocket API (axum on tokio) that stores and relays only
//! ciphertext (PROTOCOL.md §4, §4.3).
//!
//! Layout, by domain:
//! - [`config`]: `sealpost serve` options (flags, environment, defaults).
//! - `accounts`, `auth`, `users`, `messages`, `ops`: each resource's routes, wire types,
//!   handlers; `router()` in each.
//! - `store`: the only module that knows SQL; SQLite and PostgreSQL behind one interface.
//! - `error`: the one error type, and the only place that writes error responses.
//! - `extract`: strict JSON bodies and bearer authentication, in PROTOCOL §4's fault order.
//! - `tokens`, `limits`, `metrics`, `state`, `validate`: the pieces the handlers share.
//!
//! [`run`] serves on a listener the caller bound (tests bind port 0) until `shutdown` resolves;
//! [`serve`] is `sealpost serve`.

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
pub mod config;
mod error;
mod extract;
pub mod hub;
mod limits;
mod messages;
mod metrics;
mod ops;
pub mod pages;
mod state;
pub mod store;
mod stream;
pub mod tokens;
mod users;
mod validate;
mod wire;

pub use config::ServeArgs;
pub use error::ApiError;
pub use state::AppState;

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
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".to_owned()));
    let in_flight = Arc::new(Semaphore::new(state.config.max_in_flight));
    router
        .fallback(|| async { ApiError::not_found("no such endpoint; see /v1/openapi.json") })
        .route_layer(middleware::from_fn(tag_route))
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

/// Serves `state` on `listener` until `shutdown` resolves, then finishes what is in flight.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = Arc::clone(&state.hub);
    // On PostgreSQL, other nodes' stores and revocations reach this node's streams by
    // LISTEN/NOTIFY.
    let listener_task = match &state.store {
        store::Store::Postgres(pool) => {
            Some(tokio::spawn(hub::listen(pool.clone(), Arc::clone(&hub))))
        }
        store::Store::Sqlite(..) => None,
    };
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Streams are not requests in flight: tell them to close (1001).
            hub.send(hub::Control::Shutdown);
        })
        .await;
    if let Some(task) = listener_task {
        task.abort();
        let _ = task.await;
    }
    result
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
    let listen = args.listen;
    let state = AppState::new(args).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, backend = state.store.backend(), "sealpost is listening");
    let store = state.store.clone();
    run(listener, state, shutdown_signal()).await?;
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

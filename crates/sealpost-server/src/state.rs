//! `AppState`: what every handler shares (store, configuration, keys, limits, metrics), cloned
//! cheaply into each. It holds state and does no work of its own.

use std::sync::Arc;

use anyhow::Context as _;

use crate::batch::Writer;
use crate::config::ServeArgs;
use crate::hub::Hub;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::nats::NatsLink;
use crate::pages::PageCache;
use crate::store::{Backend, Store};
use crate::tokens::{JwtKey, PreloginKey};

/// Byte limits derived from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest ciphertext, decoded.
    pub max_ciphertext: usize,
    /// Longest base64url text that can decode to at most `max_ciphertext` bytes.
    pub max_ciphertext_encoded: usize,
    /// Largest request body: two ciphertexts (a message and its sender copy) and the rest.
    pub max_body: usize,
}

impl Limits {
    pub(crate) fn new(max_ciphertext: usize) -> Self {
        let max_ciphertext_encoded = (max_ciphertext * 4).div_ceil(3);
        Limits {
            max_ciphertext,
            max_ciphertext_encoded,
            max_body: 2 * max_ciphertext_encoded + 16 * 1024,
        }
    }
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServeArgs>,
    pub limits: Limits,
    pub jwt: Arc<JwtKey>,
    pub prelogin_key: Arc<PreloginKey>,
    pub rate: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
    /// Group commit of sends, logins and refreshes.
    pub writer: Writer,
    /// The NATS hub, when `--hub` names one (else `LISTEN/NOTIFY` on PostgreSQL).
    pub nats: Option<NatsLink>,
    /// Each mailbox's newest page.
    pub pages: Arc<PageCache>,
}

impl AppState {
    /// Connects to the database and loads (or makes) the server secrets.
    pub async fn new(config: ServeArgs) -> anyhow::Result<AppState> {
        let store = Store::connect(config.database.as_str(), config.db_pool).await?;
        Self::with_store(config, store).await
    }

    /// Builds the state over an open store.
    pub async fn with_store(config: ServeArgs, store: Store) -> anyhow::Result<AppState> {
        let secrets = crate::keyfile::load(&config, &store).await?;
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::default());
        let (store, nats) = match &config.hub {
            None => (store, None),
            Some(url) => {
                if store.backend() != Backend::Postgres {
                    anyhow::bail!(
                        "--hub is for several nodes on PostgreSQL; SQLite has one node, whose \
                         streams need no hub"
                    );
                }
                let link =
                    NatsLink::connect(url.as_str(), &config.hub_subject_prefix, &hub).await?;
                hub.set_outbound(link.publisher());
                // The wake-ups go through NATS after each commit: no NOTIFY in any transaction.
                (store.without_notify(), Some(link))
            }
        };
        Ok(AppState {
            limits: Limits::new(config.max_ciphertext),
            rate: Arc::new(RateLimiter::new(&config)),
            metrics: Arc::clone(&metrics),
            hub,
            nats,
            writer: Writer::spawn(
                store.clone(),
                Arc::clone(&metrics),
                config.mailbox_max_entries,
            )
            .context("cannot start the writer")?,
            pages: Arc::new(PageCache::new(config.page_cache_mib << 20)),
            jwt: Arc::new(JwtKey::new(secrets.jwt.to_vec())),
            prelogin_key: Arc::new(PreloginKey::new(secrets.prelogin.to_vec())),
            config: Arc::new(config),
            store,
        })
    }
}

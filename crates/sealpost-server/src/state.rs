//! `AppState`: what every handler shares (store, configuration, keys, limits, metrics), cloned
//! cheaply into each.

use std::sync::Arc;

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::batch::SendBatcher;
use crate::config::ServeArgs;
use crate::error::ApiError;
use crate::extract::Auth;
use crate::hub::Hub;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::pages::PageCache;
use crate::store::{now_ms, Store};
use crate::tokens::{random_secret, JwtKey};

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
    fn new(max_ciphertext: usize) -> Self {
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
    /// Group commit of sends.
    pub batcher: SendBatcher,
    /// Each mailbox's newest page.
    pub pages: Arc<PageCache>,
}

/// The server secret behind the fake `prelogin` salts of unknown emails.
pub struct PreloginKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for PreloginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreloginKey(<redacted>)")
    }
}

impl PreloginKey {
    /// A stable salt for an email: HMAC-SHA256(secret, email), first 16 bytes.
    pub fn fake_salt(&self, email: &str) -> Vec<u8> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of every length"),
        };
        mac.update(b"sealpost/v1/prelogin-salt\0");
        mac.update(email.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

impl AppState {
    /// Connects to the database and loads (or makes) the server secrets.
    pub async fn new(config: ServeArgs) -> anyhow::Result<AppState> {
        let store = Store::connect(&config.database, config.db_pool).await?;
        Self::with_store(config, store).await
    }

    /// Builds the state over an open store.
    pub async fn with_store(config: ServeArgs, store: Store) -> anyhow::Result<AppState> {
        let jwt_secret = match &config.jwt_secret {
            Some(hex) => {
                let bytes = decode_hex(hex).context("--jwt-secret must be hex")?;
                anyhow::ensure!(
                    bytes.len() >= 32,
                    "--jwt-secret must be at least 32 bytes (64 hex digits)"
                );
                bytes
            }
            None => store.server_secret("jwt", random_secret()).await?,
        };
        let prelogin = store.server_secret("prelogin", random_secret()).await?;
        anyhow::ensure!(
            (crate::config::kdf_bounds::MIN_OPS..=crate::config::kdf_bounds::MAX_OPS).contains(&config.kdf_opslimit)
                && (crate::config::kdf_bounds::MIN_MEM..=crate::config::kdf_bounds::MAX_MEM)
                    .contains(&config.kdf_memlimit),
            "the default kdf limits must lie within opslimit 2..=10 and memlimit 67108864..=1073741824"
        );
        let metrics = Arc::new(Metrics::default());
        Ok(AppState {
            limits: Limits::new(config.max_ciphertext),
            rate: Arc::new(RateLimiter::new(&config)),
            metrics: Arc::clone(&metrics),
            hub: Arc::new(Hub::default()),
            batcher: SendBatcher::spawn(store.clone(), Arc::clone(&metrics))
                .context("cannot start the send writer")?,
            pages: Arc::new(PageCache::new(config.page_cache_mib << 20)),
            jwt: Arc::new(JwtKey::new(jwt_secret)),
            prelogin_key: Arc::new(PreloginKey(Zeroizing::new(prelogin))),
            config: Arc::new(config),
            store,
        })
    }

    /// Checks an access token and that its session is live.
    pub async fn authenticate(&self, token: &str) -> Result<Auth, ApiError> {
        let now = now_ms();
        let claims = self.jwt.verify(token, now / 1000).ok_or_else(|| {
            ApiError::unauthenticated(
                "the access token is invalid or expired: refresh it or sign in",
            )
        })?;
        if !self.hub.session_cached(claims.sid, claims.sub) {
            let generation = self.hub.session_generation();
            if !self.store.session_live(claims.sid, claims.sub, now).await? {
                return Err(ApiError::unauthenticated(
                    "this session has ended: sign in again",
                ));
            }
            self.hub.cache_session(claims.sid, claims.sub, generation);
        }
        Ok(Auth {
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }
}

impl AppState {
    /// Revokes one session of a user, and closes its streams on every node; `false` if the user
    /// has no such live session.
    pub async fn revoke_session(
        &self,
        user_id: uuid::Uuid,
        session_id: uuid::Uuid,
    ) -> Result<bool, ApiError> {
        let revoked = self
            .store
            .revoke_session(user_id, session_id, now_ms())
            .await?;
        if revoked {
            self.hub
                .send(crate::hub::Control::SessionRevoked(session_id));
        }
        Ok(revoked)
    }
}

fn decode_hex(hex: &str) -> anyhow::Result<Vec<u8>> {
    let hex = hex.trim();
    anyhow::ensure!(hex.len() % 2 == 0, "odd number of hex digits");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).context("not a hex digit"))
        .collect()
}

//! `sealpost serve` options: every knob has a flag, an environment variable and a default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Options of `sealpost serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEALPOST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "SEALPOST_DATABASE_URL",
        default_value = "sqlite://sealpost.db"
    )]
    pub database: String,

    /// JWT signing secret as hex (at least 32 bytes). By default one is generated on first start
    /// and kept in the database, so that every node on one database agrees.
    #[arg(long, env = "SEALPOST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Access token lifetime, in seconds.
    #[arg(long, env = "SEALPOST_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: u64,

    /// Refresh token lifetime (idle), in seconds.
    #[arg(long, env = "SEALPOST_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: u64,

    /// Largest accepted ciphertext, in decoded bytes (larger: 413).
    #[arg(long, env = "SEALPOST_MAX_CIPHERTEXT", default_value_t = 65_536)]
    pub max_ciphertext: usize,

    /// Default Argon2id opslimit that prelogin hands out (2..=10).
    #[arg(long, env = "SEALPOST_KDF_OPSLIMIT", default_value_t = 3)]
    pub kdf_opslimit: u64,

    /// Default Argon2id memlimit in bytes that prelogin hands out (67108864..=1073741824).
    #[arg(long, env = "SEALPOST_KDF_MEMLIMIT", default_value_t = 268_435_456)]
    pub kdf_memlimit: u64,

    /// Requests per minute per client address on each of registration, prelogin, login, refresh
    /// and recovery.
    #[arg(long, env = "SEALPOST_RATE_PER_ADDRESS", default_value_t = 120)]
    pub rate_per_address: u32,

    /// Registrations and prelogins per minute per email.
    #[arg(long, env = "SEALPOST_RATE_PER_EMAIL", default_value_t = 30)]
    pub rate_per_email: u32,

    /// Failed logins (or recoveries) per account per five minutes.
    #[arg(long, env = "SEALPOST_FAILED_LOGINS", default_value_t = 10)]
    pub failed_logins: u32,

    /// Requests in flight at once; beyond it the server answers 503 at once.
    #[arg(long, env = "SEALPOST_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Database connections per node.
    #[arg(long, env = "SEALPOST_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// MiB of memory for the newest-page cache (each mailbox's newest page, served only after
    /// the database confirms the mailbox is unchanged); 0 turns it off.
    #[arg(long, env = "SEALPOST_PAGE_CACHE_MIB", default_value_t = 16)]
    pub page_cache_mib: usize,

    /// Seconds a new stream has to send its `auth` frame.
    #[arg(long, env = "SEALPOST_STREAM_AUTH_TIMEOUT", default_value_t = 10)]
    pub stream_auth_timeout: u64,

    /// Seconds between WebSocket pings.
    #[arg(long, env = "SEALPOST_STREAM_PING_INTERVAL", default_value_t = 20)]
    pub stream_ping_interval: u64,

    /// Frames a stream may have queued for its client; a client that leaves the queue full for
    /// --stream-stall-ms is cut off (4409), so memory stays bounded whatever clients do.
    #[arg(long, env = "SEALPOST_STREAM_BUFFER", default_value_t = 256)]
    pub stream_buffer: usize,

    /// Milliseconds a stream's queue may stay full before its client is cut off (4409).
    #[arg(long, env = "SEALPOST_STREAM_STALL_MS", default_value_t = 10_000)]
    pub stream_stall_ms: u64,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `sealpost_server=debug`.
    #[arg(long, env = "SEALPOST_LOG", default_value = "info")]
    pub log: String,
}

impl ServeArgs {
    /// The defaults, as `sealpost serve` with no arguments would use them (tests start from this).
    pub fn defaults() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::parse_from(["sealpost"]).args
    }

    pub(crate) fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl)
    }
}

/// The KDF limits of PROTOCOL §2.1.
pub mod kdf_bounds {
    pub const MIN_OPS: u64 = 2;
    pub const MAX_OPS: u64 = 10;
    pub const MIN_MEM: u64 = 67_108_864;
    pub const MAX_MEM: u64 = 1_073_741_824;
}

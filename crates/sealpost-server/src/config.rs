//! `sealpost serve` options: every knob has a flag, an environment variable and a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use zeroize::Zeroizing;

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
        default_value = "sqlite://sealpost.db",
        hide_env_values = true
    )]
    pub database: DatabaseUrl,

    /// The file that holds the server's secrets (the token-signing key and the prelogin secret),
    /// outside the database so that a copy of it cannot mint tokens. Made on first start, mode
    /// 0600. Default on SQLite: the database's path with `.secrets` added; on PostgreSQL give it
    /// (the same file on every node) or both SEALPOST_JWT_SECRET and SEALPOST_PRELOGIN_SECRET.
    #[arg(long, env = "SEALPOST_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,

    /// JWT signing secret as hex (at least 32 bytes); overrides the secrets file's.
    #[arg(long, env = "SEALPOST_JWT_SECRET", hide_env_values = true, value_parser = HexSecret::parse)]
    pub jwt_secret: Option<HexSecret>,

    /// The secret behind prelogin's answers for unknown emails, as hex (at least 32 bytes);
    /// overrides the secrets file's.
    #[arg(long, env = "SEALPOST_PRELOGIN_SECRET", hide_env_values = true, value_parser = HexSecret::parse)]
    pub prelogin_secret: Option<HexSecret>,

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
    #[arg(long, env = "SEALPOST_KDF_OPSLIMIT", default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(kdf_bounds::MIN_OPS..=kdf_bounds::MAX_OPS))]
    pub kdf_opslimit: u64,

    /// Default Argon2id memlimit in bytes that prelogin hands out (67108864..=1073741824).
    #[arg(long, env = "SEALPOST_KDF_MEMLIMIT", default_value_t = 268_435_456,
        value_parser = clap::value_parser!(u64).range(kdf_bounds::MIN_MEM..=kdf_bounds::MAX_MEM))]
    pub kdf_memlimit: u64,

    /// Requests per minute per client address on each of registration, prelogin, login, refresh
    /// and recovery.
    #[arg(long, env = "SEALPOST_RATE_PER_ADDRESS", default_value_t = 120)]
    pub rate_per_address: u32,

    /// Registrations and prelogins per minute per email.
    #[arg(long, env = "SEALPOST_RATE_PER_EMAIL", default_value_t = 30)]
    pub rate_per_email: u32,

    /// Failed logins (or recoveries) per account and client network (an IPv4 address or an IPv6
    /// /64) per five minutes.
    #[arg(long, env = "SEALPOST_FAILED_LOGINS", default_value_t = 10)]
    pub failed_logins: u32,

    /// Failed logins (or recoveries) per account from all networks together per five minutes;
    /// past it only networks that signed in to the account lately may still try.
    #[arg(
        long,
        env = "SEALPOST_FAILED_LOGINS_PER_ACCOUNT",
        default_value_t = 100
    )]
    pub failed_logins_per_account: u32,

    /// Lookups (`GET /v1/users…`) per account per minute.
    #[arg(long, env = "SEALPOST_RATE_LOOKUPS", default_value_t = 600)]
    pub rate_lookups: u32,

    /// Sends per account per minute.
    #[arg(long, env = "SEALPOST_RATE_SENDS", default_value_t = 3000)]
    pub rate_sends: u32,

    /// Entries a mailbox may hold; a send beyond it is refused (429, field `to`).
    #[arg(
        long,
        env = "SEALPOST_MAILBOX_MAX_ENTRIES",
        default_value_t = 1_000_000
    )]
    pub mailbox_max_entries: i64,

    /// Delete mailbox entries older than this many days, in small batches in the background
    /// (each deletion raises its mailbox's version, as a client's does). Off unless given.
    #[arg(long, env = "SEALPOST_RETENTION_DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// Seconds between two retention passes (the first runs at start).
    #[arg(long, env = "SEALPOST_RETENTION_INTERVAL", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_interval: u64,

    /// Keys the rate limiter keeps at most (about 100 bytes each); past it the oldest goes.
    #[arg(long, env = "SEALPOST_RATE_LIMIT_KEYS", default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub rate_limit_keys: u64,

    /// Proxies (CIDRs, comma-separated) whose `X-Forwarded-For` names the client; nobody else's
    /// is believed.
    #[arg(long, env = "SEALPOST_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// TLS certificate chain (PEM): with --tls-key, the server speaks HTTPS and WSS itself.
    /// Without them it speaks plain HTTP, for a TLS-terminating proxy in front (PROTOCOL §7).
    #[arg(long, env = "SEALPOST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "SEALPOST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a client has to send a request's header (and, with TLS, to finish its handshake);
    /// slower ones are cut off.
    #[arg(long, env = "SEALPOST_HEADER_TIMEOUT", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,

    /// Seconds a client has to send a request's body once its header has arrived; slower ones
    /// are cut off.
    #[arg(long, env = "SEALPOST_BODY_TIMEOUT", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,

    /// Connections open at once, WebSocket streams included; past it a new connection is answered
    /// 503 `overloaded` and closed.
    #[arg(long, env = "SEALPOST_MAX_CONNECTIONS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

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

    /// Streams one account may have open on this node; one more is closed with 1013.
    #[arg(long, env = "SEALPOST_MAX_STREAMS_PER_ACCOUNT", default_value_t = 16,
        value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams_per_account: u64,

    /// Serve `/metrics` on this address of its own instead of the API's, so that it need not face
    /// the internet (the API's `/metrics` then answers 404).
    #[arg(long, env = "SEALPOST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

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

    /// Serve the browser client from this folder (a build of `web/`) instead of the one embedded
    /// in the binary.
    #[arg(long, env = "SEALPOST_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// An origin (`https://app.example.com`) whose pages may call the API cross-origin, with
    /// CORS; repeat or separate with commas. By default none: a request whose `Origin` is not
    /// the server's own is refused with 403.
    #[arg(long, env = "SEALPOST_ALLOWED_ORIGIN", value_delimiter = ',')]
    pub allowed_origin: Vec<String>,

    /// What carries stream wake-ups and revocations between nodes on PostgreSQL: by default
    /// PostgreSQL's own `LISTEN/NOTIFY` (nothing more to run); `nats://HOST:PORT` for a NATS
    /// server, which takes `NOTIFY`'s commit-time lock off every send (docs/SCALING.md). With
    /// NATS each node also polls the store every `--hub-poll-ms`, so that a wake-up lost between
    /// a commit and its publish delays a delivery by that much at most.
    #[arg(long, env = "SEALPOST_HUB", value_parser = hub_url, hide_env_values = true)]
    pub hub: Option<DatabaseUrl>,

    /// With a NATS hub: milliseconds between two polls of the store for the mailboxes and
    /// sessions of this node's streams.
    #[arg(long, env = "SEALPOST_HUB_POLL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub hub_poll_ms: u64,

    /// With a NATS hub: the first token of its subjects (`PREFIX.m.<mailbox>`,
    /// `PREFIX.s.<session>`, `PREFIX.u.<user>`), so that several deployments can share one NATS
    /// server. Every node of a deployment must use the same.
    #[arg(long, env = "SEALPOST_HUB_SUBJECT_PREFIX", default_value = "sealpost",
        value_parser = subject_prefix)]
    pub hub_subject_prefix: String,

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

/// `--hub`: a `nats://` URL (the only other carrier there is).
fn hub_url(url: &str) -> Result<DatabaseUrl, String> {
    if url.starts_with("nats://") && url.len() > "nats://".len() {
        Ok(DatabaseUrl(url.to_owned()))
    } else {
        Err("the hub is a NATS server: nats://HOST:PORT (leave --hub out for LISTEN/NOTIFY)".into())
    }
}

/// `--hub-subject-prefix`: one NATS subject token (letters, digits, `-` and `_`).
fn subject_prefix(prefix: &str) -> Result<String, String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(prefix.to_owned())
    } else {
        Err("one subject token of at most 64 letters, digits, '-' or '_'".into())
    }
}

/// A database (or hub) URL. It may carry a password, so it prints without one.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(url.to_owned()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    /// `scheme://user:<redacted>@host/…`: the password, if any, never shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.0;
        let redacted = url.split_once("://").and_then(|(scheme, rest)| {
            let (userinfo, host) = rest.split_once('@')?;
            let user = userinfo.split(':').next().unwrap_or_default();
            Some(format!("{scheme}://{user}:<redacted>@{host}"))
        });
        write!(f, "DatabaseUrl({:?})", redacted.as_deref().unwrap_or(url))
    }
}

/// A secret given as hex on the command line or in the environment (`--jwt-secret`): at least
/// 32 bytes, wiped on drop, never printed.
#[derive(Clone)]
pub struct HexSecret(Zeroizing<Vec<u8>>);

impl HexSecret {
    /// Clap's parser: hex digits, at least 64 of them.
    pub fn parse(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("expected hex digits (an even number of 0-9 a-f)".to_owned());
        }
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(
            (0..hex.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect(),
        );
        if bytes.len() < 32 {
            return Err("at least 32 bytes (64 hex digits) are needed".to_owned());
        }
        Ok(HexSecret(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for HexSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HexSecret(<redacted>)")
    }
}

/// The KDF limits of PROTOCOL §2.1.
pub mod kdf_bounds {
    pub const MIN_OPS: u64 = 2;
    pub const MAX_OPS: u64 = 10;
    pub const MIN_MEM: u64 = 67_108_864;
    pub const MAX_MEM: u64 = 1_073_741_824;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_passwords_do_not_print() {
        let url: DatabaseUrl = "postgres://app:hunter2@db.internal:5432/sealpost"
            .parse()
            .unwrap();
        let text = format!("{url:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("app:<redacted>@db.internal:5432/sealpost"),
            "{text}"
        );
        let secret = HexSecret::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(secret.bytes(), [0xab; 32]);
        assert_eq!(format!("{secret:?}"), "HexSecret(<redacted>)");
    }

    #[test]
    fn bounds_are_checked_by_the_parser() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        let parse = |extra: &[&str]| {
            Wrapper::try_parse_from(["sealpost"].iter().chain(extra)).map(|w| w.args)
        };
        assert!(parse(&["--kdf-opslimit", "1"]).is_err());
        assert!(parse(&["--kdf-opslimit", "11"]).is_err());
        assert!(parse(&["--kdf-memlimit", "8192"]).is_err());
        assert!(parse(&["--jwt-secret", "abcd"]).is_err());
        assert!(parse(&["--jwt-secret", &"zz".repeat(32)]).is_err());
        let ok = parse(&["--kdf-opslimit", "10", "--jwt-secret", &"01".repeat(32)]).unwrap();
        assert_eq!(ok.kdf_opslimit, 10);
        assert_eq!(ok.jwt_secret.unwrap().bytes().len(), 32);
    }
}

//! Rate limits (PROTOCOL 1.1 §4): per client network on the calls that guess at credentials, per
//! email on registration and prelogin, per account on lookups and sends, and failed logins and
//! recoveries per account **and** client network, with a ceiling per account across networks.
//!
//! A client network is an IPv4 address or an IPv6 /64 (one host gets a /64, so counting /128s
//! would let it rotate addresses for free). Behind a proxy listed in `--trusted-proxy` the client
//! is the one `X-Forwarded-For` names (see `extract::ClientAddr`).
//!
//! The per-account ceiling stops a guesser spread over many networks, but it must not lock the
//! owner out: a network that signed in to the account lately keeps its own per-network budget
//! past the ceiling.
//!
//! Memory is bounded whatever the number of keys: keys are 64-bit keyed hashes, and past
//! `--rate-limit-keys` the oldest key is evicted, one per new key, so a request costs the same
//! however many keys there are.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sealpost_proto::sync::lock;
use uuid::Uuid;

use crate::config::ServeArgs;
use crate::error::ApiError;

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Register,
    Prelogin,
    Login,
    Refresh,
    Recover,
    /// `GET /v1/users…`, per account.
    Lookup,
    /// `POST /v1/messages`, per account.
    Send,
}

/// What a window counts; hashed into the table's 64-bit keys.
#[derive(Hash)]
enum Key<'a> {
    Network(Action, Network),
    Email(Action, &'a str),
    Account(Action, Uuid),
    /// Failed logins and recoveries of an account from one network.
    Failed(&'a str, Network),
    /// Failed logins and recoveries of an account from anywhere.
    FailedAnywhere(&'a str),
    /// A network that signed in to this account lately.
    SignedIn(&'a str, Network),
}

/// An IPv4 address, or the /64 of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl From<IpAddr> for Network {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Network::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    Network::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// A fixed window: at most `limit` events per `window`.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

const MINUTE: Duration = Duration::from_secs(60);
const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// How long a network that signed in stays known to the account.
const SIGNED_IN_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The counters, bounded: a map from key hash to window, and the keys in the order they came.
#[derive(Debug)]
struct Table {
    windows: HashMap<u64, Window>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Table {
    /// The window of `key`, made if new (evicting the oldest key when full, counted in
    /// `evicted`).
    fn window(&mut self, key: u64, now: Instant, evicted: &AtomicU64) -> &mut Window {
        if !self.windows.contains_key(&key) {
            while self.windows.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(old) => {
                        self.windows.remove(&old);
                        evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    None => break,
                }
            }
            self.order.push_back(key);
        }
        match self.windows.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Window {
                started: now,
                count: 0,
            }),
        }
    }
}

/// In-memory rate limits of one node. (Each node counts for itself: with N nodes behind a load
/// balancer a client gets at most N times the limit, still a hard bound.)
#[derive(Debug)]
pub struct RateLimiter {
    per_address: u32,
    per_email: u32,
    failed_per_network: u32,
    failed_per_account: u32,
    lookups: u32,
    sends: u32,
    hasher: RandomState,
    table: Mutex<Table>,
    /// Keys evicted to keep the table bounded (a metric).
    pub evicted: AtomicU64,
}

impl RateLimiter {
    pub fn new(config: &ServeArgs) -> Self {
        let capacity = usize::try_from(config.rate_limit_keys.max(1)).unwrap_or(usize::MAX);
        RateLimiter {
            per_address: config.rate_per_address,
            per_email: config.rate_per_email,
            failed_per_network: config.failed_logins,
            failed_per_account: config.failed_logins_per_account,
            lookups: config.rate_lookups,
            sends: config.rate_sends,
            hasher: RandomState::new(),
            table: Mutex::new(Table {
                windows: HashMap::with_capacity(capacity.min(1 << 16)),
                order: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity,
            }),
            evicted: AtomicU64::new(0),
        }
    }

    /// Counts one `action` from `client`'s network (and for `email`, on registration and
    /// prelogin); 429 past a limit.
    pub fn check(
        &self,
        action: Action,
        client: IpAddr,
        email: Option<&str>,
    ) -> Result<(), ApiError> {
        let network = Network::from(client);
        let mut table = lock(&self.table);
        let now = Instant::now();
        self.hit(
            &mut table,
            now,
            &Key::Network(action, network),
            self.per_address,
            MINUTE,
            true,
        )?;
        if let (Some(email), Action::Register | Action::Prelogin) = (email, action) {
            self.hit(
                &mut table,
                now,
                &Key::Email(action, email),
                self.per_email,
                MINUTE,
                true,
            )?;
        }
        Ok(())
    }

    /// Counts one lookup or send of an account; 429 past its limit.
    pub fn check_account(&self, action: Action, account: Uuid) -> Result<(), ApiError> {
        let limit = match action {
            Action::Send => self.sends,
            _ => self.lookups,
        };
        let mut table = lock(&self.table);
        self.hit(
            &mut table,
            Instant::now(),
            &Key::Account(action, account),
            limit,
            MINUTE,
            true,
        )
    }

    /// Refuses a login or recovery attempt for an account that failed too often lately from this
    /// network, or from everywhere (unless this network signed in to it lately). Checked before
    /// the credential is, so a refused attempt costs less than a real one.
    pub fn check_failures(&self, account: &str, client: IpAddr) -> Result<(), ApiError> {
        let network = Network::from(client);
        let mut table = lock(&self.table);
        let now = Instant::now();
        let failed = Key::Failed(account, network);
        self.hit(
            &mut table,
            now,
            &failed,
            self.failed_per_network,
            FAILED_LOGIN_WINDOW,
            false,
        )?;
        let anywhere = Key::FailedAnywhere(account);
        let over_ceiling = self
            .hit(
                &mut table,
                now,
                &anywhere,
                self.failed_per_account,
                FAILED_LOGIN_WINDOW,
                false,
            )
            .err();
        match over_ceiling {
            Some(refused) if !self.known(&mut table, now, &Key::SignedIn(account, network)) => {
                Err(refused)
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login or recovery of an account from this network.
    pub fn failed(&self, account: &str, client: IpAddr) {
        let network = Network::from(client);
        let mut table = lock(&self.table);
        let now = Instant::now();
        for key in [Key::Failed(account, network), Key::FailedAnywhere(account)] {
            let _ = self.hit(&mut table, now, &key, u32::MAX, FAILED_LOGIN_WINDOW, true);
        }
    }

    /// Records that this network signed in to the account: the ceiling no longer refuses it.
    pub fn signed_in(&self, account: &str, client: IpAddr) {
        let mut table = lock(&self.table);
        let now = Instant::now();
        let key = Key::SignedIn(account, Network::from(client));
        let _ = self.hit(&mut table, now, &key, u32::MAX, SIGNED_IN_MEMORY, true);
    }

    /// Keys held now (for tests and metrics).
    pub fn keys(&self) -> usize {
        lock(&self.table).windows.len()
    }

    fn hash(&self, key: &Key<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Whether `key` has a live window with at least one event.
    fn known(&self, table: &mut Table, now: Instant, key: &Key<'_>) -> bool {
        table
            .windows
            .get(&self.hash(key))
            .is_some_and(|w| w.count > 0 && now.duration_since(w.started) < SIGNED_IN_MEMORY)
    }

    fn hit(
        &self,
        table: &mut Table,
        now: Instant,
        key: &Key<'_>,
        limit: u32,
        window: Duration,
        count: bool,
    ) -> Result<(), ApiError> {
        let w = table.window(self.hash(key), now, &self.evicted);
        if now.duration_since(w.started) >= window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        if w.count >= limit {
            let retry_after = window
                .saturating_sub(now.duration_since(w.started))
                .as_secs()
                + 1;
            return Err(ApiError::RateLimited { retry_after });
        }
        if count {
            w.count += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(capacity: usize) -> RateLimiter {
        let mut args = ServeArgs::defaults();
        args.rate_limit_keys = capacity as u64;
        RateLimiter::new(&args)
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Network::from(a), Network::from(b));
        assert_ne!(Network::from(a), Network::from(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            Network::from(mapped),
            Network::from("192.0.2.7".parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn a_million_keys_stay_within_the_bound_at_one_eviction_each() {
        let capacity = 10_000;
        let rate = limiter(capacity);
        for i in 0..1_000_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            rate.check(Action::Login, ip, None).unwrap();
            // Never more than the bound, at any point.
            if i % 65_536 == 0 {
                assert!(rate.keys() <= capacity);
            }
        }
        assert_eq!(rate.keys(), capacity);
        // Each new key past the bound evicted exactly one old key: no sweep, no scan.
        assert_eq!(
            rate.evicted.load(Ordering::Relaxed),
            1_000_000 - capacity as u64
        );
        let table = lock(&rate.table);
        assert_eq!(table.order.len(), table.windows.len());
    }

    #[test]
    fn the_ceiling_refuses_strangers_but_not_a_network_that_signed_in() {
        let mut args = ServeArgs::defaults();
        args.failed_logins = 3;
        args.failed_logins_per_account = 5;
        let rate = RateLimiter::new(&args);
        let owner: IpAddr = "192.0.2.1".parse().unwrap();
        rate.signed_in("alice@example.test", owner);
        // Guessers on many networks, each under its own limit, reach the ceiling together.
        for i in 0..5u8 {
            let guesser = IpAddr::from([198, 51, 100, i]);
            rate.check_failures("alice@example.test", guesser).unwrap();
            rate.failed("alice@example.test", guesser);
        }
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(rate.check_failures("alice@example.test", stranger).is_err());
        assert!(rate.check_failures("alice@example.test", owner).is_ok());
        // Another account is untouched.
        assert!(rate.check_failures("bob@example.test", stranger).is_ok());
    }
}

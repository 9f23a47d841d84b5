//! The push hub: wakes the live streams of a mailbox when an entry is stored, and ends the
//! streams of revoked sessions. It carries no message: a woken stream reads what is new from the
//! store, after the last `seq` it sent, so a lost or doubled wake-up can delay a delivery but
//! never skip or repeat one.
//!
//! Across nodes the wake-ups travel by one of two carriers; either names only a mailbox or a
//! session, never a ciphertext:
//! - `LISTEN/NOTIFY` (the default on PostgreSQL): each write queues its notification in its
//!   transaction (the store's `notify`), and every node listens;
//! - NATS (`--hub nats://…`, [`crate::nats`]): the handler announces what it committed after the
//!   commit ([`Hub::announce_stored`], [`Hub::announce`]), to subjects per mailbox and per
//!   session. A publish after a commit can be lost (the node dies between the two), so each node
//!   also polls the store for the mailboxes and sessions of its streams ([`crate::nats::poll`]): a
//!   lost wake-up delays a delivery by one poll interval at most, and never loses one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sealpost_proto::sync::lock;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// Events for every stream of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// This session is revoked.
    SessionRevoked(Uuid),
    /// Every session of this user is revoked, but `except`.
    UserRevoked { user: Uuid, except: Option<Uuid> },
    /// Notifications may have been lost: read the store again and check the session.
    Resync,
    /// The server is stopping.
    Shutdown,
}

/// The node's hub.
#[derive(Debug)]
pub struct Hub {
    mailboxes: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    control: broadcast::Sender<Control>,
    stopping: AtomicBool,
    sessions: Mutex<SessionCache>,
    /// The sessions this node's streams belong to, with their count of streams.
    streaming: Mutex<HashMap<Uuid, usize>>,
    /// Where announcements go to reach the other nodes (NATS); none with `LISTEN/NOTIFY`, whose
    /// notifications the store queues in each transaction.
    outbound: OnceLock<mpsc::Sender<String>>,
}

/// Sessions this node recently found live, so that most requests need no database read. Every
/// revocation the hub hears (from this node, or from another by NOTIFY) drops its entries at once;
/// a resync drops them all; and an entry is trusted for [`SESSION_TTL`] at most, in case a
/// notification was lost without the listener noticing.
#[derive(Debug, Default)]
struct SessionCache {
    live: HashMap<Uuid, (Uuid, Instant)>,
    /// Bumped by every invalidation, so that a check that raced one does not cache its answer.
    generation: u64,
}

/// How long a cached "live" answer is trusted.
pub const SESSION_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; past it the cache starts over.
const SESSION_CACHE_MAX: usize = 100_000;

impl Default for Hub {
    fn default() -> Self {
        Hub {
            mailboxes: Mutex::new(HashMap::new()),
            control: broadcast::channel(1024).0,
            stopping: AtomicBool::new(false),
            sessions: Mutex::new(SessionCache::default()),
            streaming: Mutex::new(HashMap::new()),
            outbound: OnceLock::new(),
        }
    }
}

/// Why a stream could not subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSubscription {
    /// The server is stopping.
    Stopping,
    /// The mailbox has as many streams on this node as it may.
    TooMany,
}

/// A stream's interest in one mailbox; unregisters itself when dropped.
#[derive(Debug)]
pub struct Subscription {
    pub mailbox: Uuid,
    pub session: Uuid,
    pub wake: watch::Receiver<u64>,
    pub control: broadcast::Receiver<Control>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut streaming = lock(&self.hub.streaming);
            if let Some(n) = streaming.get_mut(&self.session) {
                *n -= 1;
                if *n == 0 {
                    streaming.remove(&self.session);
                }
            }
        }
        let mut boxes = lock(&self.hub.mailboxes);
        // Our own receiver is still alive here, so "only us" is a count of one.
        if boxes
            .get(&self.mailbox)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            boxes.remove(&self.mailbox);
        }
    }
}

impl Hub {
    /// Subscribes a stream of `session` to a mailbox (before reading its backlog, so that nothing
    /// stored meanwhile is missed), if it has fewer than `max` streams on this node and the server
    /// is not stopping.
    pub fn subscribe(
        self: &Arc<Self>,
        mailbox: Uuid,
        session: Uuid,
        max: usize,
    ) -> Result<Subscription, NoSubscription> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(NoSubscription::Stopping);
        }
        let control = self.control.subscribe();
        let mut boxes = lock(&self.mailboxes);
        let sender = boxes.entry(mailbox).or_insert_with(|| watch::channel(0).0);
        if sender.receiver_count() >= max {
            return Err(NoSubscription::TooMany);
        }
        let wake = sender.subscribe();
        drop(boxes);
        *lock(&self.streaming).entry(session).or_default() += 1;
        Ok(Subscription {
            mailbox,
            session,
            wake,
            control,
            hub: Arc::clone(self),
        })
    }

    /// Sends announcements to the other nodes through `outbound` (each a [`notification`]
    /// payload) from now on; once per hub.
    pub fn set_outbound(&self, outbound: mpsc::Sender<String>) {
        let _ = self.outbound.set(outbound);
    }

    /// An entry was committed to `mailbox` by this node: wakes its streams here, and on the other
    /// nodes when a NATS hub carries the wake-ups (with `LISTEN/NOTIFY` the transaction did).
    pub fn announce_stored(&self, mailbox: Uuid) {
        self.stored(mailbox);
        self.publish(notification::stored(mailbox));
    }

    /// A revocation was committed by this node: applies it here, and on the other nodes when a
    /// NATS hub carries the wake-ups.
    pub fn announce(&self, event: Control) {
        self.send(event);
        match event {
            Control::SessionRevoked(s) => self.publish(notification::session_revoked(s)),
            Control::UserRevoked { user, except } => {
                self.publish(notification::user_revoked(user, except))
            }
            Control::Resync | Control::Shutdown => {}
        }
    }

    /// Hands a payload to the outbound carrier, if any. A full queue drops it: the poll repairs
    /// what a lost wake-up delays.
    fn publish(&self, payload: String) {
        if let Some(out) = self.outbound.get() {
            if out.try_send(payload).is_err() {
                tracing::debug!("the hub's outbound queue is full: a wake-up waits for the poll");
            }
        }
    }

    /// The mailboxes with streams on this node.
    pub fn mailboxes(&self) -> Vec<Uuid> {
        lock(&self.mailboxes).keys().copied().collect()
    }

    /// The sessions with streams on this node.
    pub fn streaming_sessions(&self) -> Vec<Uuid> {
        lock(&self.streaming).keys().copied().collect()
    }

    /// An entry was stored in `mailbox`: wakes its streams on this node.
    pub fn stored(&self, mailbox: Uuid) {
        let boxes = lock(&self.mailboxes);
        if let Some(s) = boxes.get(&mailbox) {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Applies an event to this node's streams and session cache.
    pub fn send(&self, event: Control) {
        {
            let mut cache = lock(&self.sessions);
            match event {
                Control::SessionRevoked(session) => {
                    cache.live.remove(&session);
                }
                Control::UserRevoked { user, except } => cache
                    .live
                    .retain(|session, (u, _)| *u != user || Some(*session) == except),
                Control::Resync | Control::Shutdown => cache.live.clear(),
            }
            cache.generation += 1;
        }
        if event == Control::Shutdown {
            self.stopping.store(true, Ordering::SeqCst);
        }
        let _ = self.control.send(event);
    }

    /// Whether this node found the session live lately (and nothing revoked it since).
    pub fn session_cached(&self, session: Uuid, user: Uuid) -> bool {
        let cache = lock(&self.sessions);
        cache
            .live
            .get(&session)
            .is_some_and(|(u, at)| *u == user && at.elapsed() < SESSION_TTL)
    }

    /// The generation to pass to [`Hub::cache_session`], read before asking the store.
    pub fn session_generation(&self) -> u64 {
        lock(&self.sessions).generation
    }

    /// Remembers that the store found the session live, unless something was revoked since
    /// `generation` was read.
    pub fn cache_session(&self, session: Uuid, user: Uuid, generation: u64) {
        let mut cache = lock(&self.sessions);
        if cache.generation != generation {
            return;
        }
        if cache.live.len() >= SESSION_CACHE_MAX {
            cache.live.clear();
        }
        cache.live.insert(session, (user, Instant::now()));
    }

    /// Whether the server is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Wakes every stream (after notifications may have been lost).
    pub fn resync(&self) {
        let boxes = lock(&self.mailboxes);
        for s in boxes.values() {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
        drop(boxes);
        self.send(Control::Resync);
    }

    /// Applies a notification from another node (or this one), as [`notification`] wrote it.
    pub fn apply(&self, payload: &str) {
        let mut parts = payload.split(':');
        let kind = parts.next();
        let id = parts.next().and_then(|s| Uuid::try_parse(s).ok());
        let extra = parts.next().and_then(|s| Uuid::try_parse(s).ok());
        match (kind, id) {
            (Some("m"), Some(mailbox)) => self.stored(mailbox),
            (Some("s"), Some(session)) => self.send(Control::SessionRevoked(session)),
            (Some("u"), Some(user)) => self.send(Control::UserRevoked {
                user,
                except: extra,
            }),
            _ => tracing::warn!("ignored a malformed notification"),
        }
    }
}

/// The notification payloads: `m:<mailbox>`, `s:<session>`, `u:<user>[:<session kept>]`.
pub mod notification {
    use uuid::Uuid;

    pub fn stored(mailbox: Uuid) -> String {
        format!("m:{mailbox}")
    }

    pub fn session_revoked(session: Uuid) -> String {
        format!("s:{session}")
    }

    pub fn user_revoked(user: Uuid, except: Option<Uuid>) -> String {
        match except {
            Some(s) => format!("u:{user}:{s}"),
            None => format!("u:{user}"),
        }
    }
}

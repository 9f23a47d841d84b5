//! The push hub: wakes the live streams of a mailbox when an entry is stored, and ends the
//! streams of revoked sessions. It carries no message: a woken stream reads what is new from the
//! store, after the last `seq` it sent, so a lost or doubled wake-up can delay a delivery but
//! never skip or repeat one.
//!
//! On PostgreSQL every node's hub is fed by `LISTEN/NOTIFY` (the store's `notify`); the notification
//! names only a mailbox or a session, never a ciphertext.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealpost_proto::sync::lock;
use tokio::sync::{broadcast, watch};
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
    pub wake: watch::Receiver<u64>,
    pub control: broadcast::Receiver<Control>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
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
    /// Subscribes to a mailbox (before reading its backlog, so that nothing stored meanwhile is
    /// missed), if it has fewer than `max` streams on this node and the server is not stopping.
    pub fn subscribe(
        self: &Arc<Self>,
        mailbox: Uuid,
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
        Ok(Subscription {
            mailbox,
            wake,
            control,
            hub: Arc::clone(self),
        })
    }

    /// An entry was stored in `mailbox`.
    pub fn stored(&self, mailbox: Uuid) {
        let boxes = lock(&self.mailboxes);
        if let Some(s) = boxes.get(&mailbox) {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

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

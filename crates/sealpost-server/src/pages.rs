//! A cache of each mailbox's newest page, as the JSON body it was sent as.
//!
//! Clients poll their newest page far more often than their mailbox changes, and building a page
//! (reading 50 rows, writing 36 KB of JSON) was most of an inbox request's cost, in the server and
//! in the database. A cached body is served only after its mailbox's version, read from the
//! database in the same request, is found unchanged: `(last_seq, mailbox_rev)`, where every send
//! into the mailbox raises `last_seq` and every deletion from it raises `mailbox_rev`, in the same
//! transaction. So the cache can never answer with a stale page, on any node, whatever the other
//! nodes did: it saves the page read and the JSON, not the round trip to the database.
//!
//! The version is read before the page, so a page stored under a version is never older than that
//! version (at worst newer, which only costs a miss later). Only pages that cannot depend on the
//! bound are kept: `before` past the mailbox's last seq, and not empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::body::Bytes;
use uuid::Uuid;

use sealpost_proto::sync::lock;

/// What a mailbox has seen: the last seq assigned and the deletions from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxVersion {
    pub last_seq: i64,
    pub rev: i64,
}

#[derive(Debug)]
struct Cached {
    version: MailboxVersion,
    limit: i64,
    body: Bytes,
}

/// The cache of one node, bounded in bytes.
#[derive(Debug)]
pub struct PageCache {
    budget: usize,
    inner: Mutex<Inner>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    pages: HashMap<Uuid, Cached>,
    bytes: usize,
}

impl PageCache {
    /// A cache of at most `budget` bytes of page bodies; 0 turns it off.
    pub fn new(budget: usize) -> Self {
        PageCache {
            budget,
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The body of the newest `limit` entries of `mailbox`, if it was built at `version`.
    pub fn get(&self, mailbox: Uuid, version: MailboxVersion, limit: i64) -> Option<Bytes> {
        let inner = lock(&self.inner);
        let hit = inner
            .pages
            .get(&mailbox)
            .filter(|c| c.version == version && c.limit == limit)
            .map(|c| c.body.clone());
        drop(inner);
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps `body` as the newest page of `mailbox` at `version`, evicting other pages while the
    /// cache is over its budget.
    pub fn put(&self, mailbox: Uuid, version: MailboxVersion, limit: i64, body: Bytes) {
        if body.len() > self.budget {
            return;
        }
        let mut inner = lock(&self.inner);
        let added = body.len();
        if let Some(old) = inner.pages.insert(
            mailbox,
            Cached {
                version,
                limit,
                body,
            },
        ) {
            inner.bytes -= old.body.len();
        }
        inner.bytes += added;
        while inner.bytes > self.budget {
            // Any other page: the map's order is arbitrary, which is enough to stay bounded.
            let Some(victim) = inner.pages.keys().find(|k| **k != mailbox).copied() else {
                break;
            };
            if let Some(old) = inner.pages.remove(&victim) {
                inner.bytes -= old.body.len();
            }
        }
    }

    /// Bytes of bodies held.
    pub fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: MailboxVersion = MailboxVersion {
        last_seq: 5,
        rev: 0,
    };

    #[test]
    fn a_page_is_served_only_at_its_version_and_limit() {
        let cache = PageCache::new(1 << 20);
        let m = Uuid::from_u128(1);
        cache.put(m, V1, 50, Bytes::from_static(b"page"));
        assert_eq!(cache.get(m, V1, 50).as_deref(), Some(&b"page"[..]));
        assert_eq!(cache.get(m, V1, 49), None);
        assert_eq!(
            cache.get(
                m,
                MailboxVersion {
                    last_seq: 6,
                    rev: 0
                },
                50
            ),
            None
        );
        assert_eq!(
            cache.get(
                m,
                MailboxVersion {
                    last_seq: 5,
                    rev: 1
                },
                50
            ),
            None
        );
        assert_eq!(cache.get(Uuid::from_u128(2), V1, 50), None);
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn the_budget_holds() {
        let cache = PageCache::new(100);
        for i in 0..50u128 {
            cache.put(Uuid::from_u128(i), V1, 50, Bytes::from(vec![b'x'; 30]));
            assert!(cache.bytes() <= 100, "{} bytes held", cache.bytes());
        }
        // The newest page always stays; one bigger than the whole budget is not kept.
        assert!(cache.get(Uuid::from_u128(49), V1, 50).is_some());
        cache.put(Uuid::from_u128(99), V1, 50, Bytes::from(vec![b'x'; 101]));
        assert!(cache.get(Uuid::from_u128(99), V1, 50).is_none());
        // Replacing a page counts its new size only.
        cache.put(Uuid::from_u128(49), V1, 50, Bytes::from(vec![b'x'; 10]));
        assert!(cache.bytes() <= 100);
    }

    #[test]
    fn off_when_the_budget_is_zero() {
        let cache = PageCache::new(0);
        assert!(!cache.enabled());
        cache.put(Uuid::from_u128(1), V1, 50, Bytes::from_static(b"p"));
        assert_eq!(cache.bytes(), 0);
    }
}

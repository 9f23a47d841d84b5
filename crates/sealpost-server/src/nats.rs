//! The NATS hub (`--hub nats://…`): wake-ups and revocations travel between nodes through a NATS
//! server instead of PostgreSQL's `LISTEN/NOTIFY`, whose commit-time lock serialises the commits
//! of every notifying transaction on the primary (docs/SCALING.md).
//!
//! - Out: each announcement of the hub ([`Hub::announce_stored`], [`Hub::announce`]), made after
//!   its commit, is published to `PREFIX.m.<mailbox>`, `PREFIX.s.<session>` or
//!   `PREFIX.u.<user>[.<session kept>]`, with an empty payload: a subject names only ids the
//!   server already knows, never a ciphertext.
//! - In: every node subscribes to `PREFIX.>` and applies what it hears to its hub, its own
//!   announcements included (a doubled wake-up finds nothing new).
//! - Repair ([`poll`]): a publish made after a commit is lost when the node dies between the two,
//!   or while NATS is unreachable. So each node reads, every `--hub-poll-ms`, the newest `seq` of
//!   the mailboxes its streams follow and which of their sessions have ended, and wakes or closes
//!   what changed. A lost wake-up delays a delivery by one interval at most; none is lost,
//!   because a woken stream reads the store after the last `seq` it sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::hub::{Control, Hub};
use crate::store::Store;

/// Announcements waiting to be published at most; past it they are dropped (the poll repairs).
const OUTBOUND: usize = 65_536;

/// A connection to the NATS server, shared by the publisher and the subscriber.
#[derive(Debug, Clone)]
pub struct NatsLink {
    client: async_nats::Client,
    prefix: String,
}

impl NatsLink {
    /// Connects (failing within a few seconds when the server does not answer, so that a wrong
    /// `--hub` shows at start). Later disconnections are retried by the client for as long as
    /// the node runs; after each reconnection every stream re-reads its mailbox.
    pub async fn connect(url: &str, prefix: &str, hub: &Arc<Hub>) -> anyhow::Result<NatsLink> {
        let hub = Arc::downgrade(hub);
        let client = async_nats::ConnectOptions::new()
            .name("sealpost")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let hub = hub.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if let Some(hub) = hub.upgrade() {
                                hub.resync();
                            }
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(
                                "lost the NATS hub; reconnecting, and polling the store meanwhile"
                            )
                        }
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await
            .with_context(|| "cannot connect to the NATS hub given by --hub".to_string())?;
        Ok(NatsLink {
            client,
            prefix: prefix.to_owned(),
        })
    }

    /// Starts the publisher; answers the queue to give the hub ([`Hub::set_outbound`]).
    pub fn publisher(&self) -> mpsc::Sender<String> {
        let (out, mut queue) = mpsc::channel::<String>(OUTBOUND);
        let link = self.clone();
        tokio::spawn(async move {
            while let Some(payload) = queue.recv().await {
                let subject = link.subject(&payload);
                if let Err(e) = link.client.publish(subject, "".into()).await {
                    tracing::warn!(error = %e, "a NATS publish failed: the poll will repair it");
                }
            }
        });
        out
    }

    /// `m:<id>` → `PREFIX.m.<id>` (a hub payload's `:` are subject tokens' `.`).
    fn subject(&self, payload: &str) -> String {
        format!("{}.{}", self.prefix, payload.replace(':', "."))
    }

    /// Hands what NATS delivers to `hub` until the hub stops.
    pub async fn feed(&self, hub: Arc<Hub>) {
        let mut subscription = match self.client.subscribe(format!("{}.>", self.prefix)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot subscribe to the NATS hub: streams rely on the poll alone");
                return;
            }
        };
        let skip = self.prefix.len() + 1;
        while let Some(message) = subscription.next().await {
            if hub.is_stopping() {
                return;
            }
            match message.subject.as_str().get(skip..) {
                Some(rest) => hub.apply(&rest.replace('.', ":")),
                None => tracing::warn!("ignored a NATS message outside the hub's subjects"),
            }
        }
    }
}

/// The repair loop of a NATS hub: every `every`, wakes the streams of each mailbox whose newest
/// `seq` moved since the last look, and closes the streams of sessions that ended.
pub async fn poll(store: Store, hub: Arc<Hub>, every: Duration) {
    let mut heads: HashMap<uuid::Uuid, i64> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !hub.is_stopping() {
        tick.tick().await;
        let mailboxes = hub.mailboxes();
        match store.mailbox_heads(&mailboxes).await {
            Ok(now) => {
                for (mailbox, last) in &now {
                    if heads.get(mailbox) != Some(last) {
                        hub.stored(*mailbox);
                    }
                }
                heads = now.into_iter().collect();
            }
            Err(e) => tracing::warn!(error = %e, "the hub's poll cannot read the mailboxes"),
        }
        let sessions = hub.streaming_sessions();
        match store.ended_sessions(&sessions, now_ms()).await {
            Ok(ended) => {
                for session in ended {
                    hub.send(Control::SessionRevoked(session));
                }
            }
            Err(e) => tracing::warn!(error = %e, "the hub's poll cannot read the sessions"),
        }
    }
}

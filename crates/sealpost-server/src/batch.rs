//! Group commit: concurrent sends are written by one task, many to a transaction, so that they
//! share one commit and one fsync (`synchronous=FULL` on SQLite and `synchronous_commit` on
//! PostgreSQL stay on: durability is not traded for speed). Each sender waits for the commit that
//! holds its message before it answers 201. One writer per node: a second one, tried on
//! PostgreSQL, was slower (its batches wait on the first's account locks, and at commit on the
//! lock `NOTIFY` takes), and SQLite has one write lock anyway.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Backend, Entry, NewMessage, SendRefused, Store};

/// Sends written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer at most; past it, 503 rather than an unbounded queue.
const QUEUE: usize = 8192;

type Reply = Result<Result<Entry, SendRefused>, String>;
type Queue = mpsc::Receiver<(NewMessage, oneshot::Sender<Reply>)>;

/// The handle handlers send through.
#[derive(Debug, Clone)]
pub struct SendBatcher {
    jobs: mpsc::Sender<(NewMessage, oneshot::Sender<Reply>)>,
}

impl SendBatcher {
    /// Starts the writer over `store`.
    ///
    /// On PostgreSQL it runs on a thread and a connection of its own. A batch takes four round
    /// trips to the database (begin, lock, write, commit), and on the shared runtime each one
    /// waited behind the request tasks to be polled again, most of a batch's cycle; on its own
    /// thread the writer wakes as soon as the database answers. The thread ends when the last
    /// handle is dropped. On SQLite the writer stays on the shared runtime: its connection already
    /// runs on a thread of its own (sqlx's), and a thread for the writer too measured slower. The
    /// figures are in docs/PERFORMANCE.md.
    pub fn spawn(store: Store, metrics: Arc<Metrics>, max_entries: i64) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        match store.backend() {
            Backend::Sqlite => {
                tokio::spawn(write(store, queue, metrics, max_entries));
            }
            Backend::Postgres => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                std::thread::Builder::new()
                    .name("sealpost-writer".into())
                    .spawn(move || {
                        runtime.block_on(async move {
                            let store = store.single_connection();
                            write(store.clone(), queue, metrics, max_entries).await;
                            store.close().await;
                        })
                    })?;
            }
        }
        Ok(SendBatcher { jobs })
    }

    /// Stores a send; answers once its transaction is committed.
    pub async fn send(&self, message: NewMessage) -> Result<Result<Entry, SendRefused>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send((message, reply))
            .map_err(|_| ApiError::Overloaded)?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(cause)) => Err(ApiError::Internal(anyhow::anyhow!(
                "group commit failed: {cause}"
            ))),
            Err(_) => Err(ApiError::Internal(anyhow::anyhow!("the writer stopped"))),
        }
    }
}

async fn write(store: Store, mut queue: Queue, metrics: Arc<Metrics>, max_entries: i64) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((message, reply)) = queue.recv().await {
        messages.push(message);
        replies.push(reply);
        // Everything that arrived while the previous batch was committing goes in this one.
        while messages.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok((message, reply)) => {
                    messages.push(message);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        metrics.group_commits.fetch_add(1, Ordering::Relaxed);
        metrics
            .group_committed_sends
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        match store.send_batch(&messages, max_entries).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of the batch is committed, and nobody is told otherwise.
                let cause = e.to_string();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(cause.clone()));
                }
            }
        }
        messages.clear();
    }
}

//! Group commit: concurrent sends, logins and refreshes are written by one task, many to a
//! transaction, so that they share one commit and one fsync (`synchronous=FULL` on SQLite and
//! `synchronous_commit` on PostgreSQL stay on: durability is not traded for speed). Each caller
//! waits for the commit that holds its write before it answers. One writer per node: a second
//! one, tried on PostgreSQL, was slower (its batches wait on the first's account locks, and at
//! commit on the lock `NOTIFY` takes), and SQLite has one write lock anyway.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{
    Backend, Batch, Entry, NewMessage, NewSession, Refreshed, Rotation, SendRefused, Store,
};

/// Writes in one transaction at most (sends, logins and refreshes together).
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; past it, 503 rather than an unbounded queue.
const QUEUE: usize = 8192;

/// A write, with where its outcome goes once committed (or the error, when the batch failed).
#[derive(Debug)]
enum Job {
    Send(
        NewMessage,
        oneshot::Sender<Result<Result<Entry, SendRefused>, String>>,
    ),
    Open(NewSession, oneshot::Sender<Result<Option<Uuid>, String>>),
    Rotate(Rotation, oneshot::Sender<Result<Refreshed, String>>),
}

type Queue = mpsc::Receiver<Job>;

/// The handle handlers write through.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
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
        Ok(Writer { jobs })
    }

    /// Stores a send; answers once its transaction is committed.
    pub async fn send(&self, message: NewMessage) -> Result<Result<Entry, SendRefused>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Send(message, reply))?;
        outcome(answer.await)
    }

    /// Opens a session (a login); answers its id once committed, or `None` when the account was
    /// deleted since its credentials were read.
    pub async fn open_session(&self, session: NewSession) -> Result<Option<Uuid>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Open(session, reply))?;
        outcome(answer.await)
    }

    /// Rotates a refresh token; answers once committed.
    pub async fn rotate(&self, rotation: Rotation) -> Result<Refreshed, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Rotate(rotation, reply))?;
        outcome(answer.await)
    }

    fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.jobs.try_send(job).map_err(|_| ApiError::Overloaded)
    }
}

fn outcome<T>(answer: Result<Result<T, String>, oneshot::error::RecvError>) -> Result<T, ApiError> {
    match answer {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(cause)) => Err(ApiError::Internal(anyhow::anyhow!(
            "group commit failed: {cause}"
        ))),
        Err(_) => Err(ApiError::Internal(anyhow::anyhow!("the writer stopped"))),
    }
}

/// Replies to a batch's callers, in the order their jobs went into it.
#[derive(Default)]
struct Replies {
    sends: Vec<oneshot::Sender<Result<Result<Entry, SendRefused>, String>>>,
    opens: Vec<oneshot::Sender<Result<Option<Uuid>, String>>>,
    rotations: Vec<oneshot::Sender<Result<Refreshed, String>>>,
}

fn take(job: Job, batch: &mut Batch, replies: &mut Replies) {
    match job {
        Job::Send(m, r) => {
            batch.sends.push(m);
            replies.sends.push(r);
        }
        Job::Open(s, r) => {
            batch.opens.push(s);
            replies.opens.push(r);
        }
        Job::Rotate(t, r) => {
            batch.rotations.push(t);
            replies.rotations.push(r);
        }
    }
}

async fn write(store: Store, mut queue: Queue, metrics: Arc<Metrics>, max_entries: i64) {
    let mut batch = Batch::default();
    let mut replies = Replies::default();
    while let Some(job) = queue.recv().await {
        take(job, &mut batch, &mut replies);
        // Everything that arrived while the previous batch was committing goes in this one.
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => take(job, &mut batch, &mut replies),
                Err(_) => break,
            }
        }
        metrics.group_commits.fetch_add(1, Ordering::Relaxed);
        metrics
            .group_committed_sends
            .fetch_add(batch.sends.len() as u64, Ordering::Relaxed);
        metrics.group_committed_sessions.fetch_add(
            (batch.opens.len() + batch.rotations.len()) as u64,
            Ordering::Relaxed,
        );
        match store.commit_batch(&batch, max_entries).await {
            Ok(done) => {
                for (reply, o) in replies.sends.drain(..).zip(done.sends) {
                    let _ = reply.send(Ok(o));
                }
                for (reply, o) in replies.opens.drain(..).zip(done.opened) {
                    let _ = reply.send(Ok(o));
                }
                for (reply, o) in replies.rotations.drain(..).zip(done.rotated) {
                    let _ = reply.send(Ok(o));
                }
            }
            Err(e) => {
                // Nothing of the batch is committed, and nobody is told otherwise.
                let cause = e.to_string();
                for reply in replies.sends.drain(..) {
                    let _ = reply.send(Err(cause.clone()));
                }
                for reply in replies.opens.drain(..) {
                    let _ = reply.send(Err(cause.clone()));
                }
                for reply in replies.rotations.drain(..) {
                    let _ = reply.send(Err(cause.clone()));
                }
            }
        }
        batch.clear();
    }
}

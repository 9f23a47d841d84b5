//! Group commit: concurrent sends, logins and refreshes are written by one task, many to a
//! transaction, so that they share one commit and one fsync (`synchronous=FULL` on SQLite and
//! `synchronous_commit` on PostgreSQL stay on: durability is not traded for speed). Each caller
//! waits for the commit that holds its write before it answers. One send writer per node: a second
//! one, tried on PostgreSQL, was slower (its batches wait on the first's account locks, and at
//! commit on the lock `NOTIFY` takes), and SQLite has one write lock anyway, so on SQLite the
//! logins and refreshes share the sends' transactions too. On PostgreSQL they go to
//! [`SESSION_WRITERS`] session writers of their own, which take turns filling batches from one
//! queue: sessions lock no account, and with a single writer four clients' logins were committed
//! one batch after another, slower than PostgreSQL grouping four connections' commits in its WAL
//! by itself (docs/PERFORMANCE.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{
    Backend, Batch, Entry, NewMessage, NewSession, Opened, Refreshed, Rotation, SendRefused, Store,
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
    Open(NewSession, oneshot::Sender<Result<Option<Opened>, String>>),
    Rotate(Rotation, oneshot::Sender<Result<Refreshed, String>>),
}

type Queue = mpsc::Receiver<Job>;

/// The handle handlers write through.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Sends (and, on SQLite, everything).
    jobs: mpsc::Sender<Job>,
    /// Logins and refreshes: on PostgreSQL the queue of the session writers; on SQLite `jobs`.
    sessions: mpsc::Sender<Job>,
    coming: Arc<Coming>,
}

/// Session writers on PostgreSQL (see [`Writer::spawn`]).
const SESSION_WRITERS: usize = 4;

/// How long a batch waits at most for the logins and refreshes on their way (see [`Intent`]).
const GATHER: Duration = Duration::from_millis(2);

/// Logins and refreshes that have begun (their handler holds an [`Intent`]) but not yet reached
/// the writer.
#[derive(Debug, Default)]
struct Coming {
    n: AtomicUsize,
    changed: Notify,
}

/// A login or refresh on its way to the writer, from the start of its handler (before its checks
/// and rate limits) until it hands its write over, or gives up (a bad request, a rate limit).
/// A batch that starts while some are on their way waits for them, up to [`GATHER`]: at low
/// concurrency (four clients, a login storm's first seconds) a batch would otherwise commit the
/// first arrival alone, and the others the next time, one fsync each.
#[derive(Debug)]
pub struct Intent {
    coming: Arc<Coming>,
}

impl Drop for Intent {
    fn drop(&mut self) {
        self.coming.n.fetch_sub(1, Ordering::AcqRel);
        self.coming.changed.notify_one();
    }
}

impl Writer {
    /// Starts the writers over `store`, on a thread of their own.
    ///
    /// On PostgreSQL each writer has its own connection. A batch takes four round trips to the
    /// database (begin, lock, write, commit), and on the shared runtime each one waited behind the
    /// request tasks to be polled again, most of a batch's cycle; on its own thread the writer
    /// wakes as soon as the database answers. On SQLite the one writer runs each batch's
    /// statements and its commit directly on that thread (`store::direct`), blocking it until the
    /// commit is on disk, which is what the thread is for. The thread ends when the last handle is
    /// dropped. The figures are in docs/PERFORMANCE.md.
    pub fn spawn(store: Store, metrics: Arc<Metrics>, max_entries: i64) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let coming = Arc::new(Coming::default());
        let gathering = Arc::clone(&coming);
        let backend = store.backend();
        let (sessions, session_queue) = match backend {
            // One write lock: the sends' writer takes the logins and refreshes too.
            Backend::Sqlite => (jobs.clone(), None),
            Backend::Postgres => {
                let (sessions, queue) = mpsc::channel(QUEUE);
                (sessions, Some(Arc::new(tokio::sync::Mutex::new(queue))))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sealpost-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut writers = tokio::task::JoinSet::new();
                    writers.spawn(write(
                        store.single_connection(),
                        Source::Own(queue),
                        Arc::clone(&gathering),
                        Arc::clone(&metrics),
                        max_entries,
                    ));
                    for shared in std::iter::repeat_n(session_queue, SESSION_WRITERS).flatten() {
                        writers.spawn(write(
                            store.single_connection(),
                            Source::Shared(shared),
                            Arc::clone(&gathering),
                            Arc::clone(&metrics),
                            max_entries,
                        ));
                    }
                    while let Some(store) = writers.join_next().await {
                        // PostgreSQL's writers have connections of their own; SQLite's shares
                        // the node's store.
                        match store {
                            Ok(store) if backend == Backend::Postgres => store.close().await,
                            _ => {}
                        }
                    }
                })
            })?;
        Ok(Writer {
            jobs,
            sessions,
            coming,
        })
    }

    /// Announces a login or refresh that will reach the writer soon (see [`Intent`]).
    pub fn intend(&self) -> Intent {
        self.coming.n.fetch_add(1, Ordering::AcqRel);
        Intent {
            coming: Arc::clone(&self.coming),
        }
    }

    /// Stores a send; answers once its transaction is committed.
    pub async fn send(&self, message: NewMessage) -> Result<Result<Entry, SendRefused>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Send(message, reply))?;
        outcome(answer.await)
    }

    /// A login: checks the auth key against the account's credentials and opens a session, in
    /// one transaction; answers the session once committed, or `None` when no live account has
    /// that email and auth key.
    pub async fn open_session(
        &self,
        intent: Intent,
        session: NewSession,
    ) -> Result<Option<Opened>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Open(session, reply))?;
        drop(intent);
        outcome(answer.await)
    }

    /// Rotates a refresh token; answers once committed.
    pub async fn rotate(&self, intent: Intent, rotation: Rotation) -> Result<Refreshed, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Rotate(rotation, reply))?;
        drop(intent);
        outcome(answer.await)
    }

    fn submit(&self, job: Job) -> Result<(), ApiError> {
        let queue = match job {
            Job::Send(..) => &self.jobs,
            Job::Open(..) | Job::Rotate(..) => &self.sessions,
        };
        queue.try_send(job).map_err(|_| ApiError::Overloaded)
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
    opens: Vec<oneshot::Sender<Result<Option<Opened>, String>>>,
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

/// Where a writer takes its jobs: a queue of its own (the send writer, SQLite's only writer), or
/// one it shares with the other session writers (PostgreSQL), taking turns to fill a batch.
enum Source {
    Own(Queue),
    Shared(Arc<tokio::sync::Mutex<Queue>>),
}

/// Fills `batch` from `queue`: the first job (waiting for it), everything already queued, then
/// the logins and refreshes on their way (see [`Intent`]). `false` once the queue is closed.
async fn fill(
    queue: &mut Queue,
    coming: &Coming,
    batch: &mut Batch,
    replies: &mut Replies,
) -> bool {
    let Some(job) = queue.recv().await else {
        return false;
    };
    take(job, batch, replies);
    // Everything that arrived while the previous batch was committing goes in this one.
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => take(job, batch, replies),
            Err(_) => break,
        }
    }
    // And the logins and refreshes already on their way, for a moment: those, not the ones
    // that start meanwhile, so that a busy node does not wait on every batch.
    let awaited = (batch.len() + coming.n.load(Ordering::Acquire)).min(MAX_BATCH);
    let deadline = tokio::time::Instant::now() + GATHER;
    while batch.len() < awaited && coming.n.load(Ordering::Acquire) > 0 {
        tokio::select! {
            biased;
            job = queue.recv() => match job {
                Some(job) => take(job, batch, replies),
                None => break,
            },
            _ = coming.changed.notified() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    true
}

/// A writer's loop; answers its store when its queue closes (the last handle dropped).
async fn write(
    store: Store,
    mut source: Source,
    coming: Arc<Coming>,
    metrics: Arc<Metrics>,
    max_entries: i64,
) -> Store {
    let mut batch = Batch::default();
    let mut replies = Replies::default();
    loop {
        let more = match &mut source {
            Source::Own(queue) => fill(queue, &coming, &mut batch, &mut replies).await,
            // The queue is held while a batch is filled, and free while it commits.
            Source::Shared(queue) => {
                fill(&mut *queue.lock().await, &coming, &mut batch, &mut replies).await
            }
        };
        if !more {
            return store;
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

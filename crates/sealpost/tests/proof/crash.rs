//! Crash safety: `sealpost serve` SIGKILLed again and again while several accounts send to each
//! other, and started again on the same database and port. Afterwards every send that got its
//! 201 is in its mailbox, byte for byte, under the `seq` it was given, and every mailbox runs
//! 1..=n without a hole (ARCHITECTURE.md: no 2xx before the commit; no `seq` outside the
//! transaction that stores its entry). A send that got no answer may be there or not, but only
//! ever as the next `seq`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sealpost_client::api::{ApiError, SendRequest};
use sealpost_testkit::{ciphertext, random};
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::{
    account, assert_gap_free, free_port, mailbox, Db, Flags, Node, Store, MACHINE,
};

const ACCOUNTS: usize = 4;
const KILLS: usize = 8;
/// Each life of the server acknowledges at least this many sends (plus a random few, so that
/// the kills fall at different points) before it is killed.
const ACKS_PER_LIFE: usize = 50;

/// What the senders have done so far.
#[derive(Default)]
struct Progress {
    acked: usize,
    /// A send that failed otherwise than by the crash ends the proof.
    failure: Option<String>,
}

/// One attempted send, and what its sender heard.
struct Attempt {
    from: Uuid,
    to: Uuid,
    ciphertext: Vec<u8>,
    /// The 201's entry id and `seq`; `None` when no answer came.
    acked: Option<(Uuid, i64)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_during_sends() {
    crash_safety(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_during_sends() {
    crash_safety(Store::Postgres).await;
}

async fn crash_safety(store: Store) {
    let _machine = MACHINE.read().await;
    let Some(db) = Db::create(store).await else {
        return;
    };
    let port = free_port();
    // Sends are limited per account per minute; this proof is about durability, not the limit.
    let flags = Flags::new(&["--rate-sends", "1000000"]);
    let mut node = Node::start(&db, port, &flags).await;
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        accounts.push(account(&node.base, &format!("crash{i}")).await);
    }
    let ids: Vec<Uuid> = accounts.iter().map(|a| a.id).collect();

    let (acks, mut progress) = watch::channel(Progress::default());
    let acks = Arc::new(acks);
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (i, sender) in accounts.iter().enumerate() {
        let (api, ids, acks, stop) = (sender.api.clone(), ids.clone(), acks.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let to = ids[(i + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS];
                let body = ciphertext(1 + usize::from(random(1)[0] % 3));
                let sent = api
                    .send(&SendRequest {
                        to,
                        ciphertext: body.clone(),
                        key_version: 1,
                        sender_key_version: 1,
                        sender_copy: None,
                    })
                    .await;
                let acked = match sent {
                    Ok(entry) => Some((entry.id, entry.seq)),
                    // The server is down, or went down with the request in flight.
                    Err(ApiError::Transport(_)) => None,
                    Err(e) if e.status() == Some(503) => None,
                    Err(e) => {
                        let failure = format!("a send failed otherwise than by the crash: {e}");
                        acks.send_modify(|p| p.failure = Some(failure));
                        break;
                    }
                };
                let answered = acked.is_some();
                attempts.push(Attempt {
                    from: ids[i],
                    to,
                    ciphertext: body,
                    acked,
                });
                if answered {
                    acks.send_modify(|p| p.acked += 1);
                } else {
                    // Back off while the server is down, rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            attempts
        }));
    }

    for _ in 0..KILLS {
        wait_for_acks(&mut progress).await;
        node.kill();
        node = Node::start(&db, port, &flags).await;
    }
    // The last life acknowledges some too, then the senders stop.
    wait_for_acks(&mut progress).await;
    stop.store(true, Ordering::Relaxed);
    let mut attempts = Vec::new();
    for sender in senders {
        attempts.extend(sender.await.unwrap());
    }

    let by_ciphertext: HashMap<&[u8], &Attempt> = attempts
        .iter()
        .map(|a| (a.ciphertext.as_slice(), a))
        .collect();
    assert_eq!(by_ciphertext.len(), attempts.len(), "random bodies repeat");
    let mut found = HashSet::new();
    let mut entries_checked = 0;
    for owner in &accounts {
        let entries = mailbox(&owner.api).await;
        assert_gap_free(&entries, &owner.id.to_string());
        for entry in &entries {
            let attempt = by_ciphertext
                .get(entry.ciphertext.as_slice())
                .unwrap_or_else(|| panic!("entry {} was never sent", entry.id));
            assert_eq!((entry.from, entry.to), (attempt.from, attempt.to));
            assert_eq!(owner.id, attempt.to);
            assert_eq!((entry.key_version, entry.sender_key_version), (1, 1));
            if let Some((id, seq)) = attempt.acked {
                assert_eq!(
                    (entry.id, entry.seq),
                    (id, seq),
                    "an acknowledged send moved"
                );
            }
            assert!(
                found.insert(attempt.ciphertext.as_slice()),
                "a send is stored twice"
            );
            entries_checked += 1;
        }
    }
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.acked.is_some()).collect();
    for attempt in &acked {
        let (id, seq) = attempt.acked.unwrap();
        assert!(
            found.contains(attempt.ciphertext.as_slice()),
            "LOST: send {id} (seq {seq} to {}) was acknowledged with 201 and is gone after the kills",
            attempt.to
        );
    }
    let unanswered = attempts.len() - acked.len();
    assert!(
        unanswered > 0,
        "no send ever met a dead server: the kills missed"
    );
    let unanswered_stored = entries_checked - acked.len();
    eprintln!(
        "PROOF crash {store:?}: {KILLS} SIGKILLs survived; {} acknowledged sends all present, \
         byte-identical, with their seq; {unanswered} unanswered ({unanswered_stored} of them \
         stored); {entries_checked} entries in {ACCOUNTS} gap-free mailboxes",
        acked.len()
    );
}

/// Waits (within a generous bound) until the running server has acknowledged a few more sends.
async fn wait_for_acks(progress: &mut watch::Receiver<Progress>) {
    let target = progress.borrow().acked + ACKS_PER_LIFE + usize::from(random(1)[0] % 40);
    let wait = progress.wait_for(|p| p.acked >= target || p.failure.is_some());
    let progress = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the server acknowledged no sends within 60 s")
        .unwrap();
    if let Some(failure) = &progress.failure {
        panic!("{failure}");
    }
}

//! Load shedding: `sealpost serve --max-in-flight 4` measured at its capacity (four senders, one
//! request each at a time), then offered twice that, open loop, for 10 s. The excess is answered
//! 503 `overloaded` at once, every request not shed completes with its 201, the server's memory
//! stays bounded, and every 201 is in its mailbox afterwards (docs/SECURITY.md §6).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealpost_client::api::{Api, ApiError, SendRequest};
use sealpost_testkit::ciphertext;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{
    account_via, assert_gap_free, free_port, mailbox, quantile, rss_bytes, Account, Db, Flags,
    Node, Store, MACHINE,
};

const MAX_IN_FLIGHT: usize = 4;
const MAX_CONNECTIONS: usize = 64;
/// Requests the client keeps open at most: below `MAX_CONNECTIONS`, so that every shed request
/// is shed by the in-flight bound (and counted by the server's metric of it).
const OUTSTANDING: usize = 48;
const SENDERS: usize = 4;
const RECIPIENTS: usize = 4;
const MEASURE: Duration = Duration::from_secs(2);
const RUN: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(10);
/// Generous bounds on events, not timings: an answer comes, a shed answer comes soon.
const ANSWER_BOUND: Duration = Duration::from_secs(30);
const SHED_BOUND: Duration = Duration::from_secs(5);
const RSS_BOUND: u64 = 500 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sheds_twice_its_capacity() {
    load_shedding(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sheds_twice_its_capacity() {
    load_shedding(Store::Postgres).await;
}

/// What one request heard.
enum Outcome {
    Accepted {
        to: Uuid,
        id: Uuid,
        seq: i64,
        ciphertext: Vec<u8>,
        latency: Duration,
    },
    Shed {
        latency: Duration,
    },
}

async fn load_shedding(store: Store) {
    // Capacity is measured: nothing else of this test binary runs meanwhile.
    let _machine = MACHINE.write().await;
    let Some(db) = Db::create(store).await else {
        return;
    };
    let flags = Flags::new(&[
        "--max-in-flight",
        &MAX_IN_FLIGHT.to_string(),
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
        "--rate-sends",
        "100000000",
    ]);
    let node = Node::start(&db, free_port(), &flags).await;
    // One connection pool for every account, so that the client holds at most OUTSTANDING
    // connections.
    let http = Api::new(&node.base);
    let mut senders = Vec::new();
    let mut recipients = Vec::new();
    for i in 0..SENDERS {
        senders.push(account_via(&http, &format!("load{i}")).await);
    }
    for i in 0..RECIPIENTS {
        recipients.push(account_via(&http, &format!("sink{i}")).await);
    }
    let recipient_ids: Arc<Vec<Uuid>> = Arc::new(recipients.iter().map(|a| a.id).collect());

    let (capacity, measured) = measure_capacity(&senders, &recipient_ids).await;
    let rate = 2.0 * capacity;

    let pid = node.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_rss = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap()));
    let sampler = tokio::spawn({
        let (sampling, peak_rss) = (sampling.clone(), peak_rss.clone());
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            while sampling.load(Ordering::Relaxed) {
                every.tick().await;
                if let Some(rss) = rss_bytes(pid) {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                }
            }
        }
    });

    let outstanding = Arc::new(AtomicUsize::new(0));
    let mut requests = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    let (mut owed, mut launched, mut skipped) = (0.0, 0usize, 0usize);
    let started = Instant::now();
    while started.elapsed() < RUN {
        ticker.tick().await;
        owed += rate * TICK.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            if outstanding.load(Ordering::Relaxed) >= OUTSTANDING {
                skipped += 1;
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            launched += 1;
            let api = senders[launched % SENDERS].api.clone();
            let to = recipient_ids[(launched / SENDERS) % RECIPIENTS];
            let outstanding = outstanding.clone();
            requests.spawn(async move {
                let outcome = send_once(&api, to).await;
                outstanding.fetch_sub(1, Ordering::Relaxed);
                outcome
            });
        }
    }
    let offered_for = started.elapsed();
    let mut outcomes = Vec::new();
    while let Some(outcome) = requests.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_rss = peak_rss.load(Ordering::Relaxed);

    let mut accepted = Vec::new();
    let mut shed = Vec::new();
    for outcome in &outcomes {
        match outcome {
            Outcome::Accepted { latency, .. } => accepted.push(*latency),
            Outcome::Shed { latency } => shed.push(*latency),
        }
    }
    accepted.sort();
    shed.sort();
    assert!(!shed.is_empty(), "twice the capacity was never shed");
    assert!(!accepted.is_empty(), "nothing was accepted under load");
    let slowest_shed = *shed.last().unwrap();
    assert!(
        slowest_shed < SHED_BOUND,
        "a 503 took {slowest_shed:?}: shedding queued"
    );
    assert!(
        peak_rss < RSS_BOUND,
        "the server grew to {} MiB",
        peak_rss >> 20
    );
    let metrics = http.metrics().await.unwrap();
    assert_eq!(
        counter(&metrics, "sealpost_overloaded_total"),
        shed.len() as u64,
        "the server's count of shed requests is not what the client saw"
    );

    // Nothing acknowledged is lost.
    let mut stored = std::collections::HashMap::new();
    for owner in &recipients {
        let entries = mailbox(&owner.api).await;
        assert_gap_free(&entries, &owner.id.to_string());
        for entry in entries {
            stored.insert(entry.id, entry);
        }
    }
    for outcome in &outcomes {
        if let Outcome::Accepted {
            to,
            id,
            seq,
            ciphertext,
            ..
        } = outcome
        {
            let entry = stored
                .get(id)
                .unwrap_or_else(|| panic!("LOST: acknowledged send {id} is not in its mailbox"));
            assert_eq!((entry.to, entry.seq), (*to, *seq));
            assert_eq!(&entry.ciphertext, ciphertext);
        }
    }
    assert_eq!(
        stored.len(),
        measured + accepted.len(),
        "a shed send was stored"
    );

    eprintln!(
        "PROOF shed {store:?}: capacity {capacity:.0}/s at --max-in-flight {MAX_IN_FLIGHT}; \
         offered {:.0}/s for {offered_for:.1?} ({launched} sent, {skipped} not sent: {OUTSTANDING} \
         open); {} accepted (p50 {:?}, p99 {:?}, max {:?}), all stored; {} shed with 503 (p50 \
         {:?}, p99 {:?}, max {slowest_shed:?}); peak RSS {} MiB",
        launched as f64 / offered_for.as_secs_f64(),
        accepted.len(),
        quantile(&accepted, 0.5),
        quantile(&accepted, 0.99),
        accepted.last().unwrap(),
        shed.len(),
        quantile(&shed, 0.5),
        quantile(&shed, 0.99),
        peak_rss >> 20,
    );
}

/// Sends per second with `MAX_IN_FLIGHT` senders each waiting for its answer (what the server
/// does at its bound; none of them is shed), and how many were sent.
async fn measure_capacity(senders: &[Account], recipients: &Arc<Vec<Uuid>>) -> (f64, usize) {
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for i in 0..MAX_IN_FLIGHT {
        let api = senders[i % SENDERS].api.clone();
        let recipients = recipients.clone();
        workers.spawn(async move {
            let mut done = 0usize;
            while started.elapsed() < MEASURE {
                let to = recipients[(i + done) % RECIPIENTS];
                match send_once(&api, to).await {
                    Outcome::Accepted { .. } => done += 1,
                    Outcome::Shed { .. } => panic!("shed at no more than --max-in-flight"),
                }
            }
            done
        });
    }
    let mut done = 0;
    while let Some(n) = workers.join_next().await {
        done += n.unwrap();
    }
    (done as f64 / started.elapsed().as_secs_f64(), done)
}

/// One send: a 201, or a 503 `overloaded`; anything else fails the test.
async fn send_once(api: &Api, to: Uuid) -> Outcome {
    let body = ciphertext(1);
    let started = Instant::now();
    let sent = tokio::time::timeout(
        ANSWER_BOUND,
        api.send(&SendRequest {
            to,
            ciphertext: body.clone(),
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        }),
    )
    .await
    .expect("a request got no answer within 30 s");
    let latency = started.elapsed();
    match sent {
        Ok(entry) => Outcome::Accepted {
            to,
            id: entry.id,
            seq: entry.seq,
            ciphertext: body,
            latency,
        },
        Err(e @ ApiError::Server { .. }) if e.status() == Some(503) => {
            assert_eq!(e.code(), Some("overloaded"), "{e}");
            Outcome::Shed { latency }
        }
        Err(e) => panic!("a request under load failed: {e}"),
    }
}

/// A counter's value in the Prometheus text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

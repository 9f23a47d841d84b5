//! Two `sealpost serve` processes on one PostgreSQL database: a stream held by node B receives,
//! in order, without gaps or duplicates, 1,000 messages posted by 4 concurrent senders to node A,
//! while the stream is cut and resumed twice in the middle (PROTOCOL §4.1, §4.2); once with the
//! wake-ups carried by `LISTEN/NOTIFY`, once by a NATS hub.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use sealpost_client::api::{Api, SendRequest};
use sealpost_testkit::{random, PgDatabase};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const SENDERS: usize = 4;
const EACH: usize = 250;

/// A `sealpost serve` child process, killed when dropped.
struct Node {
    child: Child,
    base: String,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_node(database: &str, secrets: &std::path::Path, hub: &[String]) -> Node {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .arg("serve")
        .args(hub)
        .args([
            "--listen",
            &addr,
            "--database",
            database,
            "--secrets-file",
            secrets.to_str().unwrap(),
            "--kdf-opslimit",
            "2",
            "--kdf-memlimit",
            "67108864",
        ])
        .env("SEALPOST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sealpost serve");
    let node = Node {
        child,
        base: format!("http://{addr}"),
        addr,
    };
    let api = Api::new(&node.base);
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.healthz().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "node {} did not come up",
            node.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a process start, not synchronising
    }
    node
}

/// Registers and signs in an account with well-formed (server-checked) key material.
async fn account(node: &Node, name: &str) -> (Uuid, Api) {
    sealpost_testkit::sign_up(&Api::new(&node.base), name).await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_stream(node: &Node, token: &str, after: i64) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/stream", node.addr))
        .await
        .unwrap();
    let auth = serde_json::json!({"type": "auth", "access_token": token, "after": after});
    ws.send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    let ready = next_json(&mut ws).await;
    assert_eq!(
        (ready["type"].as_str(), ready["after"].as_i64()),
        (Some("ready"), Some(after))
    );
    ws
}

async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("nothing on the stream for 30 s")
            .expect("the stream ended")
            .expect("stream error");
        match frame {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("the stream closed: {c:?}"),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_node_b_gets_everything_posted_to_node_a() {
    everything_reaches_node_b(&[]).await;
}

/// The same with a NATS hub (and a poll slow enough that NATS must be what delivers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_node_b_gets_everything_posted_to_node_a_through_nats() {
    let Some(url) = sealpost_testkit::nats_url() else {
        return;
    };
    let hub = [
        "--hub".to_owned(),
        url,
        "--hub-subject-prefix".to_owned(),
        sealpost_testkit::nats_prefix(),
        "--hub-poll-ms".to_owned(),
        "60000".to_owned(),
    ];
    everything_reaches_node_b(&hub).await;
}

async fn everything_reaches_node_b(hub: &[String]) {
    // Says loudly that it skipped without SEALPOST_TEST_POSTGRES (and fails in CI); the
    // database is dropped when `db` goes, even if an assertion fails.
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let database = db.url.clone();
    // Every node is given the same secrets file; the first to start makes it.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("sealpost.secrets");
    {
        let node_a = start_node(&database, &secrets, hub).await;
        let node_b = start_node(&database, &secrets, hub).await;
        let (bob, bob_api) = account(&node_a, "bob").await;
        let bob_token = bob_api.token().unwrap().expose().to_owned();
        let mut senders = Vec::new();
        for i in 0..SENDERS {
            senders.push(account(&node_a, &format!("sender{i}")).await);
        }
        let mut ws = open_stream(&node_b, &bob_token, 0).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (_, api) in senders {
            tasks.spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    let req = SendRequest {
                        to: bob,
                        ciphertext: random(344),
                        key_version: 1,
                        sender_key_version: 1,
                        sender_copy: None,
                    };
                    ids.push(api.send(&req).await.unwrap().id);
                }
                ids
            });
        }
        let total = (SENDERS * EACH) as i64;
        let mut last = 0i64;
        let mut received = Vec::with_capacity(total as usize);
        while last < total {
            let frame = next_json(&mut ws).await;
            assert_eq!(frame["type"], "message", "{frame}");
            let seq = frame["message"]["seq"].as_i64().unwrap();
            assert_eq!(seq, last + 1, "a gap or a duplicate: {seq} after {last}");
            last = seq;
            received.push(Uuid::parse_str(frame["message"]["id"].as_str().unwrap()).unwrap());
            // Cut the stream twice in the middle, and resume from the last seq received.
            if seq == total / 3 || seq == 2 * total / 3 {
                drop(ws);
                ws = open_stream(&node_b, &bob_token, last).await;
            }
        }
        let mut sent = HashSet::new();
        while let Some(ids) = tasks.join_next().await {
            sent.extend(ids.unwrap());
        }
        assert_eq!(received.len(), sent.len());
        assert_eq!(received.into_iter().collect::<HashSet<_>>(), sent);

        if !hub.is_empty() {
            return;
        }
        // The notification connections drop (as in a database restart): the nodes reconnect, and
        // the stream catches up with what was stored meanwhile, losing nothing.
        let killed = db.terminate_listeners().await;
        assert!(
            killed >= 2,
            "expected both nodes' LISTEN connections, found {killed}"
        );
        let (_, alice) = account(&node_a, "alice").await;
        for _ in 0..10 {
            let req = SendRequest {
                to: bob,
                ciphertext: random(344),
                key_version: 1,
                sender_key_version: 1,
                sender_copy: None,
            };
            alice.send(&req).await.unwrap();
        }
        for _ in 0..10 {
            let frame = next_json(&mut ws).await;
            let seq = frame["message"]["seq"].as_i64().unwrap();
            assert_eq!(seq, last + 1, "a gap or a duplicate after the reconnection");
            last = seq;
        }
    }
}

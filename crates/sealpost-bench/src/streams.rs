//! The WebSocket scenarios (PROTOCOL §4.2): `push`, the time from a send's 201 to the message's
//! arrival on the recipient's stream (possibly on another node), and `idle-streams`, what holding
//! many authenticated idle streams costs the server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitStream, StreamExt as _};
use futures_util::SinkExt as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::http::{Conn, Req, Target};
use crate::prepare::{send_requests, Account};
use crate::report::Outcome;
use crate::runner::Timing;
use crate::stats::{histogram, record, CpuMeter, Percentiles, Window};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a sent message may take to arrive before it counts as lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Streams opened at once by idle-streams (more would overflow the listen backlog).
const OPEN_PARALLEL: usize = 64;

/// The frames a client receives.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<FrameMessage>,
}

#[derive(Deserialize)]
struct FrameMessage {
    id: Uuid,
}

/// Small client buffers: thousands of idle streams should not cost the load generator gigabytes.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens an authenticated stream of `account`'s mailbox after `after`, and waits for `ready`.
async fn open_stream(target: &Target, account: &Account, after: i64) -> anyhow::Result<Ws> {
    let url = format!("{}/v1/stream", target.ws_base);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
    let auth = json!({"type": "auth", "access_token": account.token, "after": after});
    ws.send(Message::text(auth.to_string())).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Err(_) => anyhow::bail!("no ready frame within 30 s"),
            Ok(None) => anyhow::bail!("the stream closed before ready"),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Frame = serde_json::from_str(&text)?;
                if frame.kind == "ready" {
                    return Ok(ws);
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => anyhow::bail!("closed before ready: {c:?}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Forwards the id and arrival time of every message frame until the stream ends.
async fn read_arrivals(
    mut incoming: SplitStream<Ws>,
    arrivals: mpsc::UnboundedSender<(Uuid, Instant)>,
) {
    while let Some(Ok(message)) = incoming.next().await {
        if let Message::Text(text) = message {
            let at = Instant::now();
            if let Ok(Frame {
                message: Some(m), ..
            }) = serde_json::from_str::<Frame>(&text)
            {
                if arrivals.send((m.id, at)).is_err() {
                    return;
                }
            }
        }
    }
}

/// What one push pair measured per window.
struct PairResult {
    windows: Vec<Window>,
    send_to_arrival: hdrhistogram::Histogram<u64>,
    before_201: u64,
}

/// `push`: `pairs` (receiver, sender) pairs; each sender sends, reads the 201's id, and waits
/// for that id on the receiver's stream (from `stream_target`) before sending again (or, with a
/// rate, at its share of the rate).
pub async fn push(
    target: &Target,
    stream_target: &Target,
    pairs: Vec<(&Account, &Account, i64)>,
    timing: Timing,
    server_pid: Option<u32>,
) -> anyhow::Result<Outcome> {
    let n = pairs.len();
    let mut prepared = Vec::with_capacity(n);
    for (receiver, sender, after) in &pairs {
        let ws = open_stream(stream_target, receiver, *after).await?;
        let (sink, incoming) = ws.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_arrivals(incoming, tx));
        let reqs = send_requests(sender, receiver, 4)?;
        let mut conn = Conn::new(target);
        conn.open()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect: {e}"))?;
        prepared.push((sink, reader, rx, reqs, conn));
    }
    let meter = CpuMeter::start(server_pid);
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + timing.warmup;
    let end = measure_start + timing.window * timing.repeat as u32;
    let gap = timing.rate.map(|r| Duration::from_secs_f64(n as f64 / r));
    let mut tasks = Vec::new();
    let mut keep = Vec::new();
    for (i, (sink, reader, rx, reqs, conn)) in prepared.into_iter().enumerate() {
        keep.push((sink, reader));
        let first = start + gap.map_or(Duration::ZERO, |g| g.mul_f64(i as f64 / n as f64));
        tasks.push(tokio::spawn(push_pair(
            conn,
            reqs,
            rx,
            PairTiming {
                first,
                gap,
                measure_start,
                end,
                window: timing.window,
                repeat: timing.repeat,
            },
        )));
    }
    let mut windows: Vec<Window> = (0..timing.repeat).map(|_| Window::new(1)).collect();
    let mut e2e = histogram();
    let mut early = 0;
    for task in tasks {
        let r = task.await?;
        for (all, w) in windows.iter_mut().zip(&r.windows) {
            all.merge(w);
        }
        let _ = e2e.add(&r.send_to_arrival);
        early += r.before_201;
    }
    let cpu = meter.stop();
    for (mut sink, reader) in keep {
        let _ = sink.send(Message::Close(None)).await;
        reader.abort();
    }
    let mut outcome = Outcome::from_windows("push", &["push"], &windows, n, timing, cpu);
    let e2e = Percentiles::of(&e2e);
    let mut extra = Map::new();
    extra.insert("send_to_arrival_p50_ms".into(), json!(e2e.p50));
    extra.insert("send_to_arrival_p99_ms".into(), json!(e2e.p99));
    extra.insert("arrived_before_201".into(), json!(early));
    extra.insert(
        "stream_node".into(),
        json!(if stream_target.addr == target.addr {
            "same"
        } else {
            "other"
        }),
    );
    outcome.extra.extend(extra);
    Ok(outcome)
}

#[derive(Clone, Copy)]
struct PairTiming {
    first: Instant,
    gap: Option<Duration>,
    measure_start: Instant,
    end: Instant,
    window: Duration,
    repeat: usize,
}

async fn push_pair(
    mut conn: Conn,
    reqs: Vec<Req>,
    mut arrivals: mpsc::UnboundedReceiver<(Uuid, Instant)>,
    t: PairTiming,
) -> PairResult {
    let mut result = PairResult {
        windows: (0..t.repeat).map(|_| Window::new(1)).collect(),
        send_to_arrival: histogram(),
        before_201: 0,
    };
    let mut due = t.first;
    let mut i = 0;
    loop {
        if let Some(gap) = t.gap {
            if due >= t.end {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            due += gap;
        }
        let sent_at = Instant::now();
        if sent_at >= t.end {
            break;
        }
        let window = (sent_at >= t.measure_start).then(|| {
            let w = sent_at.duration_since(t.measure_start).as_nanos() / t.window.as_nanos().max(1);
            (w as usize).min(t.repeat - 1)
        });
        let outcome = push_one(&mut conn, &reqs[i % reqs.len()], &mut arrivals).await;
        i += 1;
        if let Ok((_, arrived)) = &outcome {
            if *arrived >= t.measure_start && *arrived < t.end {
                let w =
                    arrived.duration_since(t.measure_start).as_nanos() / t.window.as_nanos().max(1);
                result.windows[(w as usize).min(t.repeat - 1)].completed += 1;
            }
        }
        let Some(w) = window else { continue };
        match outcome {
            Ok((created, arrived)) => {
                // An arrival can beat the 201 to the client: that is a zero wait after the 201.
                if arrived < created {
                    result.before_201 += 1;
                }
                record(
                    &mut result.windows[w].ops[0],
                    arrived.saturating_duration_since(created),
                );
                record(&mut result.send_to_arrival, arrived - sent_at);
            }
            Err(e) => result.windows[w].errors.add(e),
        }
    }
    result
}

/// One send and its arrival: (when the 201 was read, when the frame arrived).
async fn push_one(
    conn: &mut Conn,
    req: &Req,
    arrivals: &mut mpsc::UnboundedReceiver<(Uuid, Instant)>,
) -> Result<(Instant, Instant), String> {
    #[derive(Deserialize)]
    struct Created {
        id: Uuid,
    }
    let body = conn.send(req).await.map_err(|e| e.to_string())?;
    let created_at = Instant::now();
    let created: Created = serde_json::from_slice(&body).map_err(|e| format!("201 body: {e}"))?;
    let deadline = created_at + DELIVERY_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
            Err(_) => return Err(format!("not delivered within {DELIVERY_TIMEOUT:?}")),
            Ok(None) => return Err("the stream ended".into()),
            Ok(Some((id, at))) if id == created.id => return Ok((created_at, at)),
            // An older message (an earlier timeout): skip it.
            Ok(Some(_)) => {}
        }
    }
}

/// `idle-streams`: opens `count` authenticated streams spread over `accounts` (each after its
/// newest entry, so no backlog is sent), holds them for `hold`, and reports the server's RSS
/// before, when all are open, and at the end.
pub async fn idle(
    target: &Target,
    accounts: &[(&Account, i64)],
    count: usize,
    hold: Duration,
    server_pid: Option<u32>,
) -> anyhow::Result<Map<String, Value>> {
    let rss = || server_pid.and_then(crate::stats::rss_kib);
    let before = rss();
    let started = Instant::now();
    let opened = Arc::new(AtomicUsize::new(0));
    let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let (account, after) = accounts[i % accounts.len()];
            let opened = Arc::clone(&opened);
            async move {
                let ws = open_stream(target, account, after).await;
                let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 1000 == 0 {
                    eprintln!("  {n} streams open");
                }
                ws
            }
        })
        .buffer_unordered(OPEN_PARALLEL)
        .collect()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    let mut errors = crate::stats::Errors::default();
    let mut readers = Vec::new();
    let mut sinks = Vec::new();
    for r in results {
        match r {
            Ok(ws) => {
                let (sink, mut incoming) = ws.split();
                sinks.push(sink);
                // Keep reading, so that pings are answered and a close is noticed.
                readers.push(tokio::spawn(async move {
                    while let Some(Ok(m)) = incoming.next().await {
                        if matches!(m, Message::Close(_)) {
                            return true;
                        }
                    }
                    true
                }));
            }
            Err(e) => errors.add(e),
        }
    }
    let open = sinks.len();
    let all_open = rss();
    eprintln!("  {open} of {count} streams open in {open_secs:.1}s; holding them for {hold:?}…");
    let meter = CpuMeter::start(server_pid);
    tokio::time::sleep(hold).await;
    let cpu = meter.stop();
    let closed_early = readers.iter().filter(|r| r.is_finished()).count();
    let held = rss();
    for mut sink in sinks {
        let _ = sink.send(Message::Close(None)).await;
    }
    for r in readers {
        r.abort();
    }
    let per_stream = match (before, held) {
        (Some(b), Some(h)) if open > 0 => Some((h.saturating_sub(b)) as f64 / open as f64),
        _ => None,
    };
    let mut out = Map::new();
    out.insert("streams_requested".into(), json!(count));
    out.insert("streams_open".into(), json!(open));
    out.insert("streams_closed_early".into(), json!(closed_early));
    out.insert("open_errors".into(), json!(errors.count));
    out.insert("open_error_samples".into(), json!(errors.samples));
    out.insert("open_s".into(), json!((open_secs * 10.0).round() / 10.0));
    out.insert("hold_s".into(), json!(hold.as_secs_f64()));
    out.insert("server_rss_before_kib".into(), json!(before));
    out.insert("server_rss_all_open_kib".into(), json!(all_open));
    out.insert("server_rss_held_kib".into(), json!(held));
    out.insert(
        "server_rss_per_stream_kib".into(),
        json!(per_stream.map(|v| (v * 10.0).round() / 10.0)),
    );
    let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
    out.insert("server_cpu_idle_pct".into(), json!(round(cpu.server_pct)));
    out.insert("bench_cpu_idle_pct".into(), json!(round(cpu.bench_pct)));
    Ok(out)
}

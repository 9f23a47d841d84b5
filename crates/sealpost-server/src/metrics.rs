//! Prometheus metrics, in the text exposition format: requests by route and status, a latency
//! histogram, messages stored, the database pool and the streams.

use crate::pages::PageCache;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sealpost_proto::sync::lock;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One route's histograms, by (method, status).
type ByStatus = BTreeMap<(&'static str, u16), Histogram>;

/// The node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By route pattern, then by (method, status): no allocation once a route has been seen.
    requests: Mutex<BTreeMap<String, ByStatus>>,
    pub messages_stored: AtomicU64,
    pub streams_open: AtomicU64,
    pub messages_pushed: AtomicU64,
    pub slow_consumer_disconnects: AtomicU64,
    pub overloaded: AtomicU64,
    pub group_commits: AtomicU64,
    pub group_committed_sends: AtomicU64,
    /// Logins and refreshes written by the group commit.
    pub group_committed_sessions: AtomicU64,
    /// Entries deleted by `--retention-days`.
    pub retention_deleted_entries: AtomicU64,
}

impl Metrics {
    /// Counts one request of `route` (the matched path pattern, never the raw URL).
    pub fn observe(
        &self,
        method: &axum::http::Method,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let secs = elapsed.as_secs_f64();
        let method = method_name(method);
        let mut requests = lock(&self.requests);
        let by_status = match requests.get_mut(route) {
            Some(m) => m,
            None => requests.entry(route.to_owned()).or_default(),
        };
        let h = by_status.entry((method, status)).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.buckets[i] += 1;
            }
        }
    }

    /// The text exposition.
    pub fn render(&self, backend: &str, pool: (u32, usize), pages: &PageCache) -> String {
        let mut out = String::with_capacity(4096);
        let requests = lock(&self.requests);
        out.push_str(
            "# HELP sealpost_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE sealpost_http_requests_total counter\n");
        for (route, (method, status), h) in requests
            .iter()
            .flat_map(|(route, m)| m.iter().map(move |(k, h)| (route, k, h)))
        {
            let _ = writeln!(
                out,
                "sealpost_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP sealpost_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE sealpost_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
        for (route, (method, _), h) in requests
            .iter()
            .flat_map(|(route, m)| m.iter().map(move |(k, h)| (route, k, h)))
        {
            let agg = by_route.entry((method, route.as_str())).or_default();
            agg.count += h.count;
            agg.sum += h.sum;
            for (a, b) in agg.buckets.iter_mut().zip(h.buckets.iter()) {
                *a += b;
            }
        }
        for ((method, route), h) in &by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (le, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "sealpost_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "sealpost_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "sealpost_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "sealpost_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        gauge(
            &mut out,
            "sealpost_messages_stored_total",
            "counter",
            "Mailbox entries stored by this node.",
            load(&self.messages_stored),
        );
        gauge(
            &mut out,
            "sealpost_overloaded_total",
            "counter",
            "Requests shed with 503.",
            load(&self.overloaded),
        );
        gauge(
            &mut out,
            "sealpost_streams_open",
            "gauge",
            "WebSocket streams open on this node.",
            load(&self.streams_open),
        );
        gauge(
            &mut out,
            "sealpost_messages_pushed_total",
            "counter",
            "Entries pushed on streams.",
            load(&self.messages_pushed),
        );
        gauge(
            &mut out,
            "sealpost_slow_consumer_disconnects_total",
            "counter",
            "Streams closed with 4409 for falling behind.",
            load(&self.slow_consumer_disconnects),
        );
        gauge(
            &mut out,
            "sealpost_group_commits_total",
            "counter",
            "Transactions of the group commit (sends, logins and refreshes).",
            load(&self.group_commits),
        );
        gauge(
            &mut out,
            "sealpost_group_committed_sends_total",
            "counter",
            "Sends stored by those transactions.",
            load(&self.group_committed_sends),
        );
        gauge(
            &mut out,
            "sealpost_group_committed_sessions_total",
            "counter",
            "Logins and refreshes stored by those transactions.",
            load(&self.group_committed_sessions),
        );
        gauge(
            &mut out,
            "sealpost_retention_deleted_entries_total",
            "counter",
            "Mailbox entries deleted by retention (--retention-days).",
            load(&self.retention_deleted_entries),
        );
        gauge(
            &mut out,
            "sealpost_page_cache_hits_total",
            "counter",
            "Newest pages served from the page cache (after checking the mailbox's version).",
            load(&pages.hits),
        );
        gauge(
            &mut out,
            "sealpost_page_cache_misses_total",
            "counter",
            "Newest pages read from the database.",
            load(&pages.misses),
        );
        gauge(
            &mut out,
            "sealpost_page_cache_bytes",
            "gauge",
            "Bytes of page bodies the page cache holds.",
            pages.bytes().to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP sealpost_db_pool_connections Database pool connections by state.\n\
             # TYPE sealpost_db_pool_connections gauge\n\
             sealpost_db_pool_connections{{backend=\"{backend}\",state=\"idle\"}} {}\n\
             sealpost_db_pool_connections{{backend=\"{backend}\",state=\"in_use\"}} {}",
            pool.1,
            (pool.0 as usize).saturating_sub(pool.1)
        );
        out
    }
}

/// A method's name without allocating (the rare others are counted together).
fn method_name(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

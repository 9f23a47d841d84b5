//! What a run measures: latency histograms (hdrhistogram, microseconds), error counts with a few
//! distinct samples, and process readings from `/proc` (CPU time from `stat`, RSS from `status`).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Distinct error texts kept per run.
pub const ERROR_SAMPLES: usize = 5;

/// Latencies in microseconds, from 1 µs to 60 s, three significant digits.
#[expect(
    clippy::expect_used,
    reason = "constant bounds that hdrhistogram accepts: 1 ≤ low, 2·low ≤ high, 3 digits ≤ 5"
)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records a latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(micros.max(1));
}

/// Latency percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Requests that did not get a 2xx: how many, and the first few distinct reasons.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn add(&mut self, what: impl std::fmt::Display) {
        self.count += 1;
        if self.samples.len() < ERROR_SAMPLES {
            let text = what.to_string();
            if !self.samples.contains(&text) {
                self.samples.push(text);
            }
        }
    }

    pub fn merge(&mut self, other: &Errors) {
        self.count += other.count;
        for s in &other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }
}

/// One measured window: a histogram per kind of operation (requests filed by when they were
/// due), the requests answered within it (filed by when they were answered: the throughput), and
/// the errors.
#[derive(Debug, Clone)]
pub struct Window {
    pub ops: Vec<Histogram<u64>>,
    pub completed: u64,
    /// Open loop only: requests due in the window that were never sent, the server having
    /// fallen too far behind (their wait until the end is in the histograms).
    pub unsent: u64,
    pub errors: Errors,
}

impl Window {
    pub fn new(kinds: usize) -> Window {
        Window {
            ops: (0..kinds).map(|_| histogram()).collect(),
            completed: 0,
            unsent: 0,
            errors: Errors::default(),
        }
    }

    pub fn merge(&mut self, other: &Window) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = a.add(b);
        }
        self.completed += other.completed;
        self.unsent += other.unsent;
        self.errors.merge(&other.errors);
    }

    /// Every kind of operation in one histogram.
    pub fn all(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in &self.ops {
            let _ = all.add(h);
        }
        all
    }

    /// Requests answered with a 2xx within the window.
    pub fn ok(&self) -> u64 {
        self.completed
    }
}

/// CPU time (user + system) of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_cpu_ticks(&text).map(|ticks| Duration::from_millis(ticks * 10))
}

/// utime + stime of a `/proc/PID/stat` line, in clock ticks (USER_HZ, 100 per second on Linux).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process in KiB (VmRSS of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&text)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (busy, total) jiffies of the whole machine, from the first line of `/proc/stat`.
fn machine_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU readings over an interval: this process, the server (with its PID), and the machine.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    started: Instant,
    own: Option<Duration>,
    server: Option<Duration>,
    machine: Option<(u64, u64)>,
    server_pid: Option<u32>,
}

/// CPU use over an interval, in percent of one core (so 200 is two cores busy), and the
/// machine's as a percentage of all its cores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    pub bench_pct: Option<f64>,
    pub server_pct: Option<f64>,
    pub machine_busy_pct: Option<f64>,
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            own: cpu_time(None),
            server: server_pid.and_then(|p| cpu_time(Some(p))),
            machine: machine_jiffies(),
            server_pid,
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64() / wall * 100.0),
            _ => None,
        };
        let machine = match (self.machine, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0)
            }
            _ => None,
        };
        CpuUse {
            bench_pct: pct(self.own, cpu_time(None)),
            server_pct: pct(self.server, self.server_pid.and_then(|p| cpu_time(Some(p)))),
            machine_busy_pct: machine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = histogram();
        for i in 1..=1000u64 {
            record(&mut h, Duration::from_micros(i * 10));
        }
        let p = Percentiles::of(&h);
        assert!((p.p50 - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p99 - 9.9).abs() < 0.01, "{p:?}");
        assert!((p.p999 - 9.99).abs() < 0.01, "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    #[test]
    fn errors_keep_a_few_distinct_samples() {
        let mut e = Errors::default();
        for i in 0..20 {
            e.add(format!("503 #{}", i % 7));
        }
        assert_eq!(e.count, 20);
        assert_eq!(e.samples.len(), ERROR_SAMPLES);
        let mut f = Errors::default();
        f.add("503 #0");
        f.merge(&e);
        assert_eq!(f.count, 21);
        assert_eq!(f.samples[0], "503 #0");
    }

    #[test]
    fn proc_lines() {
        let stat = "1234 (sealpost serve (x)) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 4";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
        let status = "Name:\tsealpost\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert!(cpu_time(None).is_some());
    }
}

//! The timed loop: one worker per connection, each cycling through its prepared requests, closed
//! loop (next request when the last is answered) or open loop (requests due at a fixed rate,
//! latency counted from when each was due). Results go into back-to-back measured windows after
//! an unmeasured warm-up.

use std::time::{Duration, Instant};

use crate::http::{Conn, Failure, Req, Target};
use crate::stats::{record, Window};

/// What to send: the names of the kinds of operation, and for each connection the cycle of
/// (kind, request) it goes through.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kinds: Vec<&'static str>,
    pub workers: Vec<Vec<(usize, Req)>>,
    /// Chained requests: after each 2xx, the request just sent is replaced by what this makes of
    /// the answer (a refresh answers the token the next refresh must carry).
    pub chain: Option<Chain>,
}

/// Makes the next request of a chain from the last answer's body.
pub type Chain = fn(&[u8]) -> anyhow::Result<Req>;

/// When to send.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    /// One measured window.
    pub window: Duration,
    /// Measured windows, back to back.
    pub repeat: usize,
    /// Open loop at this many requests per second in total; closed loop without.
    pub rate: Option<f64>,
}

/// Where a worker's time goes, fixed before it starts.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// When the warm-up starts (every worker at once).
    start: Instant,
    measure_start: Instant,
    end: Instant,
    window: Duration,
    repeat: usize,
    /// Open loop: this worker's first due time and the gap between its requests.
    open: Option<(Instant, Duration)>,
}

impl Schedule {
    /// The measured window a request due at `due` belongs to, if any.
    fn window_of(&self, due: Instant) -> Option<usize> {
        if due < self.measure_start || due >= self.end {
            return None;
        }
        let since = due.duration_since(self.measure_start).as_nanos();
        let w = (since / self.window.as_nanos().max(1)) as usize;
        Some(w.min(self.repeat - 1))
    }
}

/// Runs `plan` on fresh connections; answers one merged [`Window`] per repetition.
pub async fn run(target: &Target, plan: &Plan, timing: Timing) -> anyhow::Result<Vec<Window>> {
    let n = plan.workers.len();
    anyhow::ensure!(n > 0, "no connections to run on");
    anyhow::ensure!(timing.repeat > 0, "no repetition to measure");
    // Connect everyone first, so that connecting is neither timed nor staggered.
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = Conn::new(target);
        conn.open()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", target.addr))?;
        conns.push(conn);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + timing.warmup;
    let end = measure_start + timing.window * timing.repeat as u32;
    let kinds = plan.kinds.len();
    let mut tasks = Vec::with_capacity(n);
    for (i, (conn, ops)) in conns
        .into_iter()
        .zip(plan.workers.iter().cloned())
        .enumerate()
    {
        let open = timing.rate.map(|rate| {
            // Worker i sends at start + (i + k·n)/rate: evenly interleaved arrivals.
            let first = start + Duration::from_secs_f64(i as f64 / rate);
            (first, Duration::from_secs_f64(n as f64 / rate))
        });
        let schedule = Schedule {
            start,
            measure_start,
            end,
            window: timing.window,
            repeat: timing.repeat,
            open,
        };
        tasks.push(tokio::spawn(worker(conn, ops, kinds, schedule, plan.chain)));
    }
    let mut windows: Vec<Window> = (0..timing.repeat).map(|_| Window::new(kinds)).collect();
    for task in tasks {
        let mine = task.await?;
        for (all, w) in windows.iter_mut().zip(&mine) {
            all.merge(w);
        }
    }
    Ok(windows)
}

async fn worker(
    mut conn: Conn,
    mut ops: Vec<(usize, Req)>,
    kinds: usize,
    s: Schedule,
    chain: Option<Chain>,
) -> Vec<Window> {
    let mut windows: Vec<Window> = (0..s.repeat).map(|_| Window::new(kinds)).collect();
    if ops.is_empty() {
        return windows;
    }
    tokio::time::sleep_until(s.open.map_or(s.start, |o| o.0).into()).await;
    let mut next_due = s.open.map(|o| o.0);
    let mut i = 0usize;
    loop {
        let at = i % ops.len();
        let (kind, req) = &ops[at];
        let kind = *kind;
        i += 1;
        // `due` files the request into a window; `begin` is where its latency starts.
        let (due, begin) = match (&mut next_due, s.open) {
            (Some(due), Some((_, gap))) => {
                let this = *due;
                if this >= s.end {
                    break;
                }
                *due += gap;
                let now = Instant::now();
                if now >= s.end {
                    // So far behind that the run is over: what is still due is not sent, but it
                    // waited at least until now, which is recorded as its latency (a lower
                    // bound), so that an overloaded server cannot look fast by answering little.
                    let mut unsent = this;
                    while unsent < s.end {
                        if let Some(w) = s.window_of(unsent) {
                            record(&mut windows[w].ops[kind], now - unsent);
                            windows[w].unsent += 1;
                        }
                        unsent += gap;
                    }
                    break;
                }
                if now >= this {
                    // Behind schedule because the server was slow: the wait counts.
                    (this, this)
                } else {
                    // Early: wait for the due time; the timer's own lateness does not count.
                    tokio::time::sleep_until(this.into()).await;
                    (this, Instant::now())
                }
            }
            _ => {
                let now = Instant::now();
                if now >= s.end {
                    break;
                }
                (now, now)
            }
        };
        let result = conn.send(req).await;
        let done = Instant::now();
        if let (Some(next), Ok(body)) = (chain, &result) {
            match next(body) {
                Ok(req) => ops[at].1 = req,
                Err(e) => {
                    eprintln!("  cannot chain the next request: {e}");
                    break;
                }
            }
        }
        if let (Ok(_), Some(w)) = (&result, s.window_of(done)) {
            windows[w].completed += 1;
        }
        let Some(w) = s.window_of(due) else {
            continue;
        };
        match result {
            Ok(_) => record(&mut windows[w].ops[kind], done - begin),
            Err(e) => {
                let transport = matches!(e, Failure::Transport(_));
                windows[w].errors.add(e);
                if transport {
                    // Do not spin on a server that is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_back_to_back_after_the_warmup() {
        let t0 = Instant::now();
        let s = Schedule {
            start: t0,
            measure_start: t0 + Duration::from_secs(2),
            end: t0 + Duration::from_secs(2 + 3 * 10),
            window: Duration::from_secs(10),
            repeat: 3,
            open: None,
        };
        assert_eq!(s.window_of(t0), None);
        assert_eq!(s.window_of(t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(s.window_of(t0 + Duration::from_secs(12)), Some(1));
        assert_eq!(s.window_of(t0 + Duration::from_millis(31_999)), Some(2));
        assert_eq!(s.window_of(t0 + Duration::from_secs(32)), None);
    }
}

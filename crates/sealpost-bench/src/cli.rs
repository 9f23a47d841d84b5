//! Command-line options of `sealpost-bench`, and the small parsers they need (durations, lists of
//! scenarios and rates).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// What `--help` opens with.
const ABOUT: &str = "Load generator for a Sealpost server (PROTOCOL §4).";

const LONG_ABOUT: &str = "\
Load generator for a Sealpost server (PROTOCOL §4).

Before anything is timed it registers real accounts (Argon2id with the limits the server's \
prelogin hands out, derived once per account), logs them in, and seals real envelopes with the \
crypto crate. Then it runs each scenario for a fixed time over a fixed number of keep-alive \
HTTP/1.1 connections, and prints req/s, p50/p99/p99.9 latency, errors, its own CPU use (and the \
server's RSS and CPU with --server-pid), and one JSON line per scenario for scripts.

Scenarios (--scenario, comma-separated, run in order; the ratio to `baseline` is printed when \
baseline ran first in the same invocation):
  baseline      GET /healthz: what the machine and the HTTP stack alone can do
  send          POST /v1/messages, one 344-byte sealed envelope, between --accounts accounts
  inbox         GET /v1/messages?before=MAX&limit=--page: the newest page of one mailbox that \
first gets --fill entries (skipped when it already holds that many)
  login         POST /v1/auth/login with precomputed auth keys (the KDF is not timed)
  refresh       POST /v1/auth/refresh: each connection rotates its own session's refresh token, \
the next request carrying the token the last answer gave
  mixed         90% inbox, 10% send
  push          a send's 201 → its arrival on a WebSocket stream (of --stream-url when given)
  sweep         send, open-loop, at each rate of --rates: latency against offered load
  idle-streams  open --count authenticated idle streams and hold them for --duration; with \
--server-pid prints the server's RSS before and after

Closed loop (the default): every connection sends its next request when the previous one is \
answered, as wrk, autocannon and the tutorial figures do. Open loop (--rate): requests are due at \
a fixed rate whatever the server does, and latency counts from when a request was due, so a \
server that falls behind shows it (no coordinated omission).

Every non-2xx answer and every transport error is an error; the first few distinct ones are \
printed. Start the server with raised rate limits (sealpost serve --rate-per-address 100000000 \
--rate-per-email 100000000) or registration and login are refused with 429.

`sealpost-bench chart` draws SVG charts from a file of the JSON lines (see --append).";

/// `sealpost-bench`: runs scenarios (the default) or draws charts (`chart`).
#[derive(Debug, Parser)]
#[command(
    name = "sealpost-bench",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands besides running scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw SVG charts (throughput and p99 per scenario and backend; send latency against
    /// offered load) from a file of result lines.
    Chart(ChartArgs),
}

/// Options of a run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Base URL of the server (http:// only; the WebSocket URL is derived from it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Scenarios to run, in order, comma-separated: baseline, send, inbox, login, refresh, mixed,
    /// push, sweep, idle-streams; `all` is baseline,send,inbox,login,mixed.
    #[arg(long, default_value = "baseline", value_delimiter = ',')]
    pub scenario: Vec<Scenario>,

    /// Concurrent connections (closed loop: requests in flight). For push: sender/stream pairs.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,

    /// Length of one measured repetition, e.g. 15s, 500ms, 2m (a bare number is seconds).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Unmeasured run-in before the first repetition of each scenario (same load).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Measured repetitions, back to back; each is reported, and the median is the result.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,

    /// Open loop: requests per second offered in total, spread evenly over the connections.
    /// Without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Offered rates (req/s) of the `sweep` scenario, comma-separated.
    #[arg(
        long,
        default_value = "500,1000,2000,4000,6000,8000",
        value_delimiter = ','
    )]
    pub rates: Vec<f64>,

    /// Accounts that send to one another (send, mixed) and log in (login).
    #[arg(long, default_value_t = 32)]
    pub accounts: usize,

    /// Entries the inbox mailbox must hold before inbox and mixed are timed.
    #[arg(long, default_value_t = 100_000)]
    pub fill: u64,

    /// Page size of the inbox scenario (the `limit` query parameter, 1..=200).
    #[arg(long, default_value_t = 50)]
    pub page: u32,

    /// Streams the idle-streams scenario opens and holds.
    #[arg(long, default_value_t = 5000)]
    pub count: usize,

    /// Base URL the push scenario streams from (another node on the same database); default
    /// --url.
    #[arg(long)]
    pub stream_url: Option<String>,

    /// PID of the server, to report its RSS (VmRSS) and CPU use.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Backend label for the results (sqlite, postgres); by default read from /metrics.
    #[arg(long)]
    pub backend: Option<String>,

    /// The server's commit, stored with the results (default: `git rev-parse --short HEAD` of
    /// the current directory, with `+dirty` when it has uncommitted changes).
    #[arg(long)]
    pub commit: Option<String>,

    /// Free text stored with the results (e.g. "log=warn, pool=16").
    #[arg(long, default_value = "")]
    pub label: String,

    /// Prefix of the bench accounts' emails (`<tag>-<n>@bench.example`): reusing a tag reuses
    /// the accounts and the filled inbox.
    #[arg(long, default_value = "bench")]
    pub tag: String,

    /// Print only the JSON result lines on stdout (the human report goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// Also append the JSON result lines to this file (the input of `chart`).
    #[arg(long)]
    pub append: Option<PathBuf>,

    /// Worker threads of the load generator's runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Options of `chart`.
#[derive(Debug, Clone, Args)]
pub struct ChartArgs {
    /// File of JSON result lines (as written by --append).
    #[arg(long, default_value = "docs/perf/results.jsonl")]
    pub input: PathBuf,

    /// Folder the SVG files are written to.
    #[arg(long, default_value = "docs/perf")]
    pub out: PathBuf,
}

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Baseline,
    Send,
    Inbox,
    Login,
    Refresh,
    Mixed,
    Push,
    Sweep,
    IdleStreams,
    /// baseline, send, inbox, login, mixed.
    All,
}

impl Scenario {
    /// The name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Send => "send",
            Scenario::Inbox => "inbox",
            Scenario::Login => "login",
            Scenario::Refresh => "refresh",
            Scenario::Mixed => "mixed",
            Scenario::Push => "push",
            Scenario::Sweep => "sweep",
            Scenario::IdleStreams => "idle-streams",
            Scenario::All => "all",
        }
    }

    /// `all` spelled out; every other scenario as is.
    pub fn expand(list: &[Scenario]) -> Vec<Scenario> {
        let mut out = Vec::new();
        for s in list {
            match s {
                Scenario::All => out.extend([
                    Scenario::Baseline,
                    Scenario::Send,
                    Scenario::Inbox,
                    Scenario::Login,
                    Scenario::Mixed,
                ]),
                other => out.push(*other),
            }
        }
        out
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            Scenario::Baseline,
            Scenario::Send,
            Scenario::Inbox,
            Scenario::Login,
            Scenario::Refresh,
            Scenario::Mixed,
            Scenario::Push,
            Scenario::Sweep,
            Scenario::IdleStreams,
            Scenario::All,
        ];
        let wanted = s.trim().to_ascii_lowercase();
        all.into_iter()
            .find(|c| c.name() == wanted || (wanted == "idle" && *c == Scenario::IdleStreams))
            .ok_or_else(|| {
                let names: Vec<_> = all.iter().map(|c| c.name()).collect();
                format!("unknown scenario {s:?}; one of {}", names.join(", "))
            })
    }
}

/// `15s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 15s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s or m"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl RunArgs {
    /// Refuses option values no scenario can run with.
    pub fn check(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.repeat == 0 {
            return Err("--repeat must be at least 1".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if self.accounts < 2 {
            return Err("--accounts must be at least 2 (they send to one another)".into());
        }
        if !(1..=200).contains(&self.page) {
            return Err("--page must lie within 1..=200".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of requests per second".into());
            }
        }
        if self.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
            return Err("--rates must be positive numbers of requests per second".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn options_parse_with_defaults_and_lists() {
        let cli = Cli::try_parse_from([
            "sealpost-bench",
            "--scenario",
            "baseline,send,idle-streams",
            "--duration",
            "10s",
            "--rates",
            "100,200",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let run = cli.run;
        assert_eq!(
            run.scenario,
            vec![Scenario::Baseline, Scenario::Send, Scenario::IdleStreams]
        );
        assert_eq!(run.duration, Duration::from_secs(10));
        assert_eq!(run.connections, 32);
        assert_eq!(run.repeat, 3);
        assert_eq!(run.rates, vec![100.0, 200.0]);
        assert!(run.check().is_ok());
        assert!(Cli::try_parse_from(["sealpost-bench", "--scenario", "nope"]).is_err());
        let all = Cli::try_parse_from(["sealpost-bench", "--scenario", "all"]).unwrap();
        assert_eq!(Scenario::expand(&all.run.scenario).len(), 5);
        // A later option wins, so scripts can override their defaults.
        let twice =
            Cli::try_parse_from(["sealpost-bench", "--repeat", "3", "--repeat", "1"]).unwrap();
        assert_eq!(twice.run.repeat, 1);
        let bad = Cli::try_parse_from(["sealpost-bench", "--connections", "0"]).unwrap();
        assert!(bad.run.check().is_err());
    }

    #[test]
    fn chart_is_a_subcommand() {
        let cli = Cli::try_parse_from(["sealpost-bench", "chart", "--out", "x"]).unwrap();
        match cli.command {
            Some(Command::Chart(args)) => assert_eq!(args.out, PathBuf::from("x")),
            None => panic!("chart expected"),
        }
    }
}

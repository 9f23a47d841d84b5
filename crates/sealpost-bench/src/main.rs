//! `sealpost-bench`: a load generator for a Sealpost server, and the charts of its results.
//!
//! Layout:
//! - `cli`: the options (`--help` explains each).
//! - `prepare`: accounts, sealed envelopes and the filled inbox, made before anything is timed.
//! - `http`: the timed path's lean HTTP/1.1 client (hyper's `client::conn`, one connection per
//!   worker, requests built in advance).
//! - `runner`: closed- and open-loop workers and the measured windows.
//! - `scenarios`: what each scenario sends; `streams`: the WebSocket scenarios (push latency,
//!   idle streams).
//! - `stats`: histograms, errors, `/proc` readings; `report`: the human report and the JSON line.
//! - `chart`: SVG charts of a results file, drawn as text.

mod chart;
mod cli;
mod http;
mod prepare;
mod report;
mod runner;
mod scenarios;
mod stats;
mod streams;

use std::io::Write as _;
use std::process::Command as Process;

use clap::Parser as _;

use crate::cli::{Cli, Command, RunArgs, Scenario};
use crate::report::Context;
use crate::scenarios::Bench;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Chart(args)) = cli.command {
        return chart::run(&args);
    }
    let args = cli.run;
    args.check().map_err(|e| anyhow::anyhow!(e))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(run(args))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let backend = match &args.backend {
        Some(b) => b.clone(),
        None => detect_backend(&args.url).await,
    };
    let ctx = Context {
        commit: args.commit.clone().unwrap_or_else(commit),
        backend,
        label: args.label.clone(),
        url: args.url.clone(),
        baseline_rps: None,
    };
    let scenarios = Scenario::expand(&args.scenario);
    let json_only = args.json;
    let mut results_file = match &args.append {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        }
        None => None,
    };
    let mut bench = Bench::new(args, ctx).await?;
    for scenario in scenarios {
        eprintln!("== {} ==", scenario.name());
        for outcome in bench.run(scenario).await? {
            if outcome.scenario == "baseline" {
                bench.ctx.baseline_rps = Some(outcome.rps());
            }
            let text = outcome.text(&bench.ctx);
            let line = serde_json::to_string(&outcome.json(&bench.ctx, scenarios::unix_ms()))?;
            if json_only {
                eprint!("{text}");
                println!("{line}");
            } else {
                print!("{text}");
                println!("{line}");
            }
            std::io::stdout().flush()?;
            if let Some(file) = &mut results_file {
                writeln!(file, "{line}")?;
            }
        }
    }
    Ok(())
}

/// The commit of the working tree the bench runs in (`+dirty` with uncommitted changes): run
/// it from the tree the server was built from.
fn commit() -> String {
    let git = |args: &[&str]| {
        Process::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head}+dirty")
            } else {
                head
            }
        }
        None => "unknown".to_owned(),
    }
}

/// The backend named in the server's `/metrics` (`backend="sqlite"`), or `unknown`.
async fn detect_backend(url: &str) -> String {
    let api = sealpost_client::api::Api::new(url);
    match api.metrics().await {
        Ok(text) => backend_of(&text).unwrap_or("unknown").to_owned(),
        Err(_) => "unknown".to_owned(),
    }
}

fn backend_of(metrics: &str) -> Option<&str> {
    let start = metrics.find("backend=\"")? + "backend=\"".len();
    let len = metrics[start..].find('"')?;
    Some(&metrics[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_metrics() {
        let text = "x 1\nsealpost_db_pool_connections{backend=\"postgres\",state=\"idle\"} 3\n";
        assert_eq!(backend_of(text), Some("postgres"));
        assert_eq!(backend_of("nothing"), None);
    }
}

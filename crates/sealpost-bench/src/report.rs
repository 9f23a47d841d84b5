//! The result of one scenario: the human report (per repetition and the median) and the one JSON
//! line for scripts and for `chart`.

use serde_json::{json, Map, Value};

use crate::runner::Timing;
use crate::stats::{CpuUse, Errors, Percentiles, Window};

/// Where and what was measured, the same for every scenario of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub commit: String,
    pub backend: String,
    pub label: String,
    pub url: String,
    /// req/s of `baseline` when it ran earlier in the same invocation.
    pub baseline_rps: Option<f64>,
}

/// One measured repetition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rep {
    pub rps: f64,
    pub latency: Percentiles,
    pub errors: u64,
}

/// A scenario's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub connections: usize,
    pub timing: Timing,
    pub reps: Vec<Rep>,
    /// Over every repetition.
    pub latency: Percentiles,
    /// Per kind of operation, when there are several (mixed): name, latency, answered.
    pub kinds: Vec<(String, Percentiles, u64)>,
    pub errors: Errors,
    pub cpu: CpuUse,
    pub server_rss_kib: Option<u64>,
    /// Scenario-specific figures, copied into the JSON line as they are.
    pub extra: Map<String, Value>,
}

impl Outcome {
    /// Sums up the measured windows of a run.
    pub fn from_windows(
        scenario: &str,
        kinds: &[&str],
        windows: &[Window],
        connections: usize,
        timing: Timing,
        cpu: CpuUse,
    ) -> Outcome {
        let secs = timing.window.as_secs_f64().max(1e-9);
        let reps = windows
            .iter()
            .map(|w| Rep {
                rps: w.ok() as f64 / secs,
                latency: Percentiles::of(&w.all()),
                errors: w.errors.count,
            })
            .collect();
        let mut total = Window::new(kinds.len());
        for w in windows {
            total.merge(w);
        }
        let mut extra = Map::new();
        if timing.rate.is_some() {
            extra.insert("unsent".into(), json!(total.unsent));
        }
        let kinds = if kinds.len() > 1 {
            kinds
                .iter()
                .zip(&total.ops)
                .map(|(name, h)| ((*name).to_owned(), Percentiles::of(h), h.len()))
                .collect()
        } else {
            Vec::new()
        };
        Outcome {
            scenario: scenario.to_owned(),
            connections,
            timing,
            reps,
            latency: Percentiles::of(&total.all()),
            kinds,
            errors: total.errors,
            cpu,
            server_rss_kib: None,
            extra,
        }
    }

    /// The median repetition's req/s.
    pub fn rps(&self) -> f64 {
        median(self.reps.iter().map(|r| r.rps).collect())
    }

    pub fn mode(&self) -> &'static str {
        if self.timing.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }

    /// The human report.
    pub fn text(&self, ctx: &Context) -> String {
        let mut out = String::new();
        if self.reps.is_empty() {
            // Nothing was timed (idle-streams): its figures are the extras.
            out.push_str(&format!(
                "{} — {} held for {:.0?} ({} on {})\n",
                self.scenario, self.connections, self.timing.window, ctx.backend, ctx.url
            ));
            for (key, value) in &self.extra {
                out.push_str(&format!("    {key}: {value}\n"));
            }
            return out;
        }
        let load = match self.timing.rate {
            Some(rate) => format!("open loop at {rate:.0} req/s"),
            None => "closed loop".to_owned(),
        };
        out.push_str(&format!(
            "{} — {load}, {} connections, {} × {:.0?} after {:.0?} warm-up ({} on {})\n",
            self.scenario,
            self.connections,
            self.reps.len(),
            self.timing.window,
            self.timing.warmup,
            ctx.backend,
            ctx.url
        ));
        for (i, r) in self.reps.iter().enumerate() {
            out.push_str(&format!(
                "  rep {}: {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  errors {}\n",
                i + 1,
                r.rps,
                r.latency.p50,
                r.latency.p99,
                r.latency.p999,
                r.errors
            ));
        }
        let ratio = self
            .ratio(ctx)
            .map(|r| format!("  = {r:.3} × baseline"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  result: {:.0} req/s (median of {})  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.1} ms  errors {}{ratio}\n",
            self.rps(),
            self.reps.len(),
            self.latency.p50,
            self.latency.p99,
            self.latency.p999,
            self.latency.max,
            self.errors.count
        ));
        for (name, p, n) in &self.kinds {
            out.push_str(&format!(
                "    {name}: {n} answered  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms\n",
                p.p50, p.p99, p.p999
            ));
        }
        for (key, value) in &self.extra {
            out.push_str(&format!("    {key}: {value}\n"));
        }
        let pct = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}%"));
        out.push_str(&format!(
            "  cpu: bench {} of one core, server {}, machine {} busy (all cores)",
            pct(self.cpu.bench_pct),
            pct(self.cpu.server_pct),
            pct(self.cpu.machine_busy_pct)
        ));
        if let Some(rss) = self.server_rss_kib {
            out.push_str(&format!("; server RSS {:.1} MiB", rss as f64 / 1024.0));
        }
        out.push('\n');
        for s in &self.errors.samples {
            out.push_str(&format!("  error: {s}\n"));
        }
        out
    }

    fn ratio(&self, ctx: &Context) -> Option<f64> {
        match ctx.baseline_rps {
            Some(b) if b > 0.0 && self.scenario != "baseline" => Some(self.rps() / b),
            _ => None,
        }
    }

    /// The one JSON line for scripts (and `chart`).
    pub fn json(&self, ctx: &Context, unix_ms: u128) -> Value {
        let round = |v: f64, digits: i32| {
            let f = 10f64.powi(digits);
            (v * f).round() / f
        };
        let mut line = json!({
            "v": 1,
            "ts_ms": unix_ms as u64,
            "commit": ctx.commit,
            "backend": ctx.backend,
            "label": ctx.label,
            "url": ctx.url,
            "scenario": self.scenario,
            "mode": self.mode(),
            "rate": self.timing.rate,
            "connections": self.connections,
            "duration_s": self.timing.window.as_secs_f64(),
            "repeat": self.reps.len(),
            "rps": round(self.rps(), 1),
            "rps_reps": self.reps.iter().map(|r| round(r.rps, 1)).collect::<Vec<_>>(),
            "p50_ms": round(self.latency.p50, 3),
            "p99_ms": round(self.latency.p99, 3),
            "p999_ms": round(self.latency.p999, 3),
            "max_ms": round(self.latency.max, 3),
            "p99_ms_reps": self.reps.iter().map(|r| round(r.latency.p99, 3)).collect::<Vec<_>>(),
            "errors": self.errors.count,
            "error_samples": self.errors.samples,
            "baseline_rps": ctx.baseline_rps.map(|b| round(b, 1)),
            "ratio_to_baseline": self.ratio(ctx).map(|r| round(r, 4)),
            "bench_cpu_pct": self.cpu.bench_pct.map(|v| round(v, 1)),
            "server_cpu_pct": self.cpu.server_pct.map(|v| round(v, 1)),
            "machine_busy_pct": self.cpu.machine_busy_pct.map(|v| round(v, 1)),
            "server_rss_kib": self.server_rss_kib,
        });
        if let Value::Object(map) = &mut line {
            if !self.kinds.is_empty() {
                let ops: Map<String, Value> = self
                    .kinds
                    .iter()
                    .map(|(name, p, n)| {
                        (
                            name.clone(),
                            json!({"answered": n, "p50_ms": round(p.p50, 3), "p99_ms": round(p.p99, 3), "p999_ms": round(p.p999, 3)}),
                        )
                    })
                    .collect();
                map.insert("ops".into(), Value::Object(ops));
            }
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        line
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::record;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn json_line_has_the_figures_and_the_ratio() {
        let timing = Timing {
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(2),
            repeat: 2,
            rate: None,
        };
        let mut windows = vec![Window::new(2), Window::new(2)];
        for (i, w) in windows.iter_mut().enumerate() {
            for _ in 0..(100 * (i + 1)) {
                record(&mut w.ops[0], Duration::from_millis(2));
                w.completed += 1;
            }
            record(&mut w.ops[1], Duration::from_millis(9));
            w.completed += 1;
            w.errors.add("503: overloaded");
        }
        let outcome = Outcome::from_windows(
            "mixed",
            &["inbox", "send"],
            &windows,
            32,
            timing,
            CpuUse::default(),
        );
        let ctx = Context {
            commit: "abc1234".into(),
            backend: "sqlite".into(),
            baseline_rps: Some(302.0),
            ..Context::default()
        };
        let line = outcome.json(&ctx, 1);
        let text = serde_json::to_string(&line).unwrap();
        assert!(!text.contains('\n'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["scenario"], "mixed");
        assert_eq!(back["mode"], "closed");
        assert_eq!(back["rps_reps"], json!([50.5, 100.5]));
        assert_eq!(back["rps"], 75.5);
        assert_eq!(back["ratio_to_baseline"], 0.25);
        assert_eq!(back["errors"], 2);
        assert_eq!(back["error_samples"], json!(["503: overloaded"]));
        assert_eq!(back["ops"]["send"]["answered"], 2);
        assert!((back["p50_ms"].as_f64().unwrap() - 2.0).abs() < 0.01);
        assert!(outcome.text(&ctx).contains("0.250 × baseline"));
    }
}

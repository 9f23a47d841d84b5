//! `sealpost-bench chart`: reads a file of result lines and writes SVG charts, drawn by hand as
//! text: throughput and p99 per scenario and backend (closed loop, newest line of each), and send
//! latency against offered load (the open-loop sweep).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::cli::ChartArgs;

/// The scenarios of the bar charts, in this order, with the issue's goal (req/s) where it set one.
const SCENARIOS: [(&str, Option<f64>); 7] = [
    ("baseline", None),
    ("send", Some(11_220.0)),
    ("inbox", Some(10_290.0)),
    ("login", Some(3_900.0)),
    ("refresh", None),
    ("mixed", None),
    ("push", None),
];
/// The issue's latency goal: p99 below this.
const P99_GOAL_MS: f64 = 10.0;
const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// A result line, as far as the charts need it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    ts: u64,
    backend: String,
    scenario: String,
    rate: Option<f64>,
    sweep: bool,
    rps: f64,
    p50: f64,
    p99: f64,
    ratio: Option<f64>,
}

fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter_map(|v| {
            Some(Row {
                ts: v["ts_ms"].as_u64().unwrap_or(0),
                backend: v["backend"].as_str()?.to_owned(),
                scenario: v["scenario"].as_str()?.to_owned(),
                rate: v["rate"].as_f64(),
                sweep: v["sweep"].as_bool().unwrap_or(false),
                rps: v["rps"].as_f64()?,
                p50: v["p50_ms"].as_f64()?,
                p99: v["p99_ms"].as_f64()?,
                ratio: v["ratio_to_baseline"].as_f64(),
            })
        })
        .collect()
}

pub fn run(args: &ChartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.input.display()))?;
    let rows = parse_rows(&text);
    anyhow::ensure!(
        !rows.is_empty(),
        "{} holds no result lines",
        args.input.display()
    );
    std::fs::create_dir_all(&args.out)?;
    let closed = newest_closed(&rows);
    write(&args.out, "throughput.svg", &throughput(&closed))?;
    write(&args.out, "p99.svg", &p99(&closed))?;
    write(&args.out, "send-latency.svg", &sweep(&rows))?;
    Ok(())
}

fn write(dir: &Path, name: &str, svg: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, svg)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The newest closed-loop row of each (backend, scenario).
fn newest_closed(rows: &[Row]) -> BTreeMap<(String, String), Row> {
    let mut out: BTreeMap<(String, String), Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.rate.is_none() && !r.sweep) {
        let key = (r.backend.clone(), r.scenario.clone());
        if out.get(&key).is_none_or(|old| old.ts <= r.ts) {
            out.insert(key, r.clone());
        }
    }
    out
}

fn backends(rows: &BTreeMap<(String, String), Row>) -> Vec<String> {
    let mut b: Vec<String> = rows.keys().map(|(b, _)| b.clone()).collect();
    b.dedup();
    b
}

/// A round axis maximum and step above `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v >= 100.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn open_svg(title: &str, subtitle: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{LEFT}" y="18" font-size="15" font-weight="bold">{}</text><text x="{LEFT}" y="33" fill="#555">{}</text>"##,
        esc(title),
        esc(subtitle)
    );
    s
}

/// Y axis with grid lines, linear from 0 to `max`.
fn y_axis(s: &mut String, max: f64, step: f64, unit: &str) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= max + step / 2.0 {
        let y = HEIGHT - BOTTOM - v / max * plot_h;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" fill="#333">{}</text>"##,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(unit)
    );
}

fn legend(s: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let x = WIDTH - RIGHT - 120.0 * (names.len() - i) as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="8" width="12" height="12" fill="{}"/><text x="{:.1}" y="18">{}</text>"#,
            COLORS[i % COLORS.len()],
            x + 16.0,
            esc(name)
        );
    }
}

/// Grouped bars per scenario, one per backend; `value` picks the figure, `label` its caption,
/// `goal` a marker per scenario or a line across.
/// The words of a chart.
struct Labels<'a> {
    title: &'a str,
    subtitle: &'a str,
    unit: &'a str,
}

fn bars(
    rows: &BTreeMap<(String, String), Row>,
    words: Labels<'_>,
    value: impl Fn(&Row) -> f64,
    label: impl Fn(&Row) -> String,
    goal: Goal,
    skip: &[&str],
) -> String {
    let names = backends(rows);
    let scenarios: Vec<(&str, Option<f64>)> = SCENARIOS
        .iter()
        .copied()
        .filter(|(s, _)| !skip.contains(s))
        .filter(|(s, _)| {
            names
                .iter()
                .any(|b| rows.contains_key(&(b.clone(), (*s).to_owned())))
        })
        .collect();
    let mut max = rows
        .values()
        .filter(|r| !skip.contains(&r.scenario.as_str()))
        .map(&value)
        .fold(0.0, f64::max);
    match goal {
        Goal::PerScenario => {
            for (_, g) in &scenarios {
                max = max.max(g.unwrap_or(0.0));
            }
        }
        Goal::Line(g) => max = max.max(g),
    }
    let (max, step) = nice_axis(max * 1.08);
    let mut s = open_svg(words.title, words.subtitle);
    y_axis(&mut s, max, step, words.unit);
    legend(&mut s, &names);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group_w = plot_w / scenarios.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / names.len().max(1) as f64;
    let y_of = |v: f64| HEIGHT - BOTTOM - v / max * plot_h;
    for (gi, (scenario, scenario_goal)) in scenarios.iter().enumerate() {
        let gx = LEFT + gi as f64 * group_w + group_w * 0.1;
        for (bi, backend) in names.iter().enumerate() {
            let Some(row) = rows.get(&(backend.clone(), (*scenario).to_owned())) else {
                continue;
            };
            let v = value(row);
            let x = gx + bi as f64 * bar_w;
            let y = y_of(v);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                bar_w - 2.0,
                (HEIGHT - BOTTOM - y).max(0.0),
                COLORS[bi % COLORS.len()],
                esc(backend),
                esc(scenario),
                esc(&label(row))
            );
            // One caption line per `\n`, the last just above the bar.
            let caption = label(row);
            let lines: Vec<&str> = caption.lines().collect();
            for (li, line) in lines.iter().enumerate() {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    x + bar_w / 2.0 - 1.0,
                    y - 4.0 - 11.0 * (lines.len() - 1 - li) as f64,
                    esc(line)
                );
            }
        }
        // The goal's line crosses the bars; its words go under the scenario's name, where no
        // bar's caption can be.
        if let (Goal::PerScenario, Some(g)) = (goal, scenario_goal) {
            let y = y_of(*g);
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="5,3" stroke-width="2"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#c00" font-size="10">goal {}</text>"##,
                gx - 4.0,
                gx + group_w * 0.8 + 4.0,
                gx + group_w * 0.4,
                HEIGHT - BOTTOM + 31.0,
                fmt_num(*g)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            HEIGHT - BOTTOM + 18.0,
            esc(scenario)
        );
    }
    if let Goal::Line(g) = goal {
        let y = y_of(g);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="5,3" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="#c00">goal: p99 &lt; {} ms</text>"##,
            WIDTH - RIGHT,
            LEFT + 4.0,
            y - 4.0,
            fmt_num(g)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555" font-size="11">{}</text>"##,
        HEIGHT - 14.0,
        esc("closed loop; newest run of each scenario and backend; ratio = req/s ÷ GET /healthz req/s of the same run")
    );
    s.push_str("</svg>\n");
    s
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    PerScenario,
    Line(f64),
}

fn throughput(rows: &BTreeMap<(String, String), Row>) -> String {
    // The baseline dwarfs the rest: it is named in the subtitle and its ratio under each bar.
    let baselines: Vec<String> = rows
        .values()
        .filter(|r| r.scenario == "baseline")
        .map(|r| format!("{} {}", r.backend, fmt_num(r.rps)))
        .collect();
    let subtitle = if baselines.is_empty() {
        "req/s; red: the issue's goal (ten times the Node + Express + Prisma tutorial)".to_owned()
    } else {
        format!(
            "req/s; red: the issue's goal (10× the tutorial); baseline GET /healthz: {} req/s",
            baselines.join(", ")
        )
    };
    bars(
        rows,
        Labels {
            title: "Sealpost: throughput per scenario",
            subtitle: &subtitle,
            unit: "req/s",
        },
        |r| r.rps,
        |r| match r.ratio {
            Some(ratio) => format!("{}\n{ratio:.3}×", fmt_num(r.rps)),
            None => fmt_num(r.rps),
        },
        Goal::PerScenario,
        &["baseline"],
    )
}

fn p99(rows: &BTreeMap<(String, String), Row>) -> String {
    bars(
        rows,
        Labels {
            title: "Sealpost: p99 latency per scenario",
            subtitle: "milliseconds, lower is better (push: from the 201 to the arrival)",
            unit: "p99 (ms)",
        },
        |r| r.p99,
        |r| format!("{} ms", fmt_num(r.p99)),
        Goal::Line(P99_GOAL_MS),
        &[],
    )
}

/// Send latency (p50 solid, p99 dashed, log scale) against offered load, one colour per backend.
fn sweep(rows: &[Row]) -> String {
    let mut series: BTreeMap<String, BTreeMap<u64, Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.scenario == "send" && r.sweep) {
        let Some(rate) = r.rate else { continue };
        let points = series.entry(r.backend.clone()).or_default();
        let key = rate.round() as u64;
        if points.get(&key).is_none_or(|old| old.ts <= r.ts) {
            points.insert(key, r.clone());
        }
    }
    let mut s = open_svg(
        "Sealpost: send latency against offered load",
        "open loop (latency from when each request was due); solid p50, dashed p99; log scale",
    );
    let names: Vec<String> = series.keys().cloned().collect();
    legend(&mut s, &names);
    let max_rate = series
        .values()
        .flat_map(|p| p.keys())
        .copied()
        .max()
        .unwrap_or(1) as f64;
    let (x_max, x_step) = nice_axis(max_rate);
    let values = series
        .values()
        .flat_map(|p| p.values())
        .flat_map(|r| [r.p50, r.p99]);
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo == f64::MAX { 0.1 } else { lo.max(0.01) };
    let (y_lo, y_hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.max(lo * 10.0).log10().ceil()),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |v: f64| LEFT + v / x_max * plot_w;
    let y_of = |v: f64| {
        let t = (v.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10());
        HEIGHT - BOTTOM - t * plot_h
    };
    let mut decade = y_lo;
    while decade <= y_hi * 1.0001 {
        let y = y_of(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(decade)
        );
        decade *= 10.0;
    }
    let mut x = 0.0;
    while x <= x_max + x_step / 2.0 {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x_of(x),
            HEIGHT - BOTTOM + 18.0,
            fmt_num(x)
        );
        x += x_step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">offered load (send req/s)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - BOTTOM + 36.0
    );
    let goal = y_of(P99_GOAL_MS);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{goal:.1}" x2="{:.1}" y2="{goal:.1}" stroke="#c00" stroke-dasharray="5,3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c00">p99 goal 10 ms</text>"##,
        WIDTH - RIGHT,
        WIDTH - RIGHT,
        goal - 4.0
    );
    for (i, (_, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        for (pick, dash) in [(0, ""), (1, r#" stroke-dasharray="6,4""#)] {
            let coords: Vec<String> = points
                .iter()
                .map(|(rate, r)| {
                    let v = if pick == 0 { r.p50 } else { r.p99 };
                    format!("{:.1},{:.1}", x_of(*rate as f64), y_of(v))
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                coords.join(" ")
            );
            for (rate, r) in points {
                let v = if pick == 0 { r.p50 } else { r.p99 };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{rate} req/s offered, {} achieved: {} ms</title></circle>"#,
                    x_of(*rate as f64),
                    y_of(v),
                    fmt_num(r.rps),
                    fmt_num(v)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"ts_ms":1,"backend":"sqlite","scenario":"send","rate":null,"rps":900.0,"p50_ms":1.0,"p99_ms":5.0,"ratio_to_baseline":0.1}
{"ts_ms":2,"backend":"sqlite","scenario":"send","rate":null,"rps":1000.0,"p50_ms":1.0,"p99_ms":4.0,"ratio_to_baseline":0.1}
not json
{"ts_ms":3,"backend":"postgres","scenario":"send","rate":2000.0,"sweep":true,"rps":1990.0,"p50_ms":1.5,"p99_ms":12.0}
{"ts_ms":4,"backend":"postgres","scenario":"send","rate":4000.0,"sweep":true,"rps":3990.0,"p50_ms":2.5,"p99_ms":30.0}"#;

    #[test]
    fn newest_row_wins_and_svg_is_well_formed() {
        let rows = parse_rows(LINES);
        assert_eq!(rows.len(), 4);
        let closed = newest_closed(&rows);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[&("sqlite".into(), "send".into())].rps, 1000.0);
        for svg in [throughput(&closed), p99(&closed), sweep(&rows)] {
            assert!(svg.starts_with("<svg"));
            assert!(svg.trim_end().ends_with("</svg>"));
            assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        }
        assert!(throughput(&closed).contains(">0.100×<"));
        assert!(sweep(&rows).contains("<polyline"));
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(9_300.0), (10_000.0, 2_000.0));
        assert_eq!(nice_axis(42.0), (50.0, 10.0));
        assert_eq!(fmt_num(11_220.0), "11,220");
        assert_eq!(fmt_num(1.23456), "1.23");
    }
}

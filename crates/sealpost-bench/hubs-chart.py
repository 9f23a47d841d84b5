#!/usr/bin/env python3
"""Charts of reproduce.sh's `hubs` step: send throughput and push latency on PostgreSQL with one
and two nodes, with LISTEN/NOTIFY and with NATS, drawn by `sealpost-bench chart` with each
(hub, nodes) as a series. The two-node send is two load generators at once (one per node): their
req/s are added, and the worse p50/p99 is kept.

Usage: python3 crates/sealpost-bench/hubs-chart.py RESULTS.jsonl OUT_DIR [BENCH]
"""
import json
import re
import subprocess
import sys
import tempfile

results, out = sys.argv[1], sys.argv[2]
bench = sys.argv[3] if len(sys.argv) > 3 else "target/release/sealpost-bench"
series = {}
for line in open(results):
    row = json.loads(line)
    m = re.match(r"hub=(\w+), (\d) nodes?", row.get("label", ""))
    if not m or row["scenario"] not in ("send", "push"):
        continue
    name = ("NOTIFY" if m[1] == "notify" else "NATS") + f", {m[2]} node" + ("s" if m[2] == "2" else "")
    key = (name, row["scenario"])
    if key in series and row["scenario"] == "send" and m[2] == "2":
        acc = series[key]
        acc["rps"] += row["rps"]
        acc["p50_ms"] = max(acc["p50_ms"], row["p50_ms"])
        acc["p99_ms"] = max(acc["p99_ms"], row["p99_ms"])
        acc["ratio_to_baseline"] = None
    else:
        series[key] = dict(row, backend=name)
with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for row in series.values():
        f.write(json.dumps(row) + "\n")
for (name, scenario), row in sorted(series.items()):
    print(f"{name:16} {scenario:5} {row['rps']:9.1f} req/s  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms")
subprocess.run([bench, "chart", "--input", f.name, "--out", out], check=True)

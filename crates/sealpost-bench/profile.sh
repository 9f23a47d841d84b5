#!/usr/bin/env bash
# Where the server's time goes (docs/PERFORMANCE.md, "Profile"), on PostgreSQL:
#  1. callgrind: the server runs under valgrind with instrumentation off; it is switched on only
#     around each scenario's load and dumped per scenario (user-space instructions, exact).
#  2. perf (cpu-clock, a software timer, since this machine has no hardware counters): a flat
#     sample of the server under the real load, which also shows the kernel's share.
#
# Usage (from the workspace root): bash crates/sealpost-bench/profile.sh
# Environment: SERVER (sealpost binary, default target/release/sealpost), PGURL, OUT
# (/tmp/sealpost-profile), PHASES (callgrind,perf), FILL (inbox size for the perf phase, 100000).
set -euo pipefail

SERVER=${SERVER:-target/release/sealpost}
BENCH=target/release/sealpost-bench
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
OUT=${OUT:-/tmp/sealpost-profile}
PHASES=${PHASES:-callgrind,perf}
FILL=${FILL:-100000}
DB=sealpost_profile
PORT=18090
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
PID=

stop() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  fi
}
trap 'stop; psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" || true' EXIT

serve() {
  "$@" serve --listen "127.0.0.1:$PORT" --database "$PGURL/$DB" --secrets-file "$OUT/secrets" \
    --kdf-opslimit 2 --kdf-memlimit 67108864 \
    --rate-per-address 100000000 --rate-per-email 100000000 --rate-sends 100000000 --rate-lookups 100000000 --log warn >"$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    curl -sf "$URL/healthz" >/dev/null && return 0
    sleep 0.2
  done
  cat "$OUT/server.log" >&2
  return 1
}

psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"

phase() { [[ ",$PHASES," == *",$1,"* ]]; }

# 1. callgrind. Accounts and a 2,000-entry inbox are made first, with instrumentation off (the
#    page served is the same 50 entries whatever the mailbox holds).
if phase callgrind; then
serve valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$OUT/callgrind.out" "$SERVER"
"$BENCH" --url "$URL" --scenario inbox --fill 2000 --accounts 4 --connections 8 \
  --duration 1s --warmup 0s --repeat 1 --tag prof >/dev/null
for scenario in baseline send inbox login; do
  callgrind_control --instr=on "$PID" >/dev/null
  "$BENCH" --url "$URL" --scenario "$scenario" --fill 2000 --accounts 4 --connections 8 \
    --duration 8s --warmup 0s --repeat 1 --tag prof --json >"$OUT/callgrind-$scenario.jsonl"
  callgrind_control --dump="$scenario" "$PID" >/dev/null
  callgrind_control --zero "$PID" >/dev/null
  callgrind_control --instr=off "$PID" >/dev/null
done
stop
fi

# 2. perf, at full speed.
if phase perf; then
serve "$SERVER"
"$BENCH" --url "$URL" --scenario inbox --fill "$FILL" --accounts 32 --duration 1s --warmup 0s \
  --repeat 1 --tag perf >/dev/null
for scenario in baseline send inbox login; do
  "$BENCH" --url "$URL" --scenario "$scenario" --fill "$FILL" --accounts 32 \
    --duration 10s --warmup 2s --repeat 1 --tag perf --json >"$OUT/perf-$scenario.jsonl" &
  bench=$!
  sleep 3
  # What PostgreSQL's backends wait on meanwhile (CPU when not waiting), sampled every 0.1 s.
  (for _ in $(seq 60); do
    psql "$PGURL/postgres" -Atc "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
      FROM pg_stat_activity WHERE datname = '$DB' AND state = 'active'"
    sleep 0.1
  done | sort | uniq -c | sort -rn >"$OUT/pg-waits-$scenario.txt") &
  waits=$!
  # The whole machine: the server, PostgreSQL, the bench, and whoever else is busy.
  perf record -a -e cpu-clock -F 499 -o "$OUT/perf-$scenario.data" -- sleep 8 2>/dev/null
  wait "$bench" "$waits"
  perf report -i "$OUT/perf-$scenario.data" --stdio --no-children --sort comm,dso \
    >"$OUT/perf-$scenario-comm.txt" 2>/dev/null
  perf report -i "$OUT/perf-$scenario.data" --stdio --no-children --pid "$PID" --sort dso,sym \
    >"$OUT/perf-$scenario-server.txt" 2>/dev/null
done
stop
fi
ls "$OUT"

#!/usr/bin/env bash
# Reproduces docs/PERFORMANCE.md: builds the server and the bench, then for SQLite and for
# PostgreSQL starts `sealpost serve` with raised rate limits and INTERACTIVE KDF limits, runs every
# scenario against it (results appended to $RESULTS), stops it, and finally draws the charts.
#
# Usage (from the workspace root): bash crates/sealpost-bench/reproduce.sh [sqlite] [postgres]
# Environment: SERVER (a prebuilt sealpost binary), DURATION (15s), REPEAT (3), FILL (100000),
# PGURL (postgres://postgres@127.0.0.1:5432), RESULTS (docs/perf/results.jsonl), STEPS
# (table,push,sweep,idle,two-nodes), COMMIT (the label of the server's commit, when SERVER was not
# built from this tree), CHARTS (where the SVGs go, docs/perf; empty: none). Traffic goes to 127.0.0.1 only; every server started here is stopped by
# its PID, and the PostgreSQL database made here is dropped.
set -euo pipefail

DURATION=${DURATION:-15s}
REPEAT=${REPEAT:-3}
FILL=${FILL:-100000}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
RESULTS=${RESULTS:-docs/perf/results.jsonl}
CHARTS=${CHARTS-docs/perf}
PORT_A=${PORT_A:-18080}
PORT_B=${PORT_B:-18081}
STEPS=${STEPS:-table,push,sweep,idle,two-nodes}
DB=sealpost_bench
BACKENDS=("${@:-sqlite postgres}")
read -r -a BACKENDS <<<"${BACKENDS[*]}"

# SERVER may name a prebuilt `sealpost` binary (e.g. built from a clean `git archive` of the
# commit to measure); by default the working tree's is built.
if [ -z "${SERVER:-}" ]; then
  cargo build --release -p sealpost
  SERVER=target/release/sealpost
fi
cargo build --release -p sealpost-bench
BENCH=target/release/sealpost-bench
WORK=$(mktemp -d)
PIDS=()

stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# start NAME PORT DATABASE [extra serve flags…]: starts a server, waits for /healthz, sets $PID.
start() {
  local name=$1 port=$2 database=$3
  shift 3
  "$SERVER" serve --listen "127.0.0.1:$port" --database "$database" --secrets-file "$WORK/secrets" \
    --kdf-opslimit 2 --kdf-memlimit 67108864 \
    --rate-per-address 100000000 --rate-per-email 100000000 --rate-sends 100000000 --rate-lookups 100000000 \
    --access-token-ttl 3600 --log warn "$@" >"$WORK/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server $name did not start:" >&2
  cat "$WORK/$name.log" >&2
  return 1
}

bench() {
  "$BENCH" --append "$RESULTS" --duration "$DURATION" --repeat "$REPEAT" \
    ${COMMIT:+--commit "$COMMIT"} "$@"
}

step() { [[ ",$STEPS," == *",$1,"* ]]; }

run_backend() {
  local backend=$1 database=$2
  start "$backend" "$PORT_A" "$database"
  local pid=$PID url=http://127.0.0.1:$PORT_A
  # The table: every closed-loop scenario with the baseline of the same run first.
  if step table; then
    bench --url "$url" --server-pid "$pid" --scenario baseline,send,inbox,login,mixed --fill "$FILL"
  fi
  # Push latency, same node (8 sender/stream pairs).
  if step push; then
    bench --url "$url" --server-pid "$pid" --scenario push --connections 8
  fi
  # Send latency against offered load (open loop).
  if step sweep; then
    bench --url "$url" --server-pid "$pid" --scenario sweep --repeat 1 --duration 10s \
      --rates 250,500,1000,2000,3000,4000,6000
  fi
  # 5,000 idle streams: the server's RSS.
  if step idle; then
    bench --url "$url" --server-pid "$pid" --scenario idle-streams --count 5000
  fi
  if [ "$backend" = postgres ] && step two-nodes; then
    # Two nodes on one database: send to A, stream from B (LISTEN/NOTIFY between them).
    start postgres-b "$PORT_B" "$database"
    bench --url "$url" --stream-url "http://127.0.0.1:$PORT_B" --server-pid "$pid" \
      --scenario push --connections 8 --label "two nodes"
  fi
  stop_all
}

mkdir -p "$(dirname "$RESULTS")"
for backend in "${BACKENDS[@]}"; do
  case $backend in
    sqlite) run_backend sqlite "sqlite://$WORK/bench.db" ;;
    postgres)
      psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
      run_backend postgres "$PGURL/$DB"
      psql "$PGURL/postgres" -qc "DROP DATABASE $DB"
      ;;
    *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
  esac
done
if [ -n "$CHARTS" ]; then
  "$BENCH" chart --input "$RESULTS" --out "$CHARTS"
fi

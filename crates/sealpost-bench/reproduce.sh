#!/usr/bin/env bash
# Reproduces docs/PERFORMANCE.md: builds the server and the bench, then for SQLite and for
# PostgreSQL starts `sealpost serve` with raised rate limits and INTERACTIVE KDF limits, runs every
# scenario against it (results appended to $RESULTS), stops it, and finally draws the charts.
#
# Usage (from the workspace root): bash crates/sealpost-bench/reproduce.sh [sqlite] [postgres]
# Environment: SERVER (a prebuilt sealpost binary), BENCH (a prebuilt sealpost-bench), DURATION (15s), REPEAT (3), FILL (100000),
# PGURL (postgres://postgres@127.0.0.1:5432), RESULTS (docs/perf/results.jsonl), STEPS
# (table,push,sweep,idle,two-nodes; also: sessions = baseline, login and refresh at 4 and at 32
# connections; hubs = PostgreSQL send and push on one and on two nodes, with LISTEN/NOTIFY and
# with NATS at $NATS; streams = 10,000 idle streams with each hub), NATS
# (nats://127.0.0.1:4222), COMMIT (the label of the server's commit, when SERVER was not
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
NATS=${NATS:-nats://127.0.0.1:4222}
DB=sealpost_bench
BACKENDS=("${@:-sqlite postgres}")
read -r -a BACKENDS <<<"${BACKENDS[*]}"

# SERVER may name a prebuilt `sealpost` binary (e.g. built from a clean `git archive` of the
# commit to measure); by default the working tree's is built.
if [ -z "${SERVER:-}" ]; then
  cargo build --release -p sealpost
  SERVER=target/release/sealpost
fi
# BENCH may name a prebuilt sealpost-bench (so that the working tree can change during a run).
if [ -z "${BENCH:-}" ]; then
  cargo build --release -p sealpost-bench
  BENCH=target/release/sealpost-bench
fi
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
  # Login storms: login and refresh at the tutorial's concurrency (4) and at 32.
  if step sessions; then
    for c in 4 32; do
      bench --url "$url" --server-pid "$pid" --scenario baseline,login,refresh --connections "$c" \
        --label "sessions, $c connections"
    done
  fi
  if [ "$backend" = postgres ] && step hubs; then
    stop_all
    hubs "$database"
  fi
  if [ "$backend" = postgres ] && step streams; then
    stop_all
    streams "$database"
  fi
  if [ "$backend" = postgres ] && step two-nodes; then
    # Two nodes on one database: send to A, stream from B (LISTEN/NOTIFY between them).
    start postgres-b "$PORT_B" "$database"
    bench --url "$url" --stream-url "http://127.0.0.1:$PORT_B" --server-pid "$pid" \
      --scenario push --connections 8 --label "two nodes"
  fi
  stop_all
}

# hub_flags HUB: the serve flags of a hub (notify: none; nats: --hub with a prefix of this run).
hub_flags() {
  if [ "$1" = nats ]; then
    HUB_FLAGS=(--hub "$NATS" --hub-subject-prefix "bench$$")
  else
    HUB_FLAGS=()
  fi
}

# Send throughput and push latency on PostgreSQL, one node then two on one database, with each
# hub. With two nodes, two load generators run at once (16 connections each, one per node) and
# their req/s add up; push sends to node A and streams from node B.
hubs() {
  local database=$1 hub
  for hub in notify nats; do
    hub_flags "$hub"
    start postgres "$PORT_A" "$database" "${HUB_FLAGS[@]}"
    local a=$PID
    bench --url "http://127.0.0.1:$PORT_A" --server-pid "$a" --scenario baseline,send \
      --label "hub=$hub, 1 node"
    bench --url "http://127.0.0.1:$PORT_A" --server-pid "$a" --scenario push --connections 8 \
      --label "hub=$hub, 1 node"
    start postgres-b "$PORT_B" "$database" "${HUB_FLAGS[@]}"
    bench --url "http://127.0.0.1:$PORT_A" --scenario send --connections 16 --tag bench-a \
      --label "hub=$hub, 2 nodes, node A" &
    local other=$!
    bench --url "http://127.0.0.1:$PORT_B" --scenario send --connections 16 --tag bench-b \
      --label "hub=$hub, 2 nodes, node B"
    wait "$other"
    bench --url "http://127.0.0.1:$PORT_A" --stream-url "http://127.0.0.1:$PORT_B" \
      --scenario push --connections 8 --label "hub=$hub, 2 nodes"
    stop_all
  done
}

# 10,000 idle streams on one PostgreSQL node with each hub: the server's RSS and CPU per stream.
streams() {
  local database=$1 hub
  for hub in notify nats; do
    hub_flags "$hub"
    start postgres "$PORT_A" "$database" "${HUB_FLAGS[@]}" --max-connections 20000 \
      --max-streams-per-account 1000
    bench --url "http://127.0.0.1:$PORT_A" --server-pid "$PID" --scenario idle-streams \
      --count 10000 --label "hub=$hub"
    stop_all
  done
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

#!/usr/bin/env bash
# Operations figures (issue 17), on SQLite: the time and size of `sealpost backup` for a database
# of 100,000 messages, idle and under a send load; and the retention job's cost to concurrent
# sends (p99 of `send` without it, then while a pass deletes those 100,000 entries).
#
#   cargo build --release -p sealpost -p sealpost-bench
#   bash crates/sealpost-bench/ops.sh            # TARGET=… names another target directory
#
# Everything goes to a temporary directory, printed at the end (serve.log, bench-*.json).
set -euo pipefail

T=${TARGET:-target/release}
W=$(mktemp -d /tmp/sealpost-ops.XXXXXX)
DB=$W/ops.db
ADDR=127.0.0.1:${PORT:-$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
B="$T/sealpost-bench --url http://$ADDR --tag ops --accounts 32 --connections 32"
PID=

serve() {
  "$T/sealpost" serve --listen $ADDR --database "sqlite://$DB" \
    --kdf-opslimit 2 --kdf-memlimit 67108864 \
    --rate-per-address 100000000 --rate-per-email 100000000 --rate-sends 100000000 \
    --access-token-ttl 3600 --log info "$@" 2>>"$W/serve.log" &
  PID=$!
  for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || { tail -3 "$W/serve.log" >&2; exit 1; }
    curl -sf "http://$ADDR/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2
  exit 1
}

stop() { kill "$PID"; wait "$PID" || true; }

trap 'kill $PID 2>/dev/null || true' EXIT

echo "== fill: 100,000 entries in one mailbox (sealpost-bench --scenario inbox --fill 100000)"
serve
$B --scenario inbox --fill 100000 --duration 1s --repeat 1 --warmup 0s --json >"$W/bench-fill.json"
echo "entries: $(sqlite3 "$DB" 'SELECT COUNT(*) FROM messages')"

echo "== backup, idle"
"$T/sealpost" backup --database "sqlite://$DB" --to "$W/idle.backup" --json 2>/dev/null \
  | tee "$W/backup-idle.json"

echo "== backup, while 32 connections send"
$B --scenario send --duration 20s --repeat 1 --warmup 0s --json >"$W/bench-send-during-backup.json" &
BENCH=$!
sleep 12
"$T/sealpost" backup --database "sqlite://$DB" --to "$W/busy.backup" --json 2>/dev/null \
  | tee "$W/backup-busy.json"
wait $BENCH

echo "== send p99 without retention"
$B --scenario send --duration 10s --repeat 3 --warmup 2s --json | tee "$W/bench-send-plain.json"
stop

echo "== send p99 while retention deletes every entry (100,000+ in batches of 500)"
# Every entry becomes older than 30 days ${CROSS:-20} s from now: the pass that runs then
# (--retention-interval 1) deletes all of them while the bench below is measuring.
CROSS=${CROSS:-20}
sqlite3 "$DB" "UPDATE messages SET created_at = CAST(strftime('%s','now') AS INTEGER) * 1000 \
  - 30 * 86400000 + $CROSS * 1000"
serve --retention-days 30 --retention-interval 1
date -u +"bench starts %H:%M:%S"
$B --scenario send --duration 10s --repeat 3 --warmup 2s --json | tee "$W/bench-send-retention.json"
date -u +"bench ends %H:%M:%S"
stop
grep -E "retention|listening" "$W/serve.log" | tail -5
echo "entries left: $(sqlite3 "$DB" 'SELECT COUNT(*) FROM messages WHERE created_at < strftime("%s","now")*1000 - 30*86400000')"
echo "results in $W"

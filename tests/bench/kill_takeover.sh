#!/usr/bin/env bash
# Measures how long a job whose worker is SIGKILLed takes to finish on another replica, with
# the real release binaries on PostgreSQL + Redis + SMTP and the default lease
# (JOB_LEASE_SECS=6). Worker A talks to an SMTP server that never answers, so it is busy when
# killed. Also prints worker B's resident memory while it idles (before the takeover).
# Usage: tests/bench/kill_takeover.sh [runs]   (prints one line per run, then the summary)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
eval "$(.ci/services)"
cargo build -q --release --bins
bin=target/release
port=18080
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# An SMTP "server" that accepts connections and never says a word.
python3 - >"$tmp/blackhole.port" <<'PY' &
import socket, sys, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
PY
pids+=($!); disown
sleep 0.5
blackhole="smtp://127.0.0.1:$(cat "$tmp/blackhole.port")"

db="tend_bench_$(date +%s)"
psql -q "$TEST_DATABASE_URL/postgres" -c "CREATE DATABASE $db"
export DATABASE_URL="$TEST_DATABASE_URL/$db" QUEUE_URL="$TEST_REDIS_URL" QUEUE_NAMESPACE="$db"
export JWT_SECRET="bench-only-signing-key-0123456789abcdef" SMTP_URL="$TEST_SMTP_URL"
export BIND_ADDR="127.0.0.1:$port" DATA_DIR="$tmp/data" RUST_LOG=warn
sql() { psql -qtA "$DATABASE_URL" -c "$1"; }

"$bin/tend-api" serve >"$tmp/api.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

total=0
for run in $(seq "$runs"); do
  SMTP_URL="$blackhole" "$bin/tend-worker" >"$tmp/a$run.log" 2>&1 & a=$!; pids+=($a); disown
  sleep 1
  job=$(curl -sf "http://127.0.0.1:$port/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"bench-$run-$RANDOM@example.org\",\"password\":\"correct horse battery\",\"role\":\"patient\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["verification_email_job_id"])')
  until [ "$(sql "SELECT state FROM jobs WHERE id='$job'")" = running ]; do sleep 0.05; done
  "$bin/tend-worker" >"$tmp/b$run.log" 2>&1 & b=$!; pids+=($b)
  sleep 2
  idle_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$b/status")
  printf 'run %d: idle worker RSS %.1f MiB\n' "$run" "$(echo "$idle_kib / 1024" | bc -l)"
  start=$(date +%s.%N)
  kill -9 "$a"
  until [ "$(sql "SELECT state FROM jobs WHERE id='$job'")" = done ]; do sleep 0.1; done
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  attempts=$(sql "SELECT attempts FROM jobs WHERE id='$job'")
  printf 'run %d: kill -9 to done on the other replica: %.1f s (attempts %s)\n' "$run" "$secs" "$attempts"
  total=$(echo "$total + $secs" | bc)
  kill -TERM "$b"; wait "$b" 2>/dev/null || true
done
printf 'mean over %d runs: %.1f s (JOB_LEASE_SECS=6: the lease, renewed every 1.5 s, lapses 4.5-6 s after the kill; the relay looks each second)\n' \
  "$runs" "$(echo "$total / $runs" | bc -l)"

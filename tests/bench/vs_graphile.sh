#!/usr/bin/env bash
# Tend beside graphile-worker (npm, 0.16), both draining the same burst of no-op jobs on the
# same PostgreSQL, in one session on one machine: three runs each, the median rate of each
# and their ratio. Tend's side is the burst bench (PostgreSQL ledger, Redis transport, one
# worker process); graphile-worker's is its CLI with `--once` (drain, then exit) and a task
# that does nothing. Both at concurrency 10.
# Usage: tests/bench/vs_graphile.sh [jobs]   (20,000 by default; services from .ci/services)
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-20000}
runs=3
eval "$(.ci/services)" >/dev/null
work=$(mktemp -d)
db=bench_graphile_$RANDOM
base=${TEST_DATABASE_URL%/}
url="$base/$db"
cleanup() { psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

( cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund graphile-worker@0.16 >/dev/null )
mkdir "$work/tasks"
echo 'module.exports = async () => {};' >"$work/tasks/noop.js"
psql -q "$base/postgres" -c "CREATE DATABASE $db"
( cd "$work" && npx graphile-worker -c "$url" --schema-only >/dev/null )

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

graphile=()
for run in $(seq $runs); do
  psql -q "$url" -c "SELECT graphile_worker.add_job('noop', json_build_object('n', n)) FROM generate_series(1, $jobs) AS n" >/dev/null
  started=$(date +%s.%N)
  ( cd "$work" && npx graphile-worker -c "$url" --jobs 10 --once >/dev/null 2>&1 )
  rate=$(echo "$jobs / ($(date +%s.%N) - $started)" | bc -l)
  graphile+=("$rate")
  printf 'graphile-worker run %d: %.0f jobs/s\n' "$run" "$rate"
done

tend=()
for run in $(seq $runs); do
  rate=$(BURST_JOBS=$jobs BURST_CONCURRENCY=10 cargo bench -q -p tend-tests --bench burst 2>/dev/null \
    | sed -n 's/.*drain: [0-9.]* s, \([0-9]*\) jobs\/s.*/\1/p')
  tend+=("$rate")
  printf 'Tend run %d: %.0f jobs/s\n' "$run" "$rate"
done

g=$(printf '%s\n' "${graphile[@]}" | median)
t=$(printf '%s\n' "${tend[@]}" | median)
printf '| drain of %d no-op jobs, concurrency 10 | median of %d runs |\n| --- | --- |\n' "$jobs" "$runs"
printf '| graphile-worker 0.16 | %.0f jobs/s |\n| Tend (PostgreSQL + Redis) | %.0f jobs/s |\n' "$g" "$t"
printf '| ratio Tend / graphile-worker | %.2f |\n' "$(echo "$t / $g" | bc -l)"

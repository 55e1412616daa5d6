#!/usr/bin/env bash
# Chaos run of the job engine with the real release binaries: two tend-worker processes on
# PostgreSQL + Redis + an SMTP sink (each job's effect is a message in the sink, so loss and
# double sending can be counted) while the script, during a few thousand email jobs:
#   kills a worker with SIGKILL ten times (restarting it), restarts Redis once, empties Redis
#   (FLUSHALL) once, restarts PostgreSQL once, and rolls both workers with SIGTERM.
# It prints jobs enqueued, done, dead, messages received, duplicates, and the longest stall
# (the longest time no job finished while some were left).
#
# Everything runs on loopback, on servers of its own (ports 574xx), so it disturbs nothing.
# The SMTP sink takes 50 ms per message, so each worker process (4 email jobs at a time) has
# jobs in the middle of sending whenever it is killed.
# Usage: tests/chaos/run.sh [jobs]   (3,000 by default, enqueued over 30 s)
set -euo pipefail
cd "$(dirname "$0")/../.."
total=${1:-3000}
waves=30
per_wave=$(( (total + waves - 1) / waves ))
total=$(( per_wave * waves ))

eval "$(.ci/services)" >/dev/null   # installs PostgreSQL, Redis and aiosmtpd when missing
cargo build -q --release -p tend-worker
bin=target/release/tend-worker
tmp=$(mktemp -d /tmp/tend-chaos.XXXXXX)
chmod 777 "$tmp"   # PostgreSQL (its own user) writes its log and socket here
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_port=57432 redis_port=57379 smtp_port=57525
pids=()
cleanup() {
  for p in "${pids[@]}" "${workers[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  su postgres -c "$pg_bin/pg_ctl -D $tmp/pg -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
say() { printf '[%5.1f s] %s\n' "$(echo "$(date +%s.%N) - ${t0:-$(date +%s.%N)}" | bc)" "$*"; }

# Servers of its own.
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$tmp/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
mkdir -p "$tmp/pg" && chown postgres:postgres "$tmp/pg"
su postgres -c "$pg_bin/initdb -D $tmp/pg -A trust -U postgres" >/dev/null
pg_ctl() { su postgres -c "$pg_bin/pg_ctl -D $tmp/pg -l $tmp/pg.log -w $* -o '-p $pg_port -k $tmp -c listen_addresses=127.0.0.1'" >/dev/null; }
pg_ctl start
start_redis
mkdir -p "$tmp/maildir/new" "$tmp/maildir/cur" "$tmp/maildir/tmp"
# A sink that takes 50 ms per message, as a real server does, so kills land mid-send.
cat >"$tmp/sink.py" <<'PY'
import asyncio, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

class SlowMailbox(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)

controller = Controller(SlowMailbox(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
asyncio.get_event_loop().run_forever()
PY
python3 "$tmp/sink.py" "$smtp_port" "$tmp/maildir" >"$tmp/smtp.log" 2>&1 & pids+=($!)
sleep 1

db=postgres://postgres@127.0.0.1:$pg_port/postgres
sql() { psql -qtA "$db" -c "$1"; }
export DATABASE_URL=$db QUEUE_URL=redis://127.0.0.1:$redis_port QUEUE_NAMESPACE=chaos
export SMTP_URL=smtp://127.0.0.1:$smtp_port JWT_SECRET=chaos-only-signing-key-0123456789abcdef
export DATA_DIR=$tmp/data RUST_LOG=warn,tend_worker::runtime=info

workers=(0 0)
start_worker() { "$bin" >>"$tmp/worker$1.log" 2>&1 & workers[$1]=$!; }
start_worker 0
start_worker 1
for _ in $(seq 100); do
  [ "$(sql "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'jobs'" 2>/dev/null)" = 1 ] && break
  sleep 0.1
done
sleep 1

# Enqueue: users and their "password changed" mails, written to the ledger as the outbox does;
# the workers' relays hand them to Redis.
enqueue_wave() {
  sql "WITH u AS (
         INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
         SELECT gen_random_uuid()::text, 'chaos-' || $1 || '-' || n || '@example.org', 'x',
                'patient', 0, 0
         FROM generate_series(1, $per_wave) AS n RETURNING id)
       INSERT INTO jobs (id, kind, queue, payload, state, attempts, max_attempts, run_at,
                         created_at, updated_at)
       SELECT gen_random_uuid()::text, 'send_email', 'email',
              '{\"user_id\":\"' || id || '\",\"template\":\"password_changed\"}', 'pending', 0,
              10, (extract(epoch from now()) * 1000)::bigint,
              (extract(epoch from now()) * 1000)::bigint, (extract(epoch from now()) * 1000)::bigint
       FROM u" >/dev/null
}

finished() { sql "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'dead')" 2>/dev/null || echo -1; }

t0=$(date +%s.%N)
# Progress sampler: the longest time with no job finishing while some were left.
( last=-1; since=$(date +%s.%N); longest=0
  while :; do
    n=$(finished)
    now=$(date +%s.%N)
    if [ "$n" != "$last" ] && [ "$n" != -1 ]; then last=$n; since=$now; fi
    stall=$(echo "$now - $since" | bc)
    if [ "$last" -lt "$total" ] && [ "$(echo "$stall > $longest" | bc)" = 1 ]; then
      longest=$stall; echo "$longest" >"$tmp/longest_stall"
    fi
    [ "$last" -ge "$total" ] && break
    sleep 0.2
  done ) & pids+=($!)

# Load and chaos on one timeline (one step a second).
kills=0
for second in $(seq 0 40); do
  [ "$second" -lt "$waves" ] && enqueue_wave "$second" 2>/dev/null || true
  case $second in
    3|6|9|13|16|19|22|26|29|31)
      w=$(( kills % 2 )); kill -9 "${workers[$w]}"; kills=$((kills + 1))
      say "SIGKILL worker $w ($kills/10)"; start_worker "$w" ;;
    11) redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
        say "Redis stopped"; sleep 1; start_redis; say "Redis started again" ;;
    17) redis-cli -p "$redis_port" flushall >/dev/null; say "Redis emptied (FLUSHALL)" ;;
    24) pg_ctl restart -m fast; say "PostgreSQL restarted" ;;
    34|37) w=$(( second == 34 ? 0 : 1 )); kill -TERM "${workers[$w]}"
        wait "${workers[$w]}" 2>/dev/null || true
        say "worker $w rolled (SIGTERM, drained)"; start_worker "$w" ;;
  esac
  sleep 1
done

deadline=$(( $(date +%s) + 600 ))
while [ "$(finished)" -lt "$total" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
sleep 2   # let the sink write the last messages
say "finished"

done_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'done'")
dead_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
left_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'dead')")
retried=$(sql "SELECT COUNT(*) FROM jobs WHERE attempts > 1")
read -r messages recipients duplicates < <(python3 - "$tmp/maildir" <<'PY'
import collections, email, os, sys
root = sys.argv[1]
seen = collections.Counter()
for sub in ("new", "cur"):
    for name in os.listdir(os.path.join(root, sub)):
        with open(os.path.join(root, sub, name), "rb") as f:
            seen[email.message_from_binary_file(f)["To"]] += 1
print(sum(seen.values()), len(seen), sum(n - 1 for n in seen.values()))
PY
)
echo "jobs enqueued:        $total"
echo "jobs done:            $done_n"
echo "jobs dead:            $dead_n"
echo "jobs left unfinished: $left_n"
echo "jobs run more than once (attempts > 1): $retried"
echo "messages received:    $messages (to $recipients distinct recipients)"
echo "duplicates:           $duplicates"
printf 'longest stall:        %.1f s\n' "$(cat "$tmp/longest_stall" 2>/dev/null || echo 0)"
grep -h "stopped" "$tmp"/worker*.log | tail -4 || true

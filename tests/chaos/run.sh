#!/usr/bin/env bash
# Chaos run of the job engine with the real release binaries: two tend-worker processes and a
# tend-api on PostgreSQL + Redis + an SMTP sink (each job's effect is a message in the sink, so
# loss and double sending can be counted) while the script, during a few thousand email jobs:
#   kills a worker with SIGKILL ten times (restarting it), restarts Redis once, empties Redis
#   (FLUSHALL) once, restarts PostgreSQL fast and immediate, freezes a worker (SIGSTOP) past
#   its lease with the other one running and later alone, takes Redis away for 60 s and brings
#   it back empty, and rolls both workers with SIGTERM. Meanwhile clients register accounts
#   through the API (each a verification mail): every 201 must end in a mail, and while the
#   database is away the API must answer 503, never a 500 or a hang.
# It prints jobs enqueued, done, dead, messages received, duplicates, the longest stall (the
# longest time no job finished while some were left), then a table of the guarantees and the
# query that finds anything stuck.
#
# Everything runs on loopback, on servers of its own (ports 574xx), so it disturbs nothing.
# The SMTP sink takes 50 ms per message, so each worker process (4 email jobs at a time) has
# jobs in the middle of sending whenever it is killed.
# Usage: tests/chaos/run.sh [jobs]   (3,000 by default, enqueued over 30 s)
# CHAOS_CONCURRENCY sets each worker's email jobs at once (4): at 4, two workers send about 60
# mails a second through the slow sink, so a run of 100,000 takes half an hour; at 16, minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
total=${1:-3000}
waves=30
per_wave=$(( (total + waves - 1) / waves ))
total=$(( per_wave * waves ))

eval "$(.ci/services)" >/dev/null   # installs PostgreSQL, Redis and aiosmtpd when missing
cargo build -q --release -p tend-worker -p tend-app
bin=target/release/tend-worker
api_bin=target/release/tend-api
tmp=$(mktemp -d /tmp/tend-chaos.XXXXXX)
chmod 777 "$tmp"   # PostgreSQL (its own user) writes its log and socket here
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_port=57432 redis_port=57379 smtp_port=57525 api_port=57080
lease=6
pids=()
cleanup() {
  for p in "${workers[@]:-}"; do kill -CONT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" "${workers[@]:-}" "${api_pid:-}"; do kill -9 "$p" 2>/dev/null || true; done
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
export JOB_LEASE_SECS=$lease SHUTDOWN_GRACE_SECS=5 WORKER_CONCURRENCY=${CHAOS_CONCURRENCY:-4}
export REGISTER_RATE_LIMIT_PER_HOUR=1000000 API_RATE_LIMIT_PER_MINUTE=1000000

workers=(0 0)
start_worker() { "$bin" >>"$tmp/worker$1.log" 2>&1 & workers[$1]=$!; }
start_worker 0
start_worker 1
for _ in $(seq 100); do
  [ "$(sql "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'jobs'" 2>/dev/null)" = 1 ] && break
  sleep 0.1
done
sleep 1
BIND_ADDR=127.0.0.1:$api_port PUBLIC_URL=http://127.0.0.1:$api_port "$api_bin" serve \
  >>"$tmp/api.log" 2>&1 & api_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$api_port/health" >/dev/null && break; sleep 0.1; done

# Clients: one registration every 100 ms through the API. Each answer's status is logged
# (000: no answer within 10 s, a hang); every 201 is a mail the sink must receive.
( i=0
  while [ ! -f "$tmp/stop_clients" ]; do
    i=$((i + 1)); email="client-$i@example.org"
    code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' -H 'content-type: application/json' \
      -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple\",\"role\":\"practitioner\"}" \
      "http://127.0.0.1:$api_port/api/v1/auth/register" || true)
    echo "$(date +%s.%N) $code $email" >>"$tmp/clients.log"
    sleep 0.1
  done ) & pids+=($!)
# While the database is away, this marks the time (the API's answers then must be 503s).
pg_down() { date +%s.%N >>"$tmp/pg_down"; }
pg_up() { date +%s.%N >>"$tmp/pg_up"; }

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
pg_restart() {
  pg_down; su postgres -c "$pg_bin/pg_ctl -D $tmp/pg -m $1 stop" >/dev/null
  sleep 3; pg_ctl start; pg_up
}
for second in $(seq 0 48); do
  [ "$second" -lt "$waves" ] && enqueue_wave "$second" 2>/dev/null || true
  case $second in
    3|6|9|13|16|19|22|29|31|33)
      w=$(( kills % 2 )); kill -9 "${workers[$w]}"; kills=$((kills + 1))
      say "SIGKILL worker $w ($kills/10)"; start_worker "$w" ;;
    11) redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
        say "Redis stopped"; sleep 1; start_redis; say "Redis started again" ;;
    17) redis-cli -p "$redis_port" flushall >/dev/null; say "Redis emptied (FLUSHALL)" ;;
    24) pg_restart fast; say "PostgreSQL restarted (fast, 3 s down)" ;;
    26) kill -STOP "${workers[1]}"; say "worker 1 frozen (SIGSTOP), worker 0 running"
        sleep $(( lease * 2 + 4 )); kill -CONT "${workers[1]}"
        say "worker 1 resumed (SIGCONT) after $(( lease * 2 + 4 )) s" ;;
    27) pg_restart immediate; say "PostgreSQL restarted (immediate, 3 s down)" ;;
    42|45) w=$(( second == 42 ? 0 : 1 )); kill -TERM "${workers[$w]}"
        wait "${workers[$w]}" 2>/dev/null || true
        say "worker $w rolled (SIGTERM, drained)"; start_worker "$w" ;;
  esac
  sleep 1
done

# Redis away for 60 s, then back empty; work is accepted meanwhile.
redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
say "Redis stopped for 60 s"
enqueue_wave 1000
total=$(( total + per_wave ))
sleep 60
start_redis; say "Redis started again, empty"

# A worker frozen while it is alone: the other one stopped first.
kill -TERM "${workers[0]}"; wait "${workers[0]}" 2>/dev/null || true
enqueue_wave 1001
total=$(( total + per_wave ))
sleep 1
kill -STOP "${workers[1]}"; say "worker 1 frozen (SIGSTOP), alone"
sleep $(( lease * 2 + 4 )); kill -CONT "${workers[1]}"; say "worker 1 resumed (SIGCONT), alone"
start_worker 0

touch "$tmp/stop_clients"
sleep 1
clients_ok=$(grep -c ' 201 ' "$tmp/clients.log" || true)
deadline=$(( $(date +%s) + 600 + total / 20 ))
# Every registration the API accepted is a mail job too.
all_jobs() { sql "SELECT COUNT(*) FROM jobs WHERE kind = 'send_email'" 2>/dev/null || echo -1; }
while [ "$(finished)" -lt "$(all_jobs)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
sleep 2   # let the sink write the last messages
say "finished"

done_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'done'")
dead_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
left_n=$(sql "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'dead', 'cancelled')")
retried=$(sql "SELECT COUNT(*) FROM jobs WHERE claims > 1")
read -r messages recipients duplicates dup_ids lost_clients < <(python3 - "$tmp/maildir" "$tmp/clients.log" <<'PY'
import collections, email, os, sys
root = sys.argv[1]
seen = collections.Counter()
ids = collections.defaultdict(set)
for sub in ("new", "cur"):
    for name in os.listdir(os.path.join(root, sub)):
        with open(os.path.join(root, sub, name), "rb") as f:
            msg = email.message_from_binary_file(f)
            seen[msg["To"]] += 1
            ids[msg["To"]].add(msg["Message-ID"])
# A duplicate under another Message-ID is one a receiver could not drop.
dup_ids = sum(len(v) - 1 for v in ids.values())
accepted = [line.split()[2] for line in open(sys.argv[2]) if line.split()[1] == "201"]
lost = sum(1 for to in accepted if seen[to] == 0)
print(sum(seen.values()), len(seen), sum(n - 1 for n in seen.values()), dup_ids, lost)
PY
)
echo "jobs enqueued:        $total (and $clients_ok accepted registrations through the API)"
echo "jobs done:            $done_n"
echo "jobs dead:            $dead_n"
echo "jobs left unfinished: $left_n"
echo "jobs run more than once (claims > 1): $retried"
echo "messages received:    $messages (to $recipients distinct recipients)"
echo "duplicates:           $duplicates"
printf 'longest stall:        %.1f s\n' "$(cat "$tmp/longest_stall" 2>/dev/null || echo 0)"
grep -h "stopped" "$tmp"/worker*.log | tail -4 || true

# The API while PostgreSQL was away: every answer between a stop and its start.
read -r outage_503 outage_500 outage_hang outage_other < <(python3 - "$tmp/clients.log" "$tmp/pg_down" "$tmp/pg_up" <<'PY'
import sys
downs = [float(x) for x in open(sys.argv[2])]
ups = [float(x) for x in open(sys.argv[3])]
counts = {"503": 0, "500": 0, "000": 0, "other": 0}
for line in open(sys.argv[1]):
    t, code, _ = line.split()
    # Logged when the answer came: answers that came while the database was away.
    if any(d <= float(t) <= u for d, u in zip(downs, ups)):
        counts[code if code in counts else "other"] += 1
print(counts["503"], counts["500"], counts["000"], counts["other"])
PY
)
all_500=$(grep -c ' 500 ' "$tmp/clients.log" || true)
# Fenced outcomes: one `done` attempt per job, and no attempt after a job's `done`.
twice_done=$(sql "SELECT COUNT(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 'done' GROUP BY job_id HAVING COUNT(*) > 1) t")
rerun_after_done=$(sql "SELECT COUNT(*) FROM job_attempts a JOIN job_attempts b ON a.job_id = b.job_id AND b.claim > a.claim WHERE a.outcome = 'done'")
attempt_rows=$(sql "SELECT string_agg(outcome || '=' || n, ' ' ORDER BY outcome) FROM (SELECT outcome, COUNT(*) n FROM job_attempts GROUP BY outcome) t")
# Stuck: anything not terminal and older than its lease, jobs and their subjects alike.
stuck_sql="SELECT (SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'dead', 'cancelled', 'held') AND updated_at < (extract(epoch from now()) * 1000)::bigint - $lease * 1000) + (SELECT COUNT(*) FROM sessions WHERE status IN ('uploaded', 'transcribing', 'transcribed', 'extracting') AND updated_at < (extract(epoch from now()) * 1000)::bigint - $lease * 1000) + (SELECT COUNT(*) FROM exports WHERE status IN ('queued', 'rendering') AND updated_at < (extract(epoch from now()) * 1000)::bigint - $lease * 1000) + (SELECT COUNT(*) FROM data_exports WHERE status IN ('queued', 'building') AND updated_at < (extract(epoch from now()) * 1000)::bigint - $lease * 1000) + (SELECT COUNT(*) FROM mission_drafts WHERE status IN ('queued', 'generating') AND updated_at < (extract(epoch from now()) * 1000)::bigint - $lease * 1000)"
stuck=$(sql "$stuck_sql")
log_lines=$(cat "$tmp"/worker*.log | wc -l)
codes=$(awk '{print $2}' "$tmp/clients.log" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
# What the workers said most (the message, without time and fields).
top_lines=$(sed -e 's/\x1b\[[0-9;]*m//g' "$tmp"/worker*.log | sed -E 's/^[^ ]+ +[A-Z]+ +//; s/ [a-z_]+=.*//' \
  | sort | uniq -c | sort -rn | head -5)

echo
echo "| guarantee | measured | goal |"
echo "| --- | --- | --- |"
echo "| jobs lost (enqueued or accepted, never done) | $(( left_n )) unfinished, $lost_clients accepted registrations without a mail | 0 |"
echo "| jobs dead | $dead_n | 0 |"
echo "| stuck (not terminal, older than the lease) | $stuck | 0 |"
echo "| jobs recorded done twice | $twice_done | 0 |"
echo "| attempts after a job was done (finished work re-run) | $rerun_after_done | 0 |"
echo "| mail duplicates | $duplicates | at least once |"
echo "| duplicates under another Message-ID | $dup_ids | 0 |"
echo "| API answers while PostgreSQL was away: 503 / 500 / no answer in 10 s / other | $outage_503 / $outage_500 / $outage_hang / $outage_other | no 500, no hang |"
echo "| API 500s in the whole run | $all_500 | 0 |"
echo "| API answers in the whole run, by status | $codes | |"
echo "| attempts in job_attempts by outcome | $attempt_rows | every attempt a row |"
echo "| worker log lines in the whole run | $log_lines | quiet |"
echo "| longest stall | $(printf '%.1f s' "$(cat "$tmp/longest_stall" 2>/dev/null || echo 0)") | |"
echo
echo "most frequent worker log lines:"
echo "$top_lines"
echo
echo "stuck query: $stuck_sql"


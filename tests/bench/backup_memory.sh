#!/usr/bin/env bash
# Peak memory of `tend-api backup` and `tend-api restore` on a PostgreSQL database of about
# 1 GB (sessions with 10 KB transcripts, the bulk of a real installation), with the real
# release binary, and the size of the compressed backup. Both directions must stream: the
# goal is a peak RSS of at most 128 MiB each, whatever the database's size.
# Usage: tests/bench/backup_memory.sh [size_mb]   (1024 by default; PostgreSQL from .ci/services)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${1:-1024}
eval "$(.ci/services)" >/dev/null
cargo build -q --release -p tend-app
bin=target/release/tend-api
tmp=$(mktemp -d)
chmod 777 "$tmp"
base=${TEST_DATABASE_URL%/}
source_db=bench_backup_src_$RANDOM target_db=bench_backup_dst_$RANDOM
cleanup() {
  psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $source_db" 2>/dev/null || true
  psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $target_db" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
psql -q "$base/postgres" -c "CREATE DATABASE $source_db"
psql -q "$base/postgres" -c "CREATE DATABASE $target_db"
export DATA_DIR="$tmp/data" STORAGE_URL="file://$tmp/objects" RUST_LOG=warn
export JWT_SECRET=bench-only-signing-key-0123456789abcdef

DATABASE_URL="$base/$source_db" "$bin" migrate
# One practitioner, one patient, and sessions of 10 KB transcripts (text that compresses as
# speech does, not as one repeated byte) until the database holds size_mb.
sessions=$(( size_mb * 1024 / 11 ))
psql -q "$base/$source_db" <<SQL
INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
  VALUES ('u1', 'bench@example.org', 'x', 'practitioner', 0, 0);
INSERT INTO patients (id, practitioner_id, display_name, created_at, updated_at)
  VALUES ('p1', 'u1', 'Bench Patient', 0, 0);
INSERT INTO sessions (id, practitioner_id, patient_id, status, source, media_type, size_bytes,
                      transcript, created_at, updated_at)
SELECT 's' || n, 'u1', 'p1', 'processed', 'transcript', 'text/plain', 10240,
       (SELECT string_agg(md5(n::text || '-' || k::text) || ' ', '') FROM generate_series(1, 310) AS k),
       n, n
FROM generate_series(1, $sessions) AS n;
SQL
db_bytes=$(psql -qtA "$base/$source_db" -c "SELECT pg_database_size(current_database())")

peak() { grep 'Maximum resident set size' "$1" | awk '{print $NF}'; }
DATABASE_URL="$base/$source_db" /usr/bin/time -v "$bin" backup >"$tmp/backup.out" 2>"$tmp/backup.time"
backup_s=$(grep 'Elapsed (wall clock)' "$tmp/backup.time" | awk '{print $NF}')
backup_kib=$(peak "$tmp/backup.time")
stored=$(du -sb "$tmp/objects/backups" | awk '{print $1}')
DATABASE_URL="$base/$target_db" /usr/bin/time -v "$bin" restore latest >"$tmp/restore.out" 2>"$tmp/restore.time"
restore_s=$(grep 'Elapsed (wall clock)' "$tmp/restore.time" | awk '{print $NF}')
restore_kib=$(peak "$tmp/restore.time")

echo "database: $(( db_bytes / 1048576 )) MiB ($sessions sessions), backup stored: $(( stored / 1048576 )) MiB"
cat "$tmp/backup.out" "$tmp/restore.out"
echo "| step | peak RSS | wall time | goal |"
echo "| --- | --- | --- | --- |"
echo "| backup | $(( backup_kib / 1024 )) MiB | $backup_s | <= 128 MiB |"
echo "| restore (verified) | $(( restore_kib / 1024 )) MiB | $restore_s | <= 128 MiB |"

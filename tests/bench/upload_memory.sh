#!/usr/bin/env bash
# Peak memory of the API process while a 300 MB recording streams in, with the real release
# binary in its embedded mode (local disk), or on S3 with `--s3` (moto from .ci/services).
# The upload must stream: memory stays near the baseline (plus one 8 MiB part on S3) instead
# of growing with the file.
# Usage: tests/bench/upload_memory.sh [--s3] [size_mb]
set -euo pipefail
cd "$(dirname "$0")/../.."
s3=false
if [ "${1:-}" = "--s3" ]; then s3=true; shift; fi
size_mb=${1:-300}
cargo build -q --release -p tend-app
bin=target/release/tend-api
port=18090
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

export DATA_DIR="$tmp/data" BIND_ADDR="127.0.0.1:$port" RUST_LOG=warn
if $s3; then
  eval "$(.ci/services)"
  export STORAGE_URL="s3://$TEST_S3_BUCKET/bench-$RANDOM" S3_ENDPOINT="$TEST_S3_ENDPOINT"
  export S3_ACCESS_KEY_ID=test S3_SECRET_ACCESS_KEY=test
fi
"$bin" >"$tmp/api.log" 2>&1 & pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done

api="http://127.0.0.1:$port/api/v1"
email="bench-$RANDOM@example.org"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf "$api/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\",\"role\":\"practitioner\"}" >/dev/null
for _ in $(seq 100); do ls "$DATA_DIR"/outbox/*.eml >/dev/null 2>&1 && break; sleep 0.1; done
verify=$(python3 - "$DATA_DIR"/outbox/*.eml <<'PY'
import email, re, sys
message = email.message_from_file(open(sys.argv[1]))
for part in message.walk():
    if part.get_content_type() == "text/plain":
        print(re.search(r"token=([A-Za-z0-9_-]+)", part.get_payload(decode=True).decode()).group(1))
        break
PY
)
curl -sf "$api/auth/verify-email" -H 'content-type: application/json' -d "{\"token\":\"$verify\"}"
token=$(curl -sf "$api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" | json '["access_token"]')
patient=$(curl -sf "$api/patients" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"display_name":"Bench"}' | json '["id"]')

# A silent 128 kbit/s MP3 of the requested size (a real recorder's file has the same shape).
python3 - "$tmp/big.mp3" "$size_mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
frame = bytes([0xFF, 0xFB, 0x90, 0xC4]) + bytes(413)
with open(path, "wb") as f:
    f.write(b"ID3\x04\x00\x00\x00\x00\x00\x00")
    f.write(frame * (mb * 1_000_000 // len(frame)))
PY

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
baseline=$(rss)
peak=$baseline
( while kill -0 "$pid" 2>/dev/null; do rss; sleep 0.02; done ) >"$tmp/rss" &
sampler=$!
start=$(date +%s.%N)
code=$(curl -s -o "$tmp/resp" -w '%{http_code}' "$api/sessions" -H "authorization: Bearer $token" \
  -F "patient_id=$patient" -F "file=@$tmp/big.mp3;filename=session.mp3")
secs=$(echo "$(date +%s.%N) - $start" | bc)
kill "$sampler" 2>/dev/null || true
peak=$(sort -n "$tmp/rss" | tail -1)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
size=$(stat -c %s "$tmp/big.mp3")
[ "$code" = 202 ] || { echo "upload answered $code: $(cat "$tmp/resp")"; exit 1; }
printf 'store: %s\n' "$($s3 && echo "S3 (moto)" || echo "local disk")"
printf 'upload: %d MB in %.1f s (%.0f MB/s), answered %s\n' "$((size / 1000000))" "$secs" \
  "$(echo "$size / 1000000 / $secs" | bc -l)" "$code"
printf 'API RSS: %.1f MiB before, %.1f MiB peak during the upload (+%.1f MiB); VmHWM %.1f MiB\n' \
  "$(echo "$baseline / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)" \
  "$(echo "($peak - $baseline) / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"

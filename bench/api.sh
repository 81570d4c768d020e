#!/usr/bin/env bash
# api.sh benchmarks the JSON API: it initialises a fresh appliance in a
# temporary directory, starts 'firewalliq serve' on 127.0.0.1, completes the
# first admin's login over the API (enrolment, password change), seeds the
# audit log with SEED entries through the API itself (refused requests, each
# audited as access.denied), then runs wrk with 50 connections against an
# authenticated JSON list endpoint and records requests/s, p99 latency and
# the server's resident memory idle and under load.
#
# Usage: bench/api.sh
#   SEED=100000        audit entries to add before measuring
#   DURATION=20s       wrk duration
#   CONNS=50           wrk connections (2 threads)
#   ENDPOINTS="p1 p2"  lists to measure; default the audit log's entries and
#                      the tenant's users
#   OUT=dir            where the server log and wrk output go
#   RUNS=1             wrk runs per endpoint on the same seeded server (the
#                      median is taken by the reader of result.jsonl)
#   BIN=path           measure this prebuilt binary instead of building the
#                      checkout (to compare two commits in one session)
#
# Needs: go, wrk, curl, jq, python3 (only to compute TOTP codes). All traffic
# goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

for t in go wrk curl jq python3; do
  command -v "$t" >/dev/null || { echo "api.sh: $t missing (scripts/deps.sh)" >&2; exit 1; }
done

# A development build refuses production mode (its safety profile is signed
# by the development key); the benchmark runs it as a lab appliance.
export FIQ_PRODUCTION=false

SEED=${SEED:-100000}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-50}
OUT=${OUT:-$(mktemp -d /tmp/fiq-api-bench.XXXXXX)}
PORT=${PORT:-18543}
ADDR=https://127.0.0.1:$PORT
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/fiq-api-data.XXXXXX)
RUNS=${RUNS:-1}
PREBUILT=${BIN:-}
BIN=$WORK/firewalliq
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "$PREBUILT" ]; then
  cp "$PREBUILT" "$BIN"
else
  CGO_ENABLED=0 go build -o "$BIN" .
fi
"$BIN" init --data "$WORK/data" --admin root --json >"$WORK/init.json"
OTP=$(jq -r .one_time_password "$WORK/init.json")
SECRET=$(jq -r .totp_secret "$WORK/init.json")

totp() { # totp SECRET -> the code of the current 30 s step
  python3 - "$1" <<'EOF'
import base64, hmac, hashlib, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
h = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = h[-1] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000))
EOF
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; } # KiB

"$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" >"$OUT/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
for _ in $(seq 50); do curl -skf "$ADDR/healthz" >/dev/null && break; sleep 0.2; done

api() { # api METHOD PATH [JSON] -> body; uses the session in $TOKEN/$CSRF
  curl -sk -X "$1" "$ADDR$2" -H 'Content-Type: application/json' \
    ${TOKEN:+-H "Cookie: __Host-fiq_session=$TOKEN"} ${CSRF:+-H "X-CSRF-Token: $CSRF"} ${3:+-d "$3"}
}
TOKEN=; CSRF=
L=$(api POST /api/v1/auth/login "{\"name\":\"root\",\"password\":\"$OTP\"}")
TOKEN=$(jq -r .token <<<"$L")
api POST /api/v1/auth/enrol '{}' >/dev/null
L=$(api POST /api/v1/auth/enrol/confirm "{\"code\":\"$(totp "$SECRET")\"}")
TOKEN=$(jq -r .token <<<"$L"); CSRF=$(jq -r .csrf <<<"$L")
L=$(api POST /api/v1/auth/password "{\"old_password\":\"$OTP\",\"new_password\":\"a long benchmark passphrase\"}")
TOKEN=$(jq -r .token <<<"$L"); CSRF=$(jq -r .csrf <<<"$L")
TENANT=$(api GET /api/v1/tenants | jq -r '.items[0].id')
[ -n "$TENANT" ] && [ "$TENANT" != null ] || { echo "api.sh: login failed: $L" >&2; exit 1; }

# Seed through the API: an appliance admin listing users without naming a
# tenant is refused, and every refusal is an audit entry (access.denied).
# wrk runs until the log holds SEED more entries (polled on /readyz), at
# most 20 minutes.
cat >"$WORK/seed.lua" <<EOF
request = function()
  return wrk.format("GET", "/api/v1/users", {["Cookie"] = "__Host-fiq_session=$TOKEN"})
end
EOF
size() { curl -sk "$ADDR/readyz" | jq -r .details.audit_size; }
TARGET=$(( $(size) + SEED ))
start=$(date +%s)
wrk -t 2 -c 20 -d 1200s -s "$WORK/seed.lua" "$ADDR" >"$OUT/seed.txt" &
SEEDER=$!
while [ "$(size)" -lt "$TARGET" ] && kill -0 "$SEEDER" 2>/dev/null; do sleep 1; done
kill "$SEEDER" 2>/dev/null || true
wait "$SEEDER" 2>/dev/null || true
ENTRIES=$(size)
echo "seeded to $ENTRIES audit entries in $(( $(date +%s) - start )) s"

# The lists to measure, one wrk run each: the audit log (paged by the
# audit-log service) and the tenant's users (paged in the handler).
ENDPOINTS=${ENDPOINTS:-"/api/v1/audit/entries?limit=50 /api/v1/users?tenant=$TENANT&limit=50"}
sleep 2
IDLE=$(rss "$SERVER")
: >"$OUT/result.jsonl"
for RUN in $(seq "$RUNS"); do
for ENDPOINT in $ENDPOINTS; do
  cat >"$WORK/load.lua" <<EOF
request = function()
  return wrk.format("GET", "$ENDPOINT", {["Cookie"] = "__Host-fiq_session=$TOKEN"})
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\":%d,\"errors\":%d,\"rps\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
EOF
  wrk -t 2 -c "$CONNS" -d "$DURATION" --latency -s "$WORK/load.lua" "$ADDR" >"$OUT/wrk.txt" &
  WRK=$!
  PEAK=0
  while kill -0 "$WRK" 2>/dev/null; do
    r=$(rss "$SERVER"); [ "$r" -gt "$PEAK" ] && PEAK=$r
    sleep 0.5
  done
  wait "$WRK"
  cp "$OUT/wrk.txt" "$OUT/wrk-$(echo "$ENDPOINT" | tr -c 'a-z0-9' _)-$RUN.txt"
  grep '^JSON ' "$OUT/wrk.txt" | cut -c6- | jq -c --arg ep "$ENDPOINT" --argjson run "$RUN" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson entries "${ENTRIES:-0}" --argjson idle "$IDLE" --argjson peak "$PEAK" \
    '. + {endpoint: $ep, run: $run, loadavg: $load, audit_entries: $entries, rss_idle_mb: ($idle / 1024 | floor), rss_load_mb: ($peak / 1024 | floor)}' | tee -a "$OUT/result.jsonl"
  sleep 2
done
done
echo "raw output in $OUT"

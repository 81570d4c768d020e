#!/usr/bin/env bash
# console.sh benchmarks the web console under wrk: it builds the console's
# test binary and runs TestDashboardLoad (ui/console/load_test.go), which
# starts a real appliance (SQLite, audit log, services) behind the API
# server with the console over TLS on 127.0.0.1, signs users in through
# the console, runs a real scan of a 127.0.0.1 listener, stores RESULTS
# results for it through scan.SaveBatch, then runs
# `wrk -t2 -c50 -d$DURATION --latency` RUNS times against
#   - the dashboard of a security lead (sees the scan, audit activity),
#   - the dashboard of the appliance admin,
#   - the lead's results explorer (state=open, one port) on that scan,
# sampling the process's VmRSS every 250 ms. It prints one "WRK {...}" JSON
# line per run and the median of the runs per page, with the load average
# (the machine is shared: read p99 with it).
#
# Usage: bench/console.sh
#   RESULTS=1000000   results stored for the scan
#   DURATION=20s      wrk duration per run
#   RUNS=3            runs per page (the median is reported)
#   OUT=dir           where the full output goes
#
# Needs: go, wrk. All traffic goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "console.sh: wrk missing (scripts/deps.sh)" >&2; exit 1; }
RESULTS=${RESULTS:-1000000}
DURATION=${DURATION:-20s}
RUNS=${RUNS:-3}
OUT=${OUT:-$(mktemp -d /tmp/fiq-console-bench.XXXXXX)}
mkdir -p "$OUT"
CGO_ENABLED=0 go test -c -o "$OUT/console.test" ./ui/console
echo "uptime before: $(uptime)" | tee "$OUT/run.txt"
FIQ_CONSOLE_WRK=1 FIQ_CONSOLE_WRK_RESULTS=$RESULTS FIQ_CONSOLE_WRK_DURATION=$DURATION FIQ_CONSOLE_WRK_RUNS=$RUNS \
  "$OUT/console.test" -test.run '^TestDashboardLoad$' -test.v -test.timeout 30m >"$OUT/test.txt" 2>&1 || { tail -50 "$OUT/test.txt"; exit 1; }
grep -E 'stored|COUNT|RSS|WRK|MEDIAN' "$OUT/test.txt" | sed 's/^ *//' | tee -a "$OUT/run.txt"
echo "uptime after: $(uptime)" | tee -a "$OUT/run.txt"
echo "full output in $OUT"

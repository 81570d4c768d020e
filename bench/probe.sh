#!/usr/bin/env bash
# probe.sh benchmarks the probe engine side by side with nmap and masscan in
# the network lab (docs/lab.md): the same targets (the lab's 198.18.1.0/24),
# the same TCP ports, the same requested rate, one run after the other in
# one script, with and without packet loss. For every run it records wall
# time, CPU time, accuracy against the lab's ground truth, and, from a
# tcpdump capture on the firewall's scanner leg, the achieved rate, the worst
# 100 ms window and any packet that left the scope. Then it measures the
# engine's highest sustainable send rate with the lab high-cap profile
# (-tags lab) into a firewall that drops at ingress, next to masscan's.
#
# Usage (root): bench/probe.sh
#   RATES="400 1000"  requested rates (the default profile caps at 1000 pps)
#   LOSSES="0 2"      lab loss percent (random drop in the firewall, both ways)
#   REPS=3            repetitions per (scanner, rate, loss); medians reported
#   MAXRATES="150000 1000000"  requested rates of the max-rate runs
#   OUT=dir           where runs.jsonl, report.md and raw outputs go
#
# Every scanner runs inside the lab's scanner namespace (ip netns exec); all
# targets exist only inside lab namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "probe.sh: needs root (network namespaces, raw sockets)" >&2; exit 1; }
for t in nmap masscan tcpdump ip nft jq; do
  command -v "$t" >/dev/null || { echo "probe.sh: $t missing (scripts/deps.sh)" >&2; exit 1; }
done

RATES=${RATES:-"400 1000"}
LOSSES=${LOSSES:-"0 2"}
REPS=${REPS:-3}
MAXRATES=${MAXRATES:-"150000 1000000"}
# Upper bound on one scanner run, so a hung scanner cannot stall the script.
TOOL_TIMEOUT=${TOOL_TIMEOUT:-120}
PORTS=22,25,80,3306,8080,8443
HOSTS=198.18.1.0/24
# The max-rate runs aim at a /16 the firewall sinks; it is still lab-only
# (198.18.0.0/15, routed only inside the lab).
SINK_HOSTS=198.19.0.0/16
SINK_PORTS=22,80,443,8080
OUT=${OUT:-bench/out/probe-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d /tmp/fiq-bench.XXXXXX)
# Development and lab builds: production mode refuses them (exit 4).
export FIQ_PRODUCTION=false

LABPID=""
TPID=""
PPID_POKE=""
cleanup() {
  for p in $PPID_POKE $TPID $LABPID; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $PPID_POKE $TPID $LABPID; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT

# Record what was measured: the commit and whether the engine had local edits.
{ git rev-parse HEAD; git status --porcelain -- probe bench | sed 's/^/dirty: /'; } >"$OUT/commit" 2>/dev/null || true
{ nmap --version | head -1; masscan --version 2>&1 | grep -i 'masscan version'; uname -r; nproc; } >"$OUT/versions" 2>&1 || true

echo "== build"
CGO_ENABLED=0 go build -o "$W/labctl" ./bench/labctl
CGO_ENABLED=0 go build -o "$W/firewalliq" .
# The stand-alone engine, `firewalliq probe`, exists only in a lab build
# (-tags lab); the shipped binary scans only through the scan service, whose
# overhead against this engine is measured by appliance/scan/labtest
# (docs/benchmarks.md). Signing checks the scope against the compiled-in
# profile, so the max-rate scope (max_pps above the default cap) is signed
# by the lab build; the side-by-side scope (1000 pps) by the default build.
CGO_ENABLED=0 go build -tags lab -o "$W/firewalliq-lab" .
"$W/labctl" sweep

echo "== scopes"
"$W/firewalliq" scope keygen --out "$W/lab" >/dev/null
now=$(date -u +%s)
nb=$(date -u -d "@$((now - 3600))" +%Y-%m-%dT%H:%M:%SZ)
na=$(date -u -d "@$((now + 6 * 3600))" +%Y-%m-%dT%H:%M:%SZ)
mkscope() { # id cidr ports max_pps signer-binary
  jq -n --arg id "$1" --arg cidr "$2" --arg ports "tcp:$3" --argjson pps "$4" --arg nb "$nb" --arg na "$na" '{
    id: $id, tenant: "lab", name: "probe benchmark", environment: "non-production",
    cidrs: [$cidr], exclude: [], ports: $ports, probes: ["tcp-syn"],
    not_before: $nb, not_after: $na, max_pps: $pps, signer_key_id: ""}' > "$W/$1.json"
  "$5" scope sign --key "$W/lab.key" "$W/$1.json" > "$W/$1.signed"
}
mkscope bench "$HOSTS" "$PORTS" 1000 "$W/firewalliq"
mkscope sink "$SINK_HOSTS" "$SINK_PORTS" 1000000 "$W/firewalliq-lab"

lab_up() { # loss [--sink]
  rm -f "$W/lab.env"
  "$W/labctl" up --env "$W/lab.env" --loss "$1" ${2:-} >"$W/lab.log" 2>&1 &
  LABPID=$!
  for _ in $(seq 1 150); do [ -f "$W/lab.env" ] && break; sleep 0.2; done
  [ -f "$W/lab.env" ] || { cat "$W/lab.log" >&2; echo "probe.sh: lab did not come up" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$W/lab.env"
}
lab_down() {
  kill -TERM "$LABPID"; wait "$LABPID" || true; LABPID=""
}

capture_start() { # file
  ip netns exec "$LAB_FIREWALL" tcpdump -i "$LAB_CAPTURE_IF" -n -s 128 -B 65536 \
    --time-stamp-precision=nano -w "$1" 2>"$1.log" &
  TPID=$!
  for _ in $(seq 1 50); do grep -q listening "$1.log" 2>/dev/null && break; sleep 0.1; done
}
capture_stop() { # file
  sleep 0.5
  kill -INT "$TPID"; wait "$TPID" || true; TPID=""
  if grep -E '^[1-9][0-9]* packets dropped by kernel' "$1.log"; then
    echo "probe.sh: capture $1 dropped packets; its window figures are incomplete" >&2
  fi
}

TIMEFORMAT='%R %U %S'
run_one() { # tool rate loss rep
  local tool=$1 rate=$2 loss=$3 rep=$4
  local base="$OUT/raw/$tool-r$rate-l$loss-$rep"
  mkdir -p "$OUT/raw"
  capture_start "$base.pcap"
  local fmt in
  case $tool in
    nmap)
      fmt=nmap; in="$base.xml"
      { time timeout "$TOOL_TIMEOUT" ip netns exec "$LAB_SCANNER" nmap -sS -Pn -n --min-rate "$rate" --max-rate "$rate" \
          -p "$PORTS" --reason -oX "$in" "$HOSTS" >"$base.out" 2>&1 ; } 2>"$base.time"
      ;;
    masscan)
      fmt=masscan; in="$base.txt"
      "$W/labctl" poke --ns "$LAB_FIREWALL" & PPID_POKE=$!
      { time timeout "$TOOL_TIMEOUT" ip netns exec "$LAB_SCANNER" masscan "$HOSTS" -p"$PORTS" --rate "$rate" --wait 1 \
          -oL "$in" >"$base.out" 2>&1 ; } 2>"$base.time"
      kill -TERM "$PPID_POKE"; wait "$PPID_POKE" || true; PPID_POKE=""
      ;;
    engine)
      fmt=engine; in="$base.d/results.jsonl"
      { time timeout "$TOOL_TIMEOUT" ip netns exec "$LAB_SCANNER" "$W/firewalliq-lab" probe --scope "$W/bench.signed" \
          --trust "$W/lab.pub" --probes tcp-syn --rate "$rate" --out "$base.d" --no-progress >"$base.out" 2>&1 ; } 2>"$base.time"
      ;;
  esac
  capture_stop "$base.pcap"
  read -r wall user sys <"$base.time"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')
  "$W/labctl" record --tool "$tool" --rate "$rate" --loss "$loss" --rep "$rep" --wall "$wall" --cpu "$cpu" \
    --pcap "$base.pcap" --format "$fmt" --in "$in" --hosts "$HOSTS" --ports "$PORTS" | tee -a "$OUT/runs.jsonl" |
    jq -c '{tool, rate, loss, rep, wall_s, worst: .wire.worst_100ms, cap: .wire.cap_100ms, ratio: .wire.achieved_over_requested, acc: .accuracy.accuracy, oos: .wire.out_of_scope_packets}'
  rm -f "$base.pcap" # large; the figures are in runs.jsonl
}

echo "== side by side: rates [$RATES], loss [$LOSSES]%, $REPS reps, $HOSTS x tcp:$PORTS"
for loss in $LOSSES; do
  lab_up "$loss"
  for rate in $RATES; do
    for rep in $(seq 1 "$REPS"); do
      # Rotate the order so no scanner always runs first.
      case $((rep % 3)) in
        1) order="nmap masscan engine" ;;
        2) order="masscan engine nmap" ;;
        0) order="engine nmap masscan" ;;
      esac
      for tool in $order; do run_one "$tool" "$rate" "$loss" "$rep"; done
    done
  done
  lab_down
done

echo "== max rate (lab high-cap profile, firewall drops at ingress), $SINK_HOSTS x tcp:$SINK_PORTS"
lab_up 0 --sink
counters() { ip netns exec "$LAB_FIREWALL" cat "/sys/class/net/$LAB_CAPTURE_IF/statistics/rx_packets"; }
: >"$OUT/maxrate.jsonl"
for rate in $MAXRATES; do
  for rep in $(seq 1 "$REPS"); do
    d="$OUT/raw/max-engine-r$rate-$rep.d"
    rx0=$(counters)
    { time timeout "$TOOL_TIMEOUT" ip netns exec "$LAB_SCANNER" "$W/firewalliq-lab" probe --scope "$W/sink.signed" \
        --trust "$W/lab.pub" --probes tcp-syn --rate "$rate" --retries 0 --timeout 200ms --out "$d" --no-progress \
        >"$d.out" 2>&1 ; } 2>"$d.time"
    rx1=$(counters)
    read -r wall user sys <"$d.time"
    jq -c --arg tool engine --argjson rate "$rate" --argjson rx "$((rx1 - rx0))" --argjson wall "$wall" \
      --argjson user "$user" --argjson sys "$sys" \
      '{tool: $tool, rate: $rate, sent: .packets_sent, measured_pps: .measured_pps, worst_100ms: .worst_100ms_window,
        firewall_rx: $rx, wall_s: $wall, cpu_s: ($user + $sys),
        cpu_ms_per_1000: (($user + $sys) * 1000000 / .packets_sent)}' "$d/summary.json" | tee -a "$OUT/maxrate.jsonl"
    rm -rf "$d"
  done
done
for rep in $(seq 1 "$REPS"); do
  base="$OUT/raw/max-masscan-$rep"
  rx0=$(counters)
  "$W/labctl" poke --ns "$LAB_FIREWALL" & PPID_POKE=$!
  { time timeout 120 ip netns exec "$LAB_SCANNER" masscan "$SINK_HOSTS" -p"$SINK_PORTS" --rate 10000000 --wait 0 \
      -oL "$base.txt" >"$base.out" 2>&1 ; } 2>"$base.time"
  kill -TERM "$PPID_POKE"; wait "$PPID_POKE" || true; PPID_POKE=""
  rx1=$(counters)
  read -r wall user sys <"$base.time"
  # masscan prints its own rate; the firewall counter over wall time is
  # the comparable figure (it includes masscan's start-up).
  jq -nc --argjson rx "$((rx1 - rx0))" --argjson wall "$wall" --argjson user "$user" --argjson sys "$sys" \
    '{tool: "masscan", rate: 10000000, firewall_rx: $rx, wall_s: $wall, rx_per_wall_s: ($rx / $wall), cpu_s: ($user + $sys),
      cpu_ms_per_1000: (($user + $sys) * 1000000 / $rx)}' | tee -a "$OUT/maxrate.jsonl"
done
lab_down

echo "== report ($OUT/report.md)"
"$W/labctl" report --in "$OUT/runs.jsonl" | tee "$OUT/report.md"
echo
jq -s 'group_by(.tool, .rate) | map({tool: .[0].tool, rate: .[0].rate, runs: length,
  median_measured_pps: (map(.measured_pps // .rx_per_wall_s) | sort | .[length/2|floor]),
  median_cpu_ms_per_1000: (map(.cpu_ms_per_1000) | sort | .[length/2|floor])})' "$OUT/maxrate.jsonl" | tee "$OUT/maxrate.json"

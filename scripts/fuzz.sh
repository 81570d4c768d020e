#!/usr/bin/env bash
# fuzz.sh runs every fuzz target in the module for a bounded time, one at a
# time, and fails if any of them finds a crasher (go test then writes the
# failing input to the package's testdata/fuzz/<Name>/, which is the
# regression test to commit with the fix).
#
# FUZZTIME (default 5s) is the exploration time per target. The budget: CI
# aims at 30 minutes on a 2-core machine, and the rest of scripts/test.sh
# takes about 14 (tests), 2 (gosec) and 4-5 (soak smoke). Each target costs
# FUZZTIME plus about 3 s of instrumented build, worker start and seed-corpus
# run: measured 275 s for all 57 targets at FUZZTIME=2s (4.8 s each, on the
# shared machine under load). So 5 s is about 57 x 8 s = 7.5 minutes and
# keeps CI near 28; 10 s would take about 12 minutes and 20 s (the issue's
# example) about 22, both past the aim. Every target also runs its seed
# corpus (f.Add and testdata/fuzz) in the ordinary `go test` pass; this script
# adds bounded exploration on top. Run longer by hand (FUZZTIME=1m) after
# changing a parser.
#
# Targets are found by grepping for `func FuzzXxx(` in *_test.go, so a new
# target is picked up without editing this file. FUZZ_FILTER (an extended
# regexp over "dir Name") limits the run, e.g. FUZZ_FILTER='^./audit '.
# FUZZ_PARALLEL sets the number of fuzzing workers (default: GOMAXPROCS);
# 1 is kinder to a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-5s}"
FUZZ_FILTER="${FUZZ_FILTER:-.}"
parallel=()
[ -z "${FUZZ_PARALLEL:-}" ] || parallel=(-parallel "$FUZZ_PARALLEL")

# "dir name" pairs, sorted, one a line.
targets="$(grep -rHo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . \
  | sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($#\1 \2#' \
  | grep -v '^./\.' | sort -u | grep -E -- "$FUZZ_FILTER" || true)"
if [ -z "$targets" ]; then
  echo "fuzz.sh: no fuzz targets matched" >&2
  exit 1
fi

total="$(printf '%s\n' "$targets" | wc -l)"
echo "fuzz.sh: $total targets, $FUZZTIME each"
start="$(date +%s)"
failed=()
flaked=0
i=0
while read -r dir name; do
  i=$((i + 1))
  t0="$(date +%s)"
  log="$(mktemp)"
  if CGO_ENABLED=0 timeout 600 go test -count=1 -run '^$' -fuzz "^${name}\$" \
      -fuzztime "$FUZZTIME" "${parallel[@]}" "$dir" >"$log" 2>&1; then
    echo "fuzz.sh: [$i/$total] ok   $dir $name ($(( $(date +%s) - t0 ))s)"
  elif grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
    # Go 1.26's fuzzing coordinator can report its own -fuzztime
    # deadline as a failure when a worker is mid-call at that moment
    # (golang/go#75804, fixed in Go 1.27): no input is written and
    # nothing reproduces. Counted apart; a real crasher always writes
    # its input under testdata/fuzz.
    echo "fuzz.sh: [$i/$total] ok   $dir $name ($(( $(date +%s) - t0 ))s; the fuzzing coordinator's deadline race, golang/go#75804, no input written)"
    flaked=$((flaked + 1))
  else
    echo "fuzz.sh: [$i/$total] FAIL $dir $name ($(( $(date +%s) - t0 ))s)" >&2
    tail -n 40 "$log" >&2
    failed+=("$dir $name")
  fi
  rm -f "$log"
done <<<"$targets"

echo "fuzz.sh: $total targets in $(( $(date +%s) - start ))s ($flaked ended by the coordinator's deadline race)"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# test.sh runs the whole test suite: installs what the tests need, checks
# formatting, vets, builds the static binary, runs every test, then a -race
# pass, every fuzz target for a bounded time and the 2-minute soak test.
# Run as root on Debian for the network-lab tests; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"

echo "== gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go vet"
CGO_ENABLED=0 go vet ./...
# The soak test's files carry the soak build tag (run at the end).
CGO_ENABLED=0 go vet -tags soak ./appliance/soak

# gosec over the non-test code; every finding must be fixed or accepted,
# with its reason, in docs/security.md#gosec.
echo "== gosec"
bash scripts/gosec.sh

echo "== static build"
CGO_ENABLED=0 go build -trimpath -o firewalliq .
file firewalliq | grep -q "statically linked" || { echo "firewalliq is not statically linked" >&2; exit 1; }

# Reproducible builds (docs/packaging.md): the commit built in two
# directories must give byte-identical binaries. Added by the packaging work;
# shares the build cache, so it costs two links (`make reproducible` runs the
# slow variant with an empty cache).
echo "== reproducible build"
bash scripts/reproducible.sh

echo "== go test"
CGO_ENABLED=0 go test -count=1 -timeout 40m ./...

# The lab build (-tags lab: the lab high-cap safety profile and the
# stand-alone probe command, which the shipped binary does not have) has
# tests of its own: the probe command, and a lab build refusing production
# mode.
echo "== go test -tags lab"
CGO_ENABLED=0 go test -tags lab -count=1 -timeout 20m ./probe/safety/ ./appliance/cli/

# The race detector needs cgo; it is enabled for this step only. The shipped
# binary above stays static. -short skips the slow benchmarks-like tests.
echo "== go test -race -short"
CGO_ENABLED=1 go test -race -short -count=1 -timeout 30m ./...

# Every fuzz target, FUZZTIME each (default 5s; see the script for the
# budget), one at a time; any crasher fails the run.
echo "== fuzz"
bash scripts/fuzz.sh

# The 2-minute soak test (docs/soak.md): the appliance built from this tree
# with MinIO, rsyslog and the network lab, under SIGKILLs, outages, a full
# spool disk and hostile clients and services. Needs root (skips without).
echo "== soak smoke"
make soak-smoke

#!/bin/sh
# Build a release binary with an externally supplied safety profile,
# signature and release public key, without copying them into the
# repository: `go build -overlay` swaps the embedded files at compile time.
#
#   FIQ_PROFILE=profile.json FIQ_PROFILE_SIG=profile.json.sig \
#   FIQ_RELEASE_PUB=release.pub packaging/profile/build-release.sh [OUTPUT]
#
# The script verifies the triple first, builds, and then runs the binary's
# own start-up check and prints `profile show` so the build log records the
# profile hash and release key id.
set -eu
: "${FIQ_PROFILE:?path to the profile JSON}"
: "${FIQ_PROFILE_SIG:?path to its signature}"
: "${FIQ_RELEASE_PUB:?path to the release public key}"
out=${1:-firewalliq}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
go run ./packaging/profile overlay --repo "$root" --profile "$FIQ_PROFILE" \
	--sig "$FIQ_PROFILE_SIG" --pub "$FIQ_RELEASE_PUB" --out "$tmp/overlay.json"
CGO_ENABLED=0 go build -trimpath -overlay "$tmp/overlay.json" -o "$out" .
"$out" profile show

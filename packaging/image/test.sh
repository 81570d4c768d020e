#!/usr/bin/env bash
# test.sh is the image's end-to-end test (make image-test): it builds a
# release-style package, with the default safety profile signed by a TEST
# release key generated now (never a real key), so that the appliance runs
# in production mode as a customer's would; builds the image from it; and
# boots it in qemu (boot-test.sh), which waits for /readyz through a
# forwarded port. The image is left in dist/ (firewalliq.raw, .qcow2).
#
#   packaging/image/test.sh            (root, Debian)
#   FIQ_IMAGE_PROBE=/healthz ...       probe another path (see boot-test.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
tmp="$(mktemp -d /var/tmp/firewalliq-imagetest.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

export COMMIT="$(git rev-parse HEAD)" SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
export VERSION="$(packaging/version.sh)" PKG_VERSION="$(packaging/version.sh --pkg)"

# A copy of the tree, so the checkout's ./firewalliq keeps its own build.
mkdir -p "$tmp/src"
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -C "$tmp/src" -xf -

echo "== image-test: TEST release key and signed default profile (production mode allowed)"
go run ./packaging/profile keygen --out "$tmp/TEST-release" >/dev/null
go run ./packaging/profile sign --key "$tmp/TEST-release.key" probe/safety/profile/default.json >"$tmp/default.json.sig"
make -s -C "$tmp/src" package DIST="$tmp/dist" \
	FIQ_PROFILE="$repo/probe/safety/profile/default.json" FIQ_PROFILE_SIG="$tmp/default.json.sig" \
	FIQ_RELEASE_PUB="$tmp/TEST-release.pub" >/dev/null
deb="$(ls "$tmp"/dist/firewalliq_*_amd64.deb)"

bash packaging/image/build.sh --deb "$deb" --out dist
bash packaging/image/boot-test.sh dist/firewalliq.qcow2

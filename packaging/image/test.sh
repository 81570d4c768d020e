#!/usr/bin/env bash
# test.sh is the image's end-to-end test (make image-test): it builds a
# release-style package, with the default safety profile signed by a TEST
# release key generated now (never a real key), so that the appliance runs
# in production mode as a customer's would; builds the image from it; and
# boots it in qemu (boot-test.sh), which waits for /readyz through a
# forwarded port. The image is left in dist/ (firewalliq.raw, .qcow2).
#
# The test image also carries a self-test: firewalliq-selftest.service is
# packaging/systemd/firewalliq.service with only its ExecStart, Type and
# Restart changed, so it runs under exactly the production sandbox (user,
# the two capabilities, system call filter, address families). It runs the
# product's own story, `firewalliq demo --no-serve --keep DIR`: as the
# unprivileged service user it is the loopback story (services on
# 127.0.0.1), and with the unit's CAP_NET_RAW its production scan through
# the scan service sends TCP SYN and UDP through raw sockets. A second,
# unsandboxed oneshot prints the result, the scan's results and an offline
# `firewalliq report verify` of the kept report on the console; the test
# requires success, a raw TCP SYN answered by syn-ack, a raw UDP probe
# answered, and the report verified.
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

echo "== image-test: self-test unit"
ov="$tmp/overlay"
mkdir -p "$ov/etc/systemd/system"
out=/var/lib/firewalliq/selftest
# The derived unit keeps the sandbox's output rules too (DevicePolicy=closed
# would refuse it /dev/console), so a separate, unsandboxed oneshot reports
# its result and results on the console afterwards.
sed -e 's|^Description=.*|Description=FirewallIQ Secure self-test: the demo (a production scan with raw-socket probes, a signed report) under the service sandbox (test image only)|' \
	-e 's|^Type=simple|Type=oneshot|' -e '/^Restart/d' \
	-e 's|^ExecStart=.*|ExecStart=/usr/bin/firewalliq demo --no-serve --keep '"$out"'|' \
	-e 's|^After=network-online.target|After=network-online.target firewalliq.service|' \
	packaging/systemd/firewalliq.service >"$ov/etc/systemd/system/firewalliq-selftest.service"
cat >"$ov/etc/systemd/system/firewalliq-selftest-report.service" <<'UNIT'
[Unit]
Description=FirewallIQ Secure self-test report on the console (test image only)
Wants=firewalliq-selftest.service
After=firewalliq-selftest.service

[Service]
Type=oneshot
ExecStart=/usr/lib/firewalliq-selftest-report
StandardOutput=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$ov/usr/lib"
cat >"$ov/usr/lib/firewalliq-selftest-report" <<'SH'
#!/bin/sh
echo "selftest-result: $(systemctl show -P Result firewalliq-selftest.service) status $(systemctl show -P ExecMainStatus firewalliq-selftest.service)"
d=/var/lib/firewalliq/selftest
sed 's/^/selftest: /' $d/scan/results.jsonl 2>&1
/usr/bin/firewalliq report verify $d/report/report.json --pub $d/report/report.pub --audit-pub $d/report/audit.pub --evidence $d/report/evidence 2>&1 | sed 's/^/selftest-verify: /'
journalctl -b -u firewalliq-selftest.service --no-pager -o cat 2>&1 | tail -20 | sed 's/^/selftest-log: /'
SH
chmod 755 "$ov/usr/lib/firewalliq-selftest-report"
grep -q '^User=firewalliq$' "$ov/etc/systemd/system/firewalliq-selftest.service"

bash packaging/image/build.sh --deb "$deb" --out dist --overlay "$ov"
FIQ_IMAGE_EXPECT='selftest-result: success status 0
selftest: .*"probe":"tcp-syn","state":"open","reason":"syn-ack"
selftest: .*"probe":"udp","state":"open","reason":"udp-response"
selftest-verify: report .* verified' \
	bash packaging/image/boot-test.sh dist/firewalliq.qcow2

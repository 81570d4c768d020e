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
# the two capabilities, system call filter, address families). It runs
# `firewalliq probe` with a non-production scope for 127.0.0.1 (tcp-syn to
# the console's port 8443 and to port 9, icmp-echo; signed with a scope key
# made now) and prints the results to the console; the test requires the
# raw-socket answers: 8443 open by syn-ack, 9 closed by rst, echo-reply.
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

echo "== image-test: self-test scope and unit"
ov="$tmp/overlay"
mkdir -p "$ov/etc/firewalliq/selftest" "$ov/etc/systemd/system"
fiq="$tmp/src/firewalliq"
"$fiq" scope keygen --out "$tmp/selftest" >/dev/null
cat >"$tmp/scope.json" <<SCOPE
{"id":"selftest","tenant":"default","name":"appliance self-test","environment":"non-production",
 "cidrs":["127.0.0.1/32"],"exclude":[],"ports":"tcp:8443,9","probes":["tcp-syn","icmp-echo"],
 "not_before":"$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)","not_after":"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)","max_pps":50}
SCOPE
"$fiq" scope sign --key "$tmp/selftest.key" "$tmp/scope.json" >"$ov/etc/firewalliq/selftest/scope.signed.json"
cp "$tmp/selftest.pub" "$ov/etc/firewalliq/selftest/"
chmod -R a+rX "$ov/etc/firewalliq/selftest"
out=/var/lib/firewalliq/selftest
# The derived unit keeps the sandbox's output rules too (DevicePolicy=closed
# would refuse it /dev/console), so a separate, unsandboxed oneshot reports
# its result and results on the console afterwards.
sed -e 's|^Description=.*|Description=FirewallIQ Secure self-test: raw-socket probes under the service sandbox (test image only)|' \
	-e 's|^Type=simple|Type=oneshot|' -e '/^Restart/d' \
	-e 's|^ExecStart=.*|ExecStart=/usr/bin/firewalliq probe --config /etc/firewalliq/config.yaml --data /var/lib/firewalliq --scope /etc/firewalliq/selftest/scope.signed.json --trust /etc/firewalliq/selftest/selftest.pub --out '"$out"' --no-progress\
ExecStartPre=/bin/bash -c "for i in {1..120}; do (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null \&\& exit 0; sleep 1; done; exit 1"|' \
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
sed 's/^/selftest: /' /var/lib/firewalliq/selftest/results.jsonl 2>&1
journalctl -b -u firewalliq-selftest.service --no-pager -o cat 2>&1 | tail -20 | sed 's/^/selftest-log: /'
SH
chmod 755 "$ov/usr/lib/firewalliq-selftest-report"
grep -q '^User=firewalliq$' "$ov/etc/systemd/system/firewalliq-selftest.service"

bash packaging/image/build.sh --deb "$deb" --out dist --overlay "$ov"
FIQ_IMAGE_EXPECT='selftest-result: success status 0
selftest: .*"port":8443,"probe":"tcp-syn","state":"open","reason":"syn-ack"
selftest: .*"port":9,"probe":"tcp-syn","state":"closed","reason":"rst"
selftest: .*"probe":"icmp-echo","state":"open","reason":"echo-reply"' \
	bash packaging/image/boot-test.sh dist/firewalliq.qcow2

#!/usr/bin/env bash
# boot-test.sh boots the appliance image in qemu and checks that it comes up:
# UEFI (OVMF) firmware, systemd-boot, the kernel on the serial console, the
# first-boot init, and the hardened firewalliq.service answering HTTPS on
# the guest's port 8443 through a port forwarded to 127.0.0.1 on the host.
#
#   packaging/image/boot-test.sh [IMAGE]     (default dist/firewalliq.qcow2)
#
#   FIQ_IMAGE_PROBE=/readyz    the path that must answer 200 (default /readyz)
#   FIQ_IMAGE_TIMEOUT=900      seconds to wait for it (software emulation is slow)
#   FIQ_IMAGE_EXPECT=REGEX...  extended regular expressions (one per line) that
#                              must each match a line of the serial console too
#   FIQ_IMAGE_ACCEL=tcg        qemu accelerators to try, in order (kvm:tcg where
#                              nested KVM works; here it fails at the first FPU
#                              instruction of the firmware)
#
# The image is opened with -snapshot: the test never changes it. It also
# checks that the first boot showed the admin's one-time password on the
# serial console. The serial log is kept in dist/boot-test.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-dist/firewalliq.qcow2}"
probe="${FIQ_IMAGE_PROBE:-/readyz}"
timeout="${FIQ_IMAGE_TIMEOUT:-900}"
expect="${FIQ_IMAGE_EXPECT:-}"
accel="${FIQ_IMAGE_ACCEL:-tcg}"
[ -f "$image" ] || { echo "boot-test: no image $image (make image)" >&2; exit 1; }
say() { printf '== boot-test: %s\n' "$*"; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -f /usr/share/OVMF/OVMF_CODE.fd ] || need+=(ovmf)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "boot-test: needs ${need[*]}" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A free loopback port for the forward.
port=""
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 40000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "boot-test: no free port" >&2; exit 1; }

tmp="$(mktemp -d /tmp/firewalliq-boot.XXXXXX)"
log="dist/boot-test.log"
mkdir -p dist
: >"$log"
cp /usr/share/OVMF/OVMF_VARS.fd "$tmp/vars.fd"
qpid=""
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$qpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

accel_args=()
IFS=: read -r -a accels <<<"$accel"
for a in "${accels[@]}"; do
	if [ "$a" = kvm ] && ! [ -w /dev/kvm ]; then continue; fi
	accel_args+=(-accel "$a")
done
say "booting $image (accelerators: ${accel_args[*]}), console on 127.0.0.1:$port -> guest :8443"
start=$(date +%s)
qemu-system-x86_64 "${accel_args[@]}" -m 1024 -smp 1 \
	-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
	-drive if=pflash,format=raw,file="$tmp/vars.fd" \
	-drive file="$image",if=virtio,snapshot=on \
	-netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8443 -device virtio-net-pci,netdev=n0 \
	-display none -serial file:"$log" -monitor none -no-reboot &
qpid=$!

# expected reports whether every FIQ_IMAGE_EXPECT pattern matches the log.
expected() {
	local re
	while IFS= read -r re; do
		[ -z "$re" ] && continue
		grep -Eq -- "$re" "$log" || return 1
	done <<<"$expect"
	return 0
}

ok=false answered=""
while [ $(($(date +%s) - start)) -lt "$timeout" ]; do
	kill -0 "$qpid" 2>/dev/null || { echo "boot-test: qemu exited" >&2; break; }
	if [ -z "$answered" ]; then
		code="$(curl -ks -o "$tmp/body" -w '%{http_code}' --max-time 5 "https://127.0.0.1:$port$probe" || true)"
		if [ "$code" = 200 ]; then
			answered=$(($(date +%s) - start))
			say "$probe answered 200 after ${answered}s: $(head -c 200 "$tmp/body")"
		fi
	fi
	if [ -n "$answered" ] && expected; then ok=true; break; fi
	sleep 5
done
if ! $ok; then
	if [ -z "$answered" ]; then
		echo "boot-test: FAIL: no 200 from https://127.0.0.1:$port$probe within ${timeout}s (last: ${code:-none}); serial log tail:" >&2
	else
		echo "boot-test: FAIL: the serial console never showed every FIQ_IMAGE_EXPECT pattern:" >&2
		echo "$expect" >&2
	fi
	tail -40 "$log" >&2
	exit 1
fi
[ -z "$expect" ] || say "the serial console showed every expected line after $(($(date +%s) - start))s"
grep -q "one-time password:" "$log" || { echo "boot-test: FAIL: the first boot did not show the admin credentials on the console" >&2; exit 1; }
say "first boot showed the admin credentials on the serial console"
say "passed"

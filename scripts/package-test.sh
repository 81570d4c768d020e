#!/usr/bin/env bash
# package-test.sh tests the deb and rpm packages the way an administrator
# uses them, in a throw-away Debian chroot (debootstrap, minbase):
#
#   deb: install 1.0.0, initialise the appliance, edit the config, upgrade
#        to 1.0.1 (data and config kept, bytes compared), reinstall, remove
#        (config and data kept), purge (config gone, data kept), install
#        again over the kept data (untouched)
#   rpm: the same install / upgrade / erase with `rpm --root` against a fresh
#        copy of the chroot (scriptlets run in it), --nodeps
#   unit: systemd-analyze security --offline=yes: exposure <= 2.0
#
# Usage (root, Debian): scripts/package-test.sh [--unit-only]
# The chroot is built once and cached as a tarball in
#   ${FIQ_PKGTEST_CACHE:-/var/tmp/firewalliq-pkgtest}/bookworm-minbase.tar
# (delete it to rebuild). The mirror is the one apt is configured with.
# See docs/packaging.md#package-tests.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

MAX_EXPOSURE=2.0
unit_only=false
case "${1:-}" in
"") ;;
--unit-only) unit_only=true ;;
*) echo "usage: $0 [--unit-only]" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*"; }
fail() { printf 'package-test: FAIL: %s\n' "$*" >&2; exit 1; }

# --- systemd unit hardening ---------------------------------------------
unit_check() {
	local help
	help="$(systemd-analyze security --help 2>/dev/null || true)"
	if [[ "$help" != *--offline* ]]; then
		echo "package-test: systemd-analyze with --offline not available; unit check skipped" >&2
		return 0
	fi
	local out score
	out="$(systemd-analyze security --offline=yes --no-pager packaging/systemd/firewalliq.service 2>&1)" ||
		fail "systemd-analyze security failed: $out"
	score="$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for firewalliq.service: \([0-9.]*\).*/\1/p')"
	[ -n "$score" ] || fail "no exposure score in: $out"
	awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
		fail "unit exposure $score is above $MAX_EXPOSURE"
	say "unit: systemd-analyze security exposure $score (limit $MAX_EXPOSURE)"
}
unit_check
$unit_only && exit 0

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, dpkg in a chroot)"

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v rpm >/dev/null || need+=(rpm)
command -v make >/dev/null || need+=(make)
if [ "${#need[@]}" -gt 0 ]; then
	say "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tarball="$(packaging/debian-rootfs.sh)"

tmp="$(mktemp -d /var/tmp/firewalliq-pkgtest.XXXXXX)"
cleanup() {
	for r in "$tmp"/root-*; do
		[ -d "$r/proc" ] && mountpoint -q "$r/proc" && umount "$r/proc"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# Two versions of the packages, stamped differently so the upgrade is
# visible in `firewalliq version`. They are built in a copy of the tree so
# that the checkout's ./firewalliq keeps its own stamp.
mkdir -p "$tmp/src"
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -C "$tmp/src" -xf -
export COMMIT="$(git rev-parse HEAD)" SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
for v in 1.0.0 1.0.1; do
	say "packages $v"
	make -s -C "$tmp/src" package VERSION="v$v" PKG_VERSION="$v" DIST="$tmp/dist-$v" >/dev/null
done
deb() { echo "$tmp/dist-$1/firewalliq_$1-1_amd64.deb"; }
rpmfile() { echo "$tmp/dist-$1/firewalliq-$1-1.x86_64.rpm"; }
[ -f "$(deb 1.0.0)" ] && [ -f "$(rpmfile 1.0.1)" ] || fail "packages not where expected: $(ls -R "$tmp")"

newroot() {
	local r="$tmp/root-$1"
	mkdir -p "$r"
	tar -C "$r" -xf "$tarball"
	mount -t proc proc "$r/proc"
	echo "$r"
}

# Checks that hold after every install or upgrade, whatever the packager.
check_installed() {
	local r="$1" v="$2"
	local ver
	ver="$(in_root "$r" firewalliq version)" || fail "firewalliq version failed"
	[ "${ver%%$'\n'*}" = "firewalliq v$v" ] || fail "firewalliq version is not v$v: ${ver%%$'\n'*}"
	local pw
	pw="$(in_root "$r" getent passwd firewalliq)" || fail "no firewalliq user"
	local uid shell
	uid="$(echo "$pw" | cut -d: -f3)" shell="$(echo "$pw" | cut -d: -f7)"
	[ "$uid" -lt 1000 ] || fail "firewalliq is not a system user (uid $uid)"
	case "$shell" in */nologin) ;; *) fail "firewalliq has a login shell: $shell" ;; esac
	[ -f "$r/etc/firewalliq/config.yaml" ] || fail "no /etc/firewalliq/config.yaml"
}

in_root() { local r="$1"; shift; chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# The data directory's state: every file's path, owner, mode and SHA-256
# (not of SQLite's -shm index, which any reader may rewrite).
data_state() {
	in_root "$1" sh -c 'cd /var/lib/firewalliq && find . -printf "%p %u %g %m\n" | sort &&
		find . -type f ! -name "*-shm" -print0 | sort -z | xargs -0 -r sha256sum'
}

# --- deb ----------------------------------------------------------------
r="$(newroot deb)"
cp "$(deb 1.0.0)" "$(deb 1.0.1)" "$r/tmp/"
d100="/tmp/$(basename "$(deb 1.0.0)")" d101="/tmp/$(basename "$(deb 1.0.1)")"

say "deb: install 1.0.0"
in_root "$r" dpkg -i "$d100" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i 1.0.0"; }
check_installed "$r" 1.0.0
owner="$(in_root "$r" stat -c '%U %G %a' /var/lib/firewalliq)"
[ "$owner" = "firewalliq firewalliq 700" ] || fail "data dir is $owner, want firewalliq firewalliq 700"
cmp -s "$r/etc/firewalliq/config.yaml" packaging/config.yaml || fail "installed config differs from packaging/config.yaml"
[ -f "$r/lib/systemd/system/firewalliq.service" ] || fail "no unit file"
[[ "$(in_root "$r" dpkg-query -W -f='${Conffiles}' firewalliq)" == *" /etc/firewalliq/config.yaml "* ]] || fail "config.yaml is not a conffile"

say "deb: firewalliq init with the packaged config, as an administrator would"
in_root "$r" firewalliq --config /etc/firewalliq/config.yaml init --data /var/lib/firewalliq --admin alice >"$tmp/init.log" 2>&1 ||
	{ cat "$tmp/init.log"; fail "firewalliq init"; }
in_root "$r" chown -R firewalliq:firewalliq /var/lib/firewalliq
echo "evidence the package must never touch" >"$r/var/lib/firewalliq/operator-note.txt"
in_root "$r" chown firewalliq:firewalliq /var/lib/firewalliq/operator-note.txt
sed -i 's/^log_level: info$/log_level: debug/' "$r/etc/firewalliq/config.yaml"
cp "$r/etc/firewalliq/config.yaml" "$tmp/config.edited"
data_state "$r" >"$tmp/data.before"
# The service user can read what init wrote (the audit log verifies).
in_root "$r" runuser -u firewalliq -- firewalliq audit verify --data /var/lib/firewalliq >"$tmp/verify.log" 2>&1 ||
	{ cat "$tmp/verify.log"; fail "audit verify as the firewalliq user"; }
data_state "$r" >"$tmp/data.before"
grep -q '^\./firewalliq.db firewalliq firewalliq [0-7]*$' "$tmp/data.before" ||
	fail "data directory state lacks the database: $(cat "$tmp/data.before")"

say "deb: upgrade to 1.0.1"
in_root "$r" dpkg -i "$d101" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i 1.0.1 (upgrade)"; }
check_installed "$r" 1.0.1
cmp -s "$r/etc/firewalliq/config.yaml" "$tmp/config.edited" || fail "upgrade changed the edited config"
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "upgrade changed the data directory"
in_root "$r" runuser -u firewalliq -- firewalliq --config /etc/firewalliq/config.yaml audit verify --data /var/lib/firewalliq >"$tmp/verify.log" 2>&1 ||
	{ cat "$tmp/verify.log"; fail "audit verify after upgrade"; }

say "deb: reinstall 1.0.1 (postinst runs again)"
in_root "$r" dpkg -i "$d101" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i 1.0.1 (reinstall)"; }
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "reinstall changed the data directory"

say "deb: remove"
in_root "$r" dpkg -r firewalliq >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -r"; }
[ ! -e "$r/usr/bin/firewalliq" ] || fail "binary left after remove"
[ ! -e "$r/lib/systemd/system/firewalliq.service" ] || fail "unit left after remove"
cmp -s "$r/etc/firewalliq/config.yaml" "$tmp/config.edited" || fail "remove did not keep the config"
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "remove changed the data directory"

say "deb: purge"
in_root "$r" dpkg -P firewalliq >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -P"; }
[ ! -e "$r/etc/firewalliq/config.yaml" ] || fail "config left after purge"
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "purge changed the data directory"
in_root "$r" getent passwd firewalliq >/dev/null || fail "purge removed the user that owns the kept data"

say "deb: install again over the kept data"
in_root "$r" dpkg -i "$d100" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i after purge"; }
check_installed "$r" 1.0.0
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "install over kept data changed it"
in_root "$r" runuser -u firewalliq -- firewalliq audit verify --data /var/lib/firewalliq >"$tmp/verify.log" 2>&1 ||
	{ cat "$tmp/verify.log"; fail "audit verify after reinstall"; }
umount "$r/proc"

# --- rpm ----------------------------------------------------------------
# rpm runs the scriptlets chrooted into --root, so the Debian chroot (sh,
# getent, useradd) stands in for an RPM distribution; --nodeps because its
# rpm database knows none of the Debian packages.
r="$(newroot rpm)"
rpmdo() { rpm --root "$r" --nodeps "$@"; }
say "rpm: install 1.0.0"
rpm --root "$r" --initdb
rpmdo -i "$(rpmfile 1.0.0)" >"$tmp/rpm.log" 2>&1 || { cat "$tmp/rpm.log"; fail "rpm -i 1.0.0"; }
check_installed "$r" 1.0.0
[ -f "$r/usr/lib/systemd/system/firewalliq.service" ] || fail "rpm: no unit file"
owner="$(in_root "$r" stat -c '%U %G %a' /var/lib/firewalliq)"
[ "$owner" = "firewalliq firewalliq 700" ] || fail "rpm: data dir is $owner, want firewalliq firewalliq 700"
[ "$(rpm --root "$r" -q --configfiles firewalliq)" = /etc/firewalliq/config.yaml ] || fail "rpm: config.yaml is not %config"
in_root "$r" firewalliq --config /etc/firewalliq/config.yaml init --data /var/lib/firewalliq --admin alice >"$tmp/init.log" 2>&1 ||
	{ cat "$tmp/init.log"; fail "rpm: firewalliq init"; }
in_root "$r" chown -R firewalliq:firewalliq /var/lib/firewalliq
sed -i 's/^log_level: info$/log_level: debug/' "$r/etc/firewalliq/config.yaml"
cp "$r/etc/firewalliq/config.yaml" "$tmp/config.edited"
data_state "$r" >"$tmp/data.before"

say "rpm: upgrade to 1.0.1"
rpmdo -U "$(rpmfile 1.0.1)" >"$tmp/rpm.log" 2>&1 || { cat "$tmp/rpm.log"; fail "rpm -U 1.0.1"; }
check_installed "$r" 1.0.1
[ "$(rpm --root "$r" -q firewalliq)" = "firewalliq-1.0.1-1.x86_64" ] || fail "rpm: after upgrade: $(rpm --root "$r" -q firewalliq)"
cmp -s "$r/etc/firewalliq/config.yaml" "$tmp/config.edited" || fail "rpm: upgrade changed the edited config"
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "rpm: upgrade changed the data directory"

say "rpm: erase"
rpmdo -e firewalliq >"$tmp/rpm.log" 2>&1 || { cat "$tmp/rpm.log"; fail "rpm -e"; }
[ ! -e "$r/usr/bin/firewalliq" ] || fail "rpm: binary left after erase"
# rpm keeps a changed %config file as config.yaml.rpmsave.
[ -f "$r/etc/firewalliq/config.yaml.rpmsave" ] || [ -f "$r/etc/firewalliq/config.yaml" ] || fail "rpm: erase lost the edited config"
data_state "$r" >"$tmp/data.after"
diff "$tmp/data.before" "$tmp/data.after" || fail "rpm: erase changed the data directory"
umount "$r/proc"

say "package-test: all passed (deb: install, upgrade, reinstall, remove, purge, reinstall over data; rpm: install, upgrade, erase)"

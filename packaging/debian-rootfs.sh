#!/usr/bin/env bash
# debian-rootfs.sh prints the path of a cached Debian bookworm minbase root
# file system tarball, making it first with debootstrap when it is missing.
# scripts/package-test.sh and packaging/image/build.sh start from it.
#
#   tarball=$(packaging/debian-rootfs.sh)
#
# Cache: ${FIQ_PKGTEST_CACHE:-/var/tmp/firewalliq-pkgtest}/bookworm-minbase.tar
# (delete it to rebuild). The mirror is the one apt is configured with
# (deb822 .sources or one-line .list), else deb.debian.org. Needs root.
set -euo pipefail

mirror() {
	local m
	m="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ && $2 ~ /debian\/?$/ && $2 !~ /security/ { print $2; exit }')"
	if [ -z "$m" ]; then
		m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" && $2 ~ /debian\/?$/ && $2 !~ /security/ { print $2; exit }')"
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

if [ "${1:-}" = "--mirror" ]; then
	mirror
	exit 0
fi

cache="${FIQ_PKGTEST_CACHE:-/var/tmp/firewalliq-pkgtest}"
tarball="$cache/bookworm-minbase.tar"
if [ ! -s "$tarball" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "debian-rootfs.sh: needs root" >&2; exit 1; }
	if ! command -v debootstrap >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
	fi
	mkdir -p "$cache"
	m="$(mirror)"
	echo "debian-rootfs.sh: debootstrap bookworm (minbase) from $m (a few minutes, once)" >&2
	rm -rf "$cache/rootfs.tmp"
	debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" "$m" >"$cache/debootstrap.log" 2>&1 || {
		echo "debian-rootfs.sh: debootstrap failed; see $cache/debootstrap.log" >&2
		exit 1
	}
	tar -C "$cache/rootfs.tmp" -cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
	rm -rf "$cache/rootfs.tmp"
fi
echo "$tarball"

#!/usr/bin/env bash
# reproducible.sh checks that two builds of the same source are
# byte-identical: it copies the tree into two different directories and runs
# `make build` in each, then compares the two binaries with cmp.
#
#   scripts/reproducible.sh                 both builds share the Go build
#                                           cache (fast; what scripts/test.sh runs)
#   scripts/reproducible.sh --fresh-cache   the second build starts from an
#                                           empty GOCACHE, so every package is
#                                           compiled again (several minutes)
#
# The version, commit and build time come from git (packaging/version.sh and
# the commit time as SOURCE_DATE_EPOCH), so both copies are stamped from the
# repository they were copied from. Exit status 1 and a diff summary when the
# binaries differ. See docs/packaging.md#reproducible-builds.
set -euo pipefail
cd "$(dirname "$0")/.."

fresh=false
case "${1:-}" in
"") ;;
--fresh-cache) fresh=true ;;
*) echo "usage: $0 [--fresh-cache]" >&2; exit 2 ;;
esac

if ! command -v make >/dev/null; then
	[ "$(id -u)" -eq 0 ] || { echo "reproducible.sh: needs make (apt-get install make)" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make >/dev/null
fi

# The stamp is taken once, here, from the real checkout; the copies carry no
# .git (a build must not depend on one).
export COMMIT="$(git rev-parse HEAD)"
export SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
export VERSION="$(packaging/version.sh)"
export PKG_VERSION="$(packaging/version.sh --pkg)"

tmp="$(mktemp -d /tmp/firewalliq-repro.XXXXXX)"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# The tracked and untracked-but-not-ignored files of the working tree: what
# a build of this checkout reads.
copy() {
	mkdir -p "$1"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -C "$1" -xf -
}
copy "$tmp/a/src"
copy "$tmp/elsewhere/b/firewalliq"

build() {
	local dir="$1" cache="$2"
	echo "== build in $dir (GOCACHE=$cache)"
	GOCACHE="$cache" GOFLAGS= make -s -C "$dir" build >/dev/null
}
build "$tmp/a/src" "$(go env GOCACHE)"
if $fresh; then
	build "$tmp/elsewhere/b/firewalliq" "$tmp/gocache"
else
	build "$tmp/elsewhere/b/firewalliq" "$(go env GOCACHE)"
fi

a="$tmp/a/src/firewalliq" b="$tmp/elsewhere/b/firewalliq/firewalliq"
if cmp -s "$a" "$b"; then
	echo "reproducible: identical, $(stat -c %s "$a") bytes, sha256 $(sha256sum "$a" | cut -d' ' -f1) ($VERSION)"
	exit 0
fi
echo "reproducible: the two builds DIFFER" >&2
cmp "$a" "$b" | head -1 >&2 || true
echo "sizes: $(stat -c %s "$a") vs $(stat -c %s "$b")" >&2
if command -v go >/dev/null; then
	diff <(go version -m "$a") <(go version -m "$b") >&2 || true
fi
exit 1

#!/bin/sh
# version.sh prints the version of the checked-out tree, derived from git
# alone so that two builds of one commit agree:
#
#   packaging/version.sh          v1.2.3 when HEAD carries that tag; otherwise a
#                                 Go-style pseudo-version from the commit time,
#                                 v0.0.0-20261129145000-dcf8e21abcde (after a
#                                 tag: v1.2.3-0.20261129145000-dcf8e21abcde)
#   packaging/version.sh --pkg    the same for deb and rpm, which want a leading
#                                 digit and no hyphen: 1.2.3, 0.0.0~git20261129145000.dcf8e21abcde,
#                                 1.2.3+git20261129145000.dcf8e21abcde
#
# A tree with uncommitted changes gets a ".dirty" suffix (the binary's
# commit stamp then does not describe its source exactly).
set -eu
cd "$(dirname "$0")/.."
pkg=false
[ "${1:-}" = "--pkg" ] && pkg=true

epoch=$(git log -1 --format=%ct)
stamp=$(date -u -d "@$epoch" +%Y%m%d%H%M%S)
short=$(git rev-parse --short=12 HEAD)
dirty=""
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=".dirty"
fi

if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	if $pkg; then
		# A pre-release tag (v1.2.0-rc1) sorts before the release: "~".
		echo "${tag#v}${dirty}" | tr '-' '~'
	else
		echo "${tag}${dirty}"
	fi
elif last=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	if $pkg; then echo "${last#v}+git${stamp}.${short}${dirty}"; else echo "${last}-0.${stamp}-${short}${dirty}"; fi
else
	if $pkg; then echo "0.0.0~git${stamp}.${short}${dirty}"; else echo "v0.0.0-${stamp}-${short}${dirty}"; fi
fi

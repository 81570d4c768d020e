#!/usr/bin/env bash
# sbom.sh writes the CycloneDX SBOM of the firewalliq binary:
#
#   packaging/sbom.sh OUT.json        (make sbom: dist/firewalliq.cdx.json)
#
# It runs cyclonedx-gomod v1.10.0 (`go run` at that version; not in go.mod)
# with the build's constraints (CGO_ENABLED=0, GOOS/GOARCH), with licence
# detection, and without a serial number or timestamp, so the SBOM of one
# commit is byte-identical too.
#
# cyclonedx-gomod reads the main module's version with go-git, which cannot
# open a git worktree or a shared clone (CycloneDX/cyclonedx-gomod#436).
# So it runs on a copy of the tree in a one-commit repository tagged with
# the version packaging/version.sh gives for the real checkout.
set -euo pipefail
out="${1:?usage: $0 OUT.json}"
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(packaging/version.sh)}"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
CYCLONEDX="${CYCLONEDX:-go run github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0}"

tmp="$(mktemp -d /tmp/firewalliq-sbom.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -C "$tmp" -xf -
(
	cd "$tmp"
	export GIT_AUTHOR_NAME=sbom GIT_AUTHOR_EMAIL=sbom@invalid GIT_COMMITTER_NAME=sbom GIT_COMMITTER_EMAIL=sbom@invalid
	export GIT_AUTHOR_DATE="@$SOURCE_DATE_EPOCH" GIT_COMMITTER_DATE="@$SOURCE_DATE_EPOCH"
	git init -q . && git add -A && git commit -q -m "sbom of $VERSION" && git tag "$VERSION"
)
(cd "$tmp" && GOFLAGS= CGO_ENABLED=0 $CYCLONEDX app -json -licenses -noserial -notimestamp -main . -output "$out" .)
grep -q "\"version\": \"$VERSION\"" "$out" || { echo "sbom.sh: $out does not name version $VERSION" >&2; exit 1; }
echo "sbom: wrote $out ($VERSION)"

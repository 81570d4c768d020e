#!/usr/bin/env bash
# gosec.sh runs the pinned gosec (scripts/deps.sh installs it) over the
# module's non-test code and fails on any finding that docs/security.md does
# not accept. The accepted findings are the table of the "## gosec" section
# there: one row per rule and file, with the number of findings and why each
# is not a vulnerability. Counting per rule and file (not per line) keeps the
# table stable while code moves; a new finding in a file, or one more of an
# accepted kind, fails until it is fixed or justified in its row. Fewer
# findings than accepted only prints a note to lower the row.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

report="$(mktemp)"
found="$(mktemp)"
accepted="$(mktemp)"
trap 'rm -f "$report" "$found" "$accepted"' EXIT

rc=0
CGO_ENABLED=0 gosec -quiet -exclude-generated -fmt json -out "$report" ./... || rc=$?
# gosec exits 1 when it found something; any other failure, or packages it
# could not load, means the run proves nothing.
if [ "$rc" -gt 1 ] || [ "$(jq '."Golang errors" | length' "$report")" != 0 ]; then
  echo "gosec.sh: gosec did not run cleanly (exit $rc):" >&2
  jq '."Golang errors"' "$report" >&2
  exit 1
fi

root="$PWD/"
jq -r --arg root "$root" '.Issues[] | "\(.rule_id) \(.file | ltrimstr($root))"' "$report" \
  | sort | uniq -c | awk '{print $2, $3, $1}' >"$found"
awk -F'|' '/^## gosec/ {on = 1; next} /^## / {on = 0}
  on && $2 ~ /^ *G[0-9]+ *$/ { gsub(/[ `]/, "", $2); gsub(/[ `]/, "", $3); gsub(/ /, "", $4); print $2, $3, $4 }' \
  docs/security.md | sort >"$accepted"
if [ ! -s "$accepted" ]; then
  echo "gosec.sh: no accepted findings table under '## gosec' in docs/security.md" >&2
  exit 1
fi

fail=0
while read -r rule file n; do
  ok="$(awk -v r="$rule" -v f="$file" '$1 == r && $2 == f {print $3}' "$accepted")"
  if [ -z "$ok" ] || [ "$n" -gt "$ok" ]; then
    echo "gosec.sh: $rule in $file: $n finding(s), ${ok:-0} accepted in docs/security.md#gosec:" >&2
    jq -r --arg root "$root" --arg r "$rule" --arg f "$file" \
      '.Issues[] | select(.rule_id == $r and (.file | ltrimstr($root)) == $f) | "  \(.file | ltrimstr($root)):\(.line): \(.details)"' \
      "$report" >&2
    fail=1
  fi
done <"$found"
while read -r rule file n; do
  have="$(awk -v r="$rule" -v f="$file" '$1 == r && $2 == f {print $3}' "$found")"
  if [ "${have:-0}" -lt "$n" ]; then
    echo "gosec.sh: note: $rule in $file: ${have:-0} finding(s) now, $n accepted; lower or remove its row in docs/security.md"
  fi
done <"$accepted"

total="$(jq '.Issues | length' "$report")"
if [ "$fail" -ne 0 ]; then
  echo "gosec.sh: findings not accepted (fix them, or justify each in docs/security.md#gosec)" >&2
  exit 1
fi
echo "gosec.sh: ok ($total findings, every one accepted in docs/security.md#gosec)"

#!/bin/bash
# odrsd -t: the example configuration is valid; a broken one is refused
# with FILE:LINE for every problem, exit 2, and nothing is created.
cd "$(dirname "$0")/../.." || exit 1
set -u
fail() { echo "FAIL: $*"; exit 1; }

out=$(build/odrsd -t -c examples/odrs.conf 2>&1) || fail "examples/odrs.conf refused: $out"
out=$(build/odrsd -t -c examples/odrs-cluster.conf 2>&1) || fail "examples/odrs-cluster.conf refused: $out"

bad=tests/config/bad-5-7.conf
sandbox=$(mktemp -d)
trap 'rm -rf "$sandbox"' EXIT
# Point every path odrsd could create into the sandbox: -t must create none of them.
sed "s|@DIR@|$sandbox|g" "$bad" > "$sandbox/bad.conf"
out=$(build/odrsd -t -c "$sandbox/bad.conf" 2>&1); rc=$?
echo "$out"
[ $rc = 2 ] || fail "exit $rc, want 2"
grep -q "^$sandbox/bad.conf:5: " <<<"$out" || fail "no FILE:5: error"
grep -q "^$sandbox/bad.conf:7: " <<<"$out" || fail "no FILE:7: error"
[ "$(ls -A "$sandbox")" = bad.conf ] || fail "odrsd -t created files: $(ls -A "$sandbox")"

out=$(build/odrsd -t -c /nonexistent/odrs.conf 2>&1); rc=$?
[ $rc = 2 ] || fail "missing file: exit $rc, want 2"
# The file as a whole: no line number (not ":0:").
[ "$out" = "/nonexistent/odrs.conf: No such file or directory" ] || fail "missing file: '$out'"
echo "ok"

#!/bin/bash
# odrsctl report's command line on a log file (tests/unit/test_report.c
# checks the arithmetic): --since as a time and as a duration before
# --until, --vm, -l, --json, and the usage errors (exit 2).
# Needs no root and no VM. ODRSCTL overrides the binary (default build/odrsctl).
# Exit 0 pass, 1 fail, 77 skip.
cd "$(dirname "$0")/../.." || exit 1
ODRSCTL=${ODRSCTL:-$PWD/build/odrsctl}
[ -x "$ODRSCTL" ] || { echo "skip: no $ODRSCTL (make all)"; exit 77; }

DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$DIR"' EXIT
LOG=$DIR/events.jsonl
cat >"$LOG" <<'EOT'
{"ts":"2026-11-23T08:00:00.000Z","event":"hibernate_done","node":"n1","vm":"web1","bytes":1073741824,"ms":2103}
{"ts":"2026-11-23T10:00:00.000Z","event":"wake_start","node":"n1","vm":"web1","trigger":"syn"}
{"ts":"2026-11-23T10:00:00.800Z","event":"wake_done","node":"n1","vm":"web1","ms":800}
{"ts":"2026-11-23T11:00:00.000Z","event":"arp_reply","node":"n1","vm":"db1"}
EOT

fails=0
expect() { # NAME WANT-RC WANT-STDOUT ARGS...
	local name=$1 want_rc=$2 want_out=$3 rc
	shift 3
	"$ODRSCTL" report -l "$LOG" "$@" >"$DIR/out" 2>"$DIR/err"
	rc=$?
	if [ "$rc" = "$want_rc" ] && { [ "$want_out" = "*" ] || [ "$(cat "$DIR/out")" = "$want_out" ]; }; then
		echo "ok: $name"
		return
	fi
	echo "FAIL: $name: exit $rc, want $want_rc"
	sed 's/^/  out: /' "$DIR/out"; sed 's/^/  err: /' "$DIR/err"
	fails=$((fails + 1))
}

expect "--since and --until as times" 0 \
"from 2026-11-23T09:00:00.000Z to 2026-11-23T12:00:00.000Z (3.0 h)
VM    ASLEEP  WAKES  MEDIAN_MS     P90_MS  GIB_HOURS
db1     0.0%      0          -          -      0.000
web1   33.3%      1        800        800      1.000" --since 2026-11-23T09:00:00Z --until 2026-11-23T12:00:00.000Z
expect "--since as a duration before --until, --vm" 0 \
"from 2026-11-23T06:00:00.000Z to 2026-11-23T12:00:00.000Z (6.0 h)
VM    ASLEEP  WAKES  MEDIAN_MS     P90_MS  GIB_HOURS
web1   33.3%      1        800        800      2.000" --since 6h --until 2026-11-23T12:00:00Z --vm web1
expect "--json" 0 \
'{"since":"2026-11-23T08:00:00.000Z","until":"2026-11-23T12:00:00.000Z","vms":[{"vm":"web1","asleep_share":0.5,"asleep_s":7200,"wakes":1,"wake_ms_median":800,"wake_ms_p90":800,"memory_gib_hours":2.0}]}' \
	--until 2026-11-23T12:00:00Z --vm web1 --json
expect "without --until the window ends now" 0 "*" --vm web1
grep -q '^web1 ' "$DIR/out" || { echo "FAIL: no web1 row: $(cat "$DIR/out")"; fails=$((fails + 1)); }
expect "a bad --since" 2 "" --since yesterday
grep -q "report: --since wants a time like 2026-11-23T09:00:00Z or a duration like 24h, not 'yesterday'" "$DIR/err" ||
	{ echo "FAIL: message: $(cat "$DIR/err")"; fails=$((fails + 1)); }
expect "a duration for --until" 2 "" --until 2h
expect "--since after --until" 2 "" --since 2026-11-24 --until 2026-11-23
expect "an unknown option" 2 "" --bogus
expect "an extra argument" 2 "" web1
"$ODRSCTL" report -l "$DIR/none.jsonl" >/dev/null 2>"$DIR/err"
[ $? = 1 ] && grep -q "none.jsonl: No such file" "$DIR/err" && echo "ok: a missing log fails" ||
	{ echo "FAIL: a missing log: $(cat "$DIR/err")"; fails=$((fails + 1)); }

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]

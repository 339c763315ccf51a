#!/bin/bash
# odrsctl events on a log file, no daemon: the readable format, the filters,
# -n, --json, malformed and partial lines; then -f across partial writes,
# rename rotation (with the writer still appending to the old file for a
# while) and copytruncate (also when the writer has written the file back to
# or past the old offset before the follower looks), checking every line
# comes out exactly once, in order. Needs no root and no VM. ODRSCTL overrides the binary.
# Exit 0 pass, 1 fail, 77 skip.
cd "$(dirname "$0")/../.." || exit 1
ODRSCTL=${ODRSCTL:-$PWD/build/odrsctl}
[ -x "$ODRSCTL" ] || { echo "skip: no $ODRSCTL (make all)"; exit 77; }

DIR=$(mktemp -d) || exit 1
FOLLOW_PIDS=
cleanup() {
	for p in $FOLLOW_PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT

fails=0
check() { # NAME CONDITION...
	local name=$1; shift
	if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
same() { # FILE EXPECTED-TEXT
	if [ "$(cat "$1")" = "$2" ]; then return 0; fi
	echo "  got:"; sed 's/^/    /' "$1"; echo "  want:"; printf '%s\n' "$2" | sed 's/^/    /'
	return 1
}
ev() { # run odrsctl events ARGS on $LOG: stdout in out, stderr in err, exit code in rc
	"$ODRSCTL" events -l "$LOG" "$@" >"$DIR/out" 2>"$DIR/err"; echo $? >"$DIR/rc"
}
rc_is() { [ "$(cat "$DIR/rc")" = "$1" ]; }

# ---- reading a file ----
LOG=$DIR/events.jsonl
cat >"$LOG" <<'EOF'
{"ts":"2026-11-23T09:00:00.001Z","event":"arp_reply","node":"n1","vm":"web1","ip":"198.18.0.10","requester":"198.18.0.1"}
{"ts":"2026-11-23T09:00:00.002Z","event":"wake_start","node":"n1","vm":"web1","target_node":"n1","trigger":"arp"}
{"ts":"2026-11-23T09:00:00.003Z","event":"wake_done"
{"ts":"2026-11-23T09:00:00.123Z","event":"wake_done","node":"n1","vm":"web1","target_node":"n1","trigger":"syn","ms":312}

{"ts":"2026-11-23T09:00:01.000Z","event":"accept_acquired","node":"n1","term":4}
{"ts":"2026-11-23T09:00:02.000Z","event":"wake_failed","node":"n1","vm":"db1","error":"restore timed out"}
{"ts":"2026-11-23T09:00:03.000Z","event":"hibernate_done","node":"n1","vm":"db1","bytes":68000000,"ms":2103}
EOF
# A writer halfway through a line: not printed, not an error.
printf '{"ts":"2026-11-23T09:00:04.000Z","event":"hiber' >>"$LOG"

ev
check "all events exit 0" rc_is 0
check "readable lines" same "$DIR/out" \
"2026-11-23T09:00:00.001Z web1 arp_reply ip=198.18.0.10 requester=198.18.0.1 node=n1
2026-11-23T09:00:00.002Z web1 wake_start trigger=arp target_node=n1 node=n1
2026-11-23T09:00:00.123Z web1 wake_done ms=312 trigger=syn target_node=n1 node=n1
2026-11-23T09:00:01.000Z - accept_acquired term=4 node=n1
2026-11-23T09:00:02.000Z db1 wake_failed error=\"restore timed out\" node=n1
2026-11-23T09:00:03.000Z db1 hibernate_done bytes=68000000 ms=2103 node=n1"
check "malformed line reported with its line number, partial line not" \
	same "$DIR/err" "odrsctl: $LOG:3: not JSON"

ev --vm db1
check "--vm" same "$DIR/out" \
"2026-11-23T09:00:02.000Z db1 wake_failed error=\"restore timed out\" node=n1
2026-11-23T09:00:03.000Z db1 hibernate_done bytes=68000000 ms=2103 node=n1"
ev --event wake_done --json
check "--event --json prints the line as it is" same "$DIR/out" \
'{"ts":"2026-11-23T09:00:00.123Z","event":"wake_done","node":"n1","vm":"web1","target_node":"n1","trigger":"syn","ms":312}'
ev --event wake
check "--event matches exactly" same "$DIR/out" ""
ev -n 2 --vm web1
check "-n keeps the last N matching" same "$DIR/out" \
"2026-11-23T09:00:00.002Z web1 wake_start trigger=arp target_node=n1 node=n1
2026-11-23T09:00:00.123Z web1 wake_done ms=312 trigger=syn target_node=n1 node=n1"
ev -n 0
check "-n 0 prints nothing" same "$DIR/out" ""
ev -n -1
check "-n -1 is a usage error" rc_is 2
ev --vm
check "--vm without a value is a usage error" rc_is 2
LOG=$DIR/absent.jsonl ev
check "missing log exits 1" rc_is 1

# The log named by the configuration.
printf '[odrsd]\nevent_log = %s\n' "$DIR/events.jsonl" >"$DIR/odrs.conf"
"$ODRSCTL" -c "$DIR/odrs.conf" events -n 1 >"$DIR/out" 2>/dev/null
check "event_log from -c" grep -q 'hibernate_done' "$DIR/out"
# An invalid configuration: reported, and the default log read instead.
printf '[odrsd]\nevent_log = %s\nbogus = 1\n' "$DIR/events.jsonl" >"$DIR/bad.conf"
"$ODRSCTL" -c "$DIR/bad.conf" events -n 1 >"$DIR/out" 2>"$DIR/err"
check "invalid -c reported as FILE:LINE" grep -q "^$DIR/bad.conf:3: " "$DIR/err"
check "invalid -c: the default log, with a warning" grep -qx \
	"odrsctl: warning: $DIR/bad.conf cannot be used; using the default event log /var/log/odrs/events.jsonl" "$DIR/err"

# ---- following ----
line() { printf '{"ts":"2026-11-23T09:00:00.000Z","event":"wake_done","node":"n1","vm":"web1","ms":%d}\n' "$1"; }
count() { if [ -f "$1" ]; then awk "END { print NR }" "$1"; else echo 0; fi; }
wait_lines() { # FILE N: until FILE has N lines (5 s at most)
	for _ in $(seq 50); do [ "$(count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
	echo "  $1 has $(count "$1") lines, want $2"
	return 1
}

LOG=$DIR/follow.jsonl
F=$DIR/follow.out
for i in 1 2 3; do line "$i"; done >"$LOG"
"$ODRSCTL" events -f -n 2 --json -l "$LOG" >"$F" 2>"$DIR/follow.err" &
FOLLOW_PIDS="$FOLLOW_PIDS $!"
# A second follower, in the readable format, started before the log exists.
"$ODRSCTL" events -f -l "$DIR/late.jsonl" >"$DIR/late.out" 2>"$DIR/late.err" &
FOLLOW_PIDS="$FOLLOW_PIDS $!"

check "-f starts with the last N lines" wait_lines "$F" 2
for i in 4 5; do line "$i"; done >>"$LOG"
check "-f prints appended lines" wait_lines "$F" 4

# A partial write: nothing until its newline.
line 6 | head -c 30 >>"$LOG"
sleep 0.6 # a window in which nothing may appear: no condition to wait for
check "partial line held back" [ "$(count "$F")" = 4 ]
line 6 | tail -c +31 >>"$LOG"
check "completed line printed" wait_lines "$F" 5

# Line N is output line N-1 (-n 2 started at line 2).
# Rename rotation: the writer keeps appending to the renamed file until it
# notices, then writes the new one (here created empty first, like logrotate's create).
mv "$LOG" "$LOG.1"
: >"$LOG"
line 7 >>"$LOG.1"
check "rename rotation, the old file followed" wait_lines "$F" 6
line 8 >>"$LOG.1"
check "rename rotation, the old file still followed" wait_lines "$F" 7
for i in 9 10; do line "$i"; done >>"$LOG"
check "rename rotation" wait_lines "$F" 9

# Rename rotation where the writer itself creates the new file.
mv "$LOG" "$LOG.2"
line 11 >>"$LOG.2"
for i in 12 13 14; do line "$i"; done >>"$LOG"
check "rename rotation, new file made by the writer" wait_lines "$F" 13

# copytruncate: copy, truncate, and the writer goes on at the start.
cp "$LOG" "$LOG.3"
: >"$LOG"
sleep 0.5 # the writer's pause after the truncation, which the follower must notice
line 15 >>"$LOG"
check "copytruncate" wait_lines "$F" 14
for i in 16 17 18 19 20; do line "$i"; done >>"$LOG"
check "after copytruncate" wait_lines "$F" 19
sleep 0.5 # a window for a line printed twice to show: no condition to wait for

expected=$(for i in $(seq 2 20); do line "$i"; done)
check "every line once, in order" same "$F" "$expected"
check "following reported nothing" [ ! -s "$DIR/follow.err" ]

# copytruncate where the writer has written as much again, or more, before
# the follower looks: the size alone cannot tell. cp truncates and writes
# in one go; the lines all have the same length, as the old ones.
LOG=$DIR/regrow.jsonl
F=$DIR/regrow.out
for i in 101 102 103; do line "$i"; done >"$LOG"
"$ODRSCTL" events -f -n 3 --json -l "$LOG" >"$F" 2>"$DIR/regrow.err" &
FOLLOW_PIDS="$FOLLOW_PIDS $!"
check "-f on the log to be regrown" wait_lines "$F" 3
line 104 >>"$LOG"
check "-f before the regrown copytruncate" wait_lines "$F" 4
# Back to the offset exactly: four lines in place of 101..104.
for i in 105 106 107 108; do line "$i"; done >"$DIR/regrow.new"
cp "$DIR/regrow.new" "$LOG"
check "copytruncate, new data up to the old offset" wait_lines "$F" 8
# Past the offset.
for i in 109 110 111 112 113; do line "$i"; done >"$DIR/regrow.new"
cp "$DIR/regrow.new" "$LOG"
check "copytruncate, new data past the old offset" wait_lines "$F" 13
sleep 0.5
expected=$(for i in $(seq 101 113); do line "$i"; done)
check "regrown copytruncate: every line once, in order" same "$F" "$expected"
check "regrown copytruncate reported nothing" [ ! -s "$DIR/regrow.err" ]

line 42 >"$DIR/late.jsonl"
check "-f waits for a missing log" wait_lines "$DIR/late.out" 1
check "-f readable format" grep -qx '2026-11-23T09:00:00.000Z web1 wake_done ms=42 node=n1' "$DIR/late.out"

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]

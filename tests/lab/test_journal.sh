#!/bin/bash
# odrsd -f under systemd logs once: when stderr is the journal stream
# (JOURNAL_STREAM names its device:inode), messages go to syslog only, as
# syslog reaches the journal; otherwise -f copies them to stderr. Driven by
# a start that fails at once (no such interface): no VM, no libvirt
# (test:///default), every path in a temporary directory.
# Exit 0 pass, 1 fail, 77 skip.
cd "$(dirname "$0")/../.." || exit 1
ODRSD=${ODRSD:-$PWD/build/odrsd}
[ -x "$ODRSD" ] || { echo "skip: no $ODRSD (make all)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }

DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$DIR"' EXIT
fails=0
check() { # NAME CONDITION...
	local name=$1; shift
	if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
cat >"$DIR/odrs.conf" <<CONF
[odrsd]
interface = ${LAB_PREFIX:-ou}noif0
snapshot_dir = $DIR/snap
libvirt_uri = test:///default
control_socket = $DIR/odrsd.sock
event_log = $DIR/events.jsonl
state_dir = $DIR/state
CONF
start() { # STDERR-FILE [JOURNAL_STREAM]: a start that fails; its exit code in $DIR/rc
	: >"$1"
	if [ -n "${2:-}" ]; then
		JOURNAL_STREAM=$2 timeout 30 "$ODRSD" -f -c "$DIR/odrs.conf" 2>>"$1"
	else
		env -u JOURNAL_STREAM timeout 30 "$ODRSD" -f -c "$DIR/odrs.conf" 2>>"$1"
	fi
	echo $? >"$DIR/rc"
}

start "$DIR/plain"
check "the start fails (exit 1)" [ "$(cat "$DIR/rc")" = 1 ]
check "-f on a terminal or file: the reason on stderr" grep -q "interface .*noif0" "$DIR/plain"

: >"$DIR/journal"
start "$DIR/journal" "$(stat -c %d:%i "$DIR/journal")"
check "stderr is the journal: exit 1 still" [ "$(cat "$DIR/rc")" = 1 ]
check "stderr is the journal: nothing copied there" [ ! -s "$DIR/journal" ]

: >"$DIR/other"
start "$DIR/notjournal" "$(stat -c %d:%i "$DIR/other")"
check "JOURNAL_STREAM naming another file: stderr still has it" grep -q "interface .*noif0" "$DIR/notjournal"

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]

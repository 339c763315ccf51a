#!/bin/bash
# The operator surface (odrsctl and the signals) against a real odrsd on one
# node with real VMs:
#  1. status and list, as text and --json, agree and are right; counters move;
#  2. hibernate and wake: exit codes, states, output on a pipe and on a terminal;
#  3. pin and unpin are recorded and survive a restart; a restart changes no state;
#  4. reload by SIGHUP and by odrsctl: VMs added and removed, a policy change
#     applied, an invalid file refused with FILE:LINE in the log and the old
#     configuration kept, and a reload during a restore does not disturb it;
#  5. accept in single-node mode; exit 3 without a daemon;
#  6. the event log: filters, and -f across rename and copytruncate rotation
#     printing every line the daemon wrote exactly once, in order;
#  7. the control socket is 0660 root:odrs, members of odrs (by a supplementary
#     group) are served and other users get no answer; odrsd keeps only
#     CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_NICE and CAP_SYS_PTRACE (a doze's
#     page-out), and writes nothing world-writable.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u
command -v jq >/dev/null || { echo "needs jq (make deps)"; exit 77; }

# The control socket's group, as a package would make it, and a member of it
# by a supplementary group only (usermod -aG odrs): both removed at the end.
MEMBER=$LAB_PREFIX-member
GROUP_MADE=
FOLLOWER=
cleanup() {
	[ -n "$FOLLOWER" ] && kill "$FOLLOWER" 2>/dev/null && wait "$FOLLOWER" 2>/dev/null
	lab_down
	userdel "$MEMBER" 2>/dev/null
	[ -n "$GROUP_MADE" ] && groupdel odrs
}
trap cleanup EXIT
if ! getent group odrs >/dev/null; then
	groupadd -r odrs || fail "groupadd odrs"
	GROUP_MADE=1
fi
userdel "$MEMBER" 2>/dev/null
useradd -r -M -N -g nogroup -G odrs -d /nonexistent -s /usr/sbin/nologin "$MEMBER" || fail "useradd $MEMBER"

ODIR=$LAB_DIR/n1/odrs
SOCK=$ODIR/odrsd.sock
LOG=$ODIR/events.jsonl
OUT=$LAB_DIR/out
# odrsctl from the host: the socket is a path under LAB_DIR, reachable from any namespace.
ctl() { "$LAB_ODRSCTL" -s "$SOCK" "$@"; }
expect_rc() { # WANT CMD...: output in $OUT.out and $OUT.err
	local want=$1 rc
	shift
	"$@" >"$OUT.out" 2>"$OUT.err"
	rc=$?
	[ "$rc" = "$want" ] ||
		fail "$*: exit $rc, want $want; stdout: $(cat "$OUT.out"); stderr: $(cat "$OUT.err")"
}
status_val() { ctl status | sed -n "s/^$1: //p"; }
vm_json() { ctl list --json | jq -c --arg vm "$1" '.[] | select(.name == $vm)'; }
log_has() { grep -q "$1" "$LAB_DIR/n1/odrsd.log"; }
write_conf() { odrs_conf n1 "$@" >/dev/null; }

lab_up 1 1 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 || fail "web1 start"
lab_vm_start n1 web2 198.18.0.11 52:54:00:12:00:11 || fail "web2 start"
lab_vm_wait_ready n1 web1 && lab_vm_wait_ready n1 web2 || fail "guests not ready"

# web1 only; ARP alone does not wake it, so it stays asleep while we ask for it.
CONF=$(lab_node_dir n1)/odrs.conf
base=("[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10" "wake_on = syn")
write_conf "${base[@]}"
lab_odrsd_start n1 "$CONF" || fail "odrsd did not start"
odrs_wait_state n1 web1 running || fail "web1 not seen running"

# From here until the end, every line odrsd writes must reach this follower once.
# Not through ctl: $! must be odrsctl itself.
"$LAB_ODRSCTL" -s "$SOCK" events -f -n 100000 --json -l "$LOG" >"$LAB_DIR/follow.out" 2>"$LAB_DIR/follow.err" &
FOLLOWER=$!

step "7: the control socket is 0660, root:odrs; odrs members may use it, others not"
[ "$(stat -c %a "$SOCK")" = 660 ] || fail "socket mode $(stat -c %a "$SOCK"), want 660"
[ "$(stat -c %U:%G "$SOCK")" = root:odrs ] || fail "socket owned by $(stat -c %U:%G "$SOCK")"
expect_rc 0 setpriv --reuid="$MEMBER" --regid=nogroup --init-groups "$LAB_ODRSCTL" -s "$SOCK" status
grep -qx "node: n1" "$OUT.out" || fail "a member of odrs got: $(cat "$OUT.out")"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$LAB_ODRSCTL" -s "$SOCK" "$@"; }
expect_rc 3 as_nobody status
grep -q "Permission denied" "$OUT.err" || fail "nobody through a 0660 socket: $(cat "$OUT.err")"
# With the file mode out of the way, the daemon itself must turn the stranger away.
chmod 0666 "$SOCK"
expect_rc 3 as_nobody status
chmod 0660 "$SOCK"
[ ! -s "$OUT.out" ] || fail "nobody got an answer: $(cat "$OUT.out")"
# Closed at accept: odrsctl's request meets a closed socket, or its read meets the end.
grep -Eq "Broken pipe|Connection reset|connection closed before the answer" "$OUT.err" ||
	fail "nobody through a 0666 socket: $(cat "$OUT.err")"
expect_rc 0 ctl status
caps=$(awk '/^CapEff|^CapPrm|^CapBnd/ { print $1 $2 }' "/proc/$(lab_odrsd_pid n1)/status")
echo "$caps" | grep -qx "CapEff:0000000000883000" || fail "odrsd's effective capabilities: $caps"
echo "$caps" | grep -qx "CapPrm:0000000000883000" || fail "odrsd's permitted capabilities: $caps"
for task in /proc/"$(lab_odrsd_pid n1)"/task/*; do
	[ "$(awk '/^CapEff/ { print $2 }' "$task/status")" = 0000000000883000 ] ||
		fail "thread ${task##*/} has $(grep CapEff "$task/status")"
done
loose=$(find "$(lab_node_dir n1)/odrs" "$LAB_SHARED" -perm -o+w ! -type l 2>/dev/null)
[ -z "$loose" ] || fail "world-writable: $loose"

step "1: status, text and --json"
ctl status >"$OUT.st" || fail "status failed"
cat "$OUT.st"
for k in node accept vms sleeping uptime frames arp_replies syns_held restores saves; do
	grep -Eq "^$k: [^ ]+$" "$OUT.st" || fail "status has no '$k:' line"
done
grep -qx "node: n1" "$OUT.st" && grep -qx "accept: n1" "$OUT.st" && grep -qx "vms: 1" "$OUT.st" &&
	grep -qx "sleeping: 0" "$OUT.st" || fail "status values wrong"
ctl status --json >"$OUT.sj" || fail "status --json failed"
jq -e . "$OUT.sj" >/dev/null || fail "status --json is not JSON: $(cat "$OUT.sj")"
# Every text line has the same value in the JSON (counters nested); uptime, frames and the loop's
# turns (each request is some) may move.
while IFS=': ' read -r k v; do
	case $k in uptime | frames | loop_turns | loop_turn_max_us | loop_turns_over_1ms) continue ;; esac
	j=$(jq -r --arg k "$k" 'if has($k) then .[$k] else .counters[$k] end | tostring' "$OUT.sj")
	[ "$j" = "$v" ] || fail "status $k: text '$v', json '$j'"
done <"$OUT.st"
up=$(jq .uptime "$OUT.sj")
[ "$up" -ge 0 ] && [ "$up" -lt 600 ] || fail "uptime $up"

step "2: hibernate on a terminal shows progress"
saves=$(status_val saves)
script -qec "$LAB_ODRSCTL -s $SOCK hibernate web1" /dev/null >"$OUT.tty" || fail "hibernate (tty): $(cat "$OUT.tty")"
grep -q $'\rsaving web1: [0-9.]*/[0-9.]* MB' "$OUT.tty" || fail "no progress on the terminal: $(cat -A "$OUT.tty")"
grep -Eq 'web1: hibernated \([0-9]+ bytes, [0-9]+ ms\)' "$OUT.tty" || fail "hibernate (tty) said: $(cat -A "$OUT.tty")"
[ "$(odrs_state n1 web1)" = hibernated ] || fail "web1 not hibernated"
lab_virsh n1 domstate web1 | grep -q 'shut off' || fail "web1 still runs after hibernate"
[ "$(status_val saves)" = $((saves + 1)) ] || fail "saves did not move: $(status_val saves)"
[ "$(status_val sleeping)" = 1 ] || fail "sleeping: $(status_val sleeping)"
expect_rc 0 ctl hibernate web1
grep -Eqx 'web1: hibernated \([0-9]+ bytes, [0-9]+ ms\)' "$OUT.out" || fail "hibernate of a hibernated VM: $(cat "$OUT.out")"

step "1: list, text and --json, of a hibernated VM"
ctl list >"$OUT.ls" || fail "list failed"
cat "$OUT.ls"
[ "$(wc -l <"$OUT.ls")" = 1 ] || fail "list through a pipe: not one row, no header"
read -r name ip mac state node idle bytes lastwake <"$OUT.ls"
[ "$name $ip $mac $state $node" = "web1 198.18.0.10 52:54:00:12:00:10 hibernated n1" ] ||
	fail "row: $(cat "$OUT.ls")"
[ "$bytes" -gt 1000000 ] || fail "snapshot_bytes $bytes"
[ "$bytes" = "$(stat -c %s "$LAB_SHARED/web1.odrs-save")" ] || fail "snapshot_bytes $bytes, image $(stat -c %s "$LAB_SHARED/web1.odrs-save")"
[ "$lastwake" = - ] || fail "last_wake_ms of a VM never woken: '$lastwake', want -"
[ "$idle" = - ] || fail "idle_s of a VM not running: '$idle', want -"
ctl list --json >"$OUT.lj" || fail "list --json failed"
jq -e 'type == "array" and length == 1' "$OUT.lj" >/dev/null || fail "list --json: $(cat "$OUT.lj")"
row=$(jq -r '.[0] | [.name, .ip, .mac, .state, .node, .idle_s, .snapshot_bytes, .last_wake_ms]
	| map(if . == null then "-" else tostring end) | join(" ")' "$OUT.lj")
[ "$row" = "$(tr -s ' ' <"$OUT.ls")" ] || fail "list --json '$row' vs text '$(cat "$OUT.ls")'"
jq -e '.[0].pinned == false' "$OUT.lj" >/dev/null || fail "pinned: $(cat "$OUT.lj")"

step "1: an ARP request for the hibernated VM is answered and counted"
arp=$(status_val arp_replies)
lab_client_exec c1 arping -c 1 -w 3 -i eth0 198.18.0.10 >"$OUT.arp" 2>&1 || fail "no ARP reply: $(cat "$OUT.arp")"
grep -qi "52:54:00:12:00:10" "$OUT.arp" || fail "ARP reply not with web1's MAC: $(cat "$OUT.arp")"
[ "$(status_val arp_replies)" -gt "$arp" ] || fail "arp_replies did not move from $arp"
odrs_event n1 arp_reply web1 || fail "no arp_reply event"
sleep 1
[ "$(odrs_state n1 web1)" = hibernated ] || fail "ARP woke web1 (wake_on = syn)"

step "2: wake in a pipe: no progress, exit 0, running"
restores=$(status_val restores)
ctl wake web1 | cat >"$OUT.wk"
[ "${PIPESTATUS[0]}" = 0 ] || fail "wake web1 failed: $(cat "$OUT.wk")"
grep -Eqx 'web1: running \([0-9]+ ms\)' "$OUT.wk" || fail "wake said: $(cat -A "$OUT.wk")"
[ "$(wc -l <"$OUT.wk")" = 1 ] && ! grep -q $'\r' "$OUT.wk" || fail "progress in a pipe: $(cat -A "$OUT.wk")"
[ "$(odrs_state n1 web1)" = running ] || fail "web1 not running after wake"
[ "$(status_val restores)" = $((restores + 1)) ] || fail "restores did not move"
[ "$(lab_vm_http c1 web1)" = "hello from web1" ] || fail "web1 does not answer after the wake"
jq -e '.[0].last_wake_ms >= 0' <(ctl list --json) >/dev/null || fail "last_wake_ms not recorded"
read -r _ _ _ _ _ idle bytes _ < <(ctl list)
[ "$bytes" = - ] || fail "snapshot_bytes of a woken VM (no snapshot): '$bytes', want -"
[[ $idle =~ ^[0-9]+$ ]] || fail "idle_s of a running VM: '$idle'"
start=$(date +%s%N)
expect_rc 0 ctl wake web1
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 1000 ] || fail "wake of a running VM took $ms ms"
grep -Eqx 'web1: running \([0-9]+ ms\)' "$OUT.out" || fail "wake of a running VM said: $(cat "$OUT.out")"
[ "$(status_val restores)" = $((restores + 1)) ] || fail "waking a running VM restored it"

step "2: unknown VMs and usage"
for verb in hibernate wake pin unpin; do
	expect_rc 1 ctl "$verb" nosuch
	grep -q "odrsctl: .*nosuch" "$OUT.err" || fail "$verb nosuch: $(cat "$OUT.err")"
done
expect_rc 2 ctl wake
expect_rc 2 ctl frobnicate

step "6: events filters"
expect_rc 0 ctl events -l "$LOG" --vm web1 --event wake_done
[ "$(wc -l <"$OUT.out")" = 1 ] || fail "wake_done lines: $(cat "$OUT.out")"
grep -Eq '^[0-9-]+T[0-9:.]+Z web1 wake_done ms=[0-9]+ restore_ms=[0-9]+ trigger=manual target_node=n1 node=n1 from=hibernate$' "$OUT.out" ||
	fail "wake_done line: $(cat "$OUT.out")"
expect_rc 0 ctl events -l "$LOG" --vm web2
[ ! -s "$OUT.out" ] || fail "events for web2: $(cat "$OUT.out")"

step "3: pin survives a restart, and so do the VMs' states"
expect_rc 0 ctl pin web1
[ "$(vm_json web1 | jq .pinned)" = true ] || fail "pin not shown: $(vm_json web1)"
expect_rc 0 ctl hibernate web1
grep -Eqx 'web1: hibernated \([0-9]+ bytes, [0-9]+ ms\)' "$OUT.out" && [ "$(wc -l <"$OUT.out")" = 1 ] &&
	! grep -q $'\r' "$OUT.out" || fail "hibernate, not on a terminal, said: $(cat -A "$OUT.out")"
lab_odrsd_stop n1 || fail "odrsd stop: exit $?"
lab_odrsd_start n1 "$CONF" || fail "odrsd did not restart"
odrs_wait_state n1 web1 hibernated || fail "a restart changed web1's state"
[ "$(vm_json web1 | jq .pinned)" = true ] || fail "pin lost across a restart: $(vm_json web1)"
expect_rc 0 ctl unpin web1
[ "$(vm_json web1 | jq .pinned)" = false ] || fail "unpin not shown"
lab_odrsd_stop n1 || fail "odrsd stop: exit $?"

step "5: exit 3 without a daemon; events still work"
[ ! -e "$SOCK" ] || fail "odrsd left its socket $SOCK behind"
# A socket file nobody listens on, as a crashed daemon would leave.
socat UNIX-LISTEN:"$SOCK" /dev/null & stale=$!
lab_wait 5 test -S "$SOCK" || fail "cannot make a stale socket"
kill -KILL "$stale"; wait "$stale" 2>/dev/null
expect_rc 3 ctl status
grep -q "cannot connect" "$OUT.err" || fail "stale socket: $(cat "$OUT.err")"
expect_rc 3 ctl wake web1
rm -f "$SOCK"
expect_rc 3 ctl list
grep -q "No such file" "$OUT.err" || fail "no socket: $(cat "$OUT.err")"
expect_rc 0 ctl events -l "$LOG" --event hibernate_done
[ "$(wc -l <"$OUT.out")" -ge 2 ] || fail "events without a daemon: $(cat "$OUT.out")"
lab_odrsd_start n1 "$CONF" || fail "odrsd did not restart"
odrs_wait_state n1 web1 hibernated || fail "web1 not hibernated after a restart"
[ "$(vm_json web1 | jq .pinned)" = false ] || fail "unpin lost across a restart"

step "5: accept in single-node mode"
expect_rc 0 ctl accept
[ "$(cat "$OUT.out")" = $'accept: n1\nterm: 0' ] || fail "accept said: $(cat "$OUT.out")"
expect_rc 1 ctl accept move n2
grep -q "odrsctl: no cluster backend" "$OUT.err" || fail "accept move: $(cat "$OUT.err")"

step "4: SIGHUP adds a VM"
pid=$(lab_odrsd_pid n1)
write_conf "${base[@]}" "[vm web2]" "ip = 198.18.0.11"
kill -HUP "$pid"
listed() { [ -n "$(vm_json "$1" 2>/dev/null)" ]; }
lab_wait 10 listed web2 || fail "web2 not added by SIGHUP"
odrs_wait_state n1 web2 running || fail "web2 not running"
lab_odrsctl n1 list | grep -Eq '^web2 +198\.18\.0\.11 +52:54:00:12:00:11 +running ' || fail "web2 row: $(ctl list)"
[ "$(status_val vms)" = 2 ] || fail "vms: $(status_val vms)"

step "4: odrsctl reload removes a VM and applies a policy change"
write_conf "[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10" "wake_on = arp syn"
expect_rc 0 ctl reload
[ "$(cat "$OUT.out")" = "reloaded: 1 VM
removed: web2" ] || fail "reload said: $(cat "$OUT.out")"
ctl list | grep -q '^web2 ' && fail "web2 still listed after its removal"
[ "$(status_val vms)" = 1 ] || fail "vms: $(status_val vms)"
# wake_on now has arp: the ARP request that woke nothing before wakes web1.
lab_client_exec c1 arping -c 1 -w 3 -i eth0 198.18.0.10 >/dev/null 2>&1 || fail "no ARP reply after reload"
odrs_wait_state n1 web1 running 60 || fail "wake_on = arp not applied by reload"
grep '"event":"wake_start"' "$LOG" | tail -n 1 | grep -q '"trigger":"arp"' || fail "last wake not by ARP"

step "4: an invalid file is refused, the old configuration kept"
write_conf "[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10" "this line is not a key"
bad=$(wc -l <"$CONF")
expect_rc 1 ctl reload
grep -q "^$CONF:$bad: " "$OUT.err" || fail "reload of a bad file does not say $CONF:$bad: $(cat "$OUT.err")"
lab_wait 5 log_has "$CONF:$bad: " || fail "the log does not say $CONF:$bad: $(tail -n 5 "$LAB_DIR/n1/odrsd.log")"
grep "$CONF:$bad: " "$LAB_DIR/n1/odrsd.log" | tail -n 1
# The same refusal again, by signal: its log line proves the signal was handled.
seen=$(grep -c "$CONF:$bad: " "$LAB_DIR/n1/odrsd.log")
kill -HUP "$pid"
lab_wait 5 eval '[ "$(grep -c "$CONF:$bad: " "$LAB_DIR/n1/odrsd.log")" -gt "$seen" ]' ||
	fail "SIGHUP with a bad file: no refusal logged"
[ "$(lab_odrsd_pid n1)" = "$pid" ] || fail "odrsd died on a bad file"
expect_rc 0 ctl status
[ "$(status_val vms)" = 1 ] || fail "configuration changed by a bad file"
[ "$(vm_json web1 | jq -r .state)" = running ] || fail "web1 changed state on a bad reload"

step "4: a reload during a restore does not disturb it"
write_conf "[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10" "wake_on = arp syn"
expect_rc 0 ctl reload
expect_rc 0 ctl hibernate web1
ctl wake web1 >"$OUT.bgwake" 2>&1 &
waker=$!
lab_wait 10 _odrs_is n1 web1 waking || fail "web1 never seen waking ($(odrs_state n1 web1))"
write_conf "[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10" "wake_on = syn" "wake_ports = 80" \
	"[vm web2]" "ip = 198.18.0.11"
expect_rc 0 ctl reload
during=$(odrs_state n1 web1)
wait $waker || fail "the wake in progress failed: $(cat "$OUT.bgwake")"
grep -Eqx 'web1: running \([0-9]+ ms\)' "$OUT.bgwake" || fail "the wake said: $(cat "$OUT.bgwake")"
echo "web1 was $during right after the reload"
# The reload landed while the restore ran: its line precedes the restore's end in the log.
awk '/reload: .* applied/ { r = NR } /web1: running on/ { w = NR } END { exit !(r && w && r < w) }' \
	"$LAB_DIR/n1/odrsd.log" || fail "the reload did not land during the restore"
[ "$(lab_vm_http c1 web1)" = "hello from web1" ] || fail "web1 does not answer after a reload during its restore"
odrs_wait_state n1 web2 running || fail "web2 added during the restore not running"

step "6: -f across rename and copytruncate rotation"
expect_rc 0 ctl hibernate web1
mv "$LOG" "$LOG.1"
# No waiting for the follower: the rename must lose nothing even when it is behind.
expect_rc 0 ctl wake web1
expect_rc 0 ctl hibernate web2
[ -s "$LOG" ] || fail "odrsd did not start a new log after the rename"
# copytruncate loses what is written between the copy and the truncation, and
# the follower must have read the file up to the copy: both are between writes.
followed() { cat "$@" | cmp -s - "$LAB_DIR/follow.out"; }
lab_wait 10 followed "$LOG.1" "$LOG" || fail "the follower is behind"
cp "$LOG" "$LOG.2"
truncate -s 0 "$LOG"
expect_rc 0 ctl wake web2
expect_rc 0 ctl hibernate web1
expect_rc 0 ctl wake web1
cat "$LOG.1" "$LOG.2" "$LOG" >"$OUT.all"
lab_wait 10 followed "$OUT.all" || {
	diff "$OUT.all" "$LAB_DIR/follow.out" | head -n 20
	fail "the follower's output is not the daemon's lines, each once, in order"
}
n=$(wc -l <"$OUT.all")
[ "$n" -ge 20 ] || fail "only $n events written"
jq -e -s 'all(.[]; has("ts") and has("event") and .node == "n1")' "$OUT.all" >/dev/null ||
	fail "an event line lacks ts/event/node"
echo "follower: $n lines, the same as the daemon wrote across both rotations"
[ ! -s "$LAB_DIR/follow.err" ] || fail "follower complained: $(cat "$LAB_DIR/follow.err")"

echo "PASS"

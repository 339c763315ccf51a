#!/bin/bash
# Automatic hibernation with real guests (qemu-guest-agent probes):
#  - an untouched VM hibernates within idle_timeout plus one check interval
#    (plus the probe), and wakes on access;
#  - a VM a client talks to every few seconds stays up, and so does one that
#    only gets lone SYNs (to a closed port: handshakes that never finish);
#  - a VM whose load is above load_threshold stays up (idle_skip load);
#  - a VM running a protected process stays up (idle_skip process);
#  - a VM whose agent does not answer stays up (idle_skip probe_failed);
#  - a pinned VM stays up (idle_skip pinned);
#  - odrsctl show gives each one's reason (traffic, load, process,
#    probe_failed, pinned) with its detail;
#  - an access (a lone SYN) shortly before the idle deadline counts, even when
#    another VM's hibernation comes right after it (it used to swap the
#    activity capture and lose the frames of its unfinished block): ROUNDS
#    times, idle1 hibernates no sooner than idle_timeout after that SYN;
#  - dry_run, set by a reload, logs and does nothing (idle_skip dry_run).
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IDLE=5 CHECK=1 PROBE=3 ROUNDS=6
EVENTS= # the event log, once odrsd runs
vm_sections() { # extra lines for idle1 come as arguments
	printf '%s\n' "check_interval = ${CHECK}s" "probe_timeout = ${PROBE}s" \
		"[policy]" "idle_timeout = ${IDLE}s" "load_threshold = 0.5" \
		"[vm idle1]" "ip = 198.18.0.21" "$@" \
		"[vm busy1]" "ip = 198.18.0.22" \
		"[vm load1]" "ip = 198.18.0.23" "load_threshold = 0.2" \
		"[vm guard1]" "ip = 198.18.0.24" "protect = cron httpd" \
		"[vm mute1]" "ip = 198.18.0.25" \
		"[vm syn1]" "ip = 198.18.0.26"
}
running() { for vm in "$@"; do [ "$(odrs_state n1 "$vm")" = running ] || fail "$vm is $(odrs_state n1 "$vm"), want running"; done; }
never_hibernated() { for vm in "$@"; do [ "$(odrs_events n1 hibernate_start "$vm")" = 0 ] || fail "$vm was hibernated"; done; }
# hibernated_after VM T: the epoch seconds of VM's first hibernate_start after epoch T
hibernated_after() {
	local ts t
	for ts in $(jq -r --arg vm "$1" 'select(.event == "hibernate_start" and .vm == $vm) | .ts' "$EVENTS"); do
		t=$(date -d "$ts" +%s.%3N)
		awk -v t="$t" -v a="$2" 'BEGIN { exit !(t > a) }' && { echo "$t"; return 0; }
	done
	return 1
}
has_skip() { # VM REASON: an idle_skip since the mark
	odrs_evlog n1 | grep '"event":"idle_skip"' | grep "\"vm\":\"$1\"" | grep -q "\"reason\":\"$2\""
}
skip_within() { # SECONDS VM REASON: the idle check passes over VM for REASON within SECONDS
	lab_wait "$1" has_skip "$2" "$3" || fail "no idle_skip $3 for $2 within $1 s"
}

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
i=21
for vm in idle1 busy1 load1 guard1 mute1 syn1; do
	lab_vm_start n1 $vm 198.18.0.$i 52:54:00:12:00:$i > /dev/null || fail "$vm start"
	i=$((i + 1))
done
for vm in idle1 busy1 load1 guard1 mute1 syn1; do lab_vm_wait_ready n1 $vm 90 || fail "$vm not ready"; done

step "load1 gets load, mute1 loses its agent"
odrs_guest_sh n1 load1 'for i in 1 2 3; do (while :; do :; done) & done' > /dev/null
odrs_guest_sh n1 mute1 'kill -STOP $(pidof qemu-ga)' > /dev/null 2>&1 # its status never comes back
load_above() { awk -v l="$(odrs_guest_sh n1 load1 'cat /proc/loadavg')" 'BEGIN { exit !(l + 0 > 0.3) }'; }
lab_wait 60 load_above || fail "load1's load did not rise"

conf=$(odrs_conf n1 "$(vm_sections)")
lab_client_exec c1 sh -c 'for i in $(seq 12); do
	curl -s -o /dev/null --max-time 2 http://198.18.0.22/
	curl -s -o /dev/null --max-time 1 http://198.18.0.26:81/
	sleep 2
done' &
talker=$!
t0=$SECONDS
lab_odrsd_start n1 "$conf" || fail "odrsd"
EVENTS=$(lab_node_dir n1)/odrs/events.jsonl

step "idle1 hibernates within idle_timeout + check_interval (+ probe)"
lab_wait 30 odrs_event n1 hibernate_start idle1 || fail "idle1 never hibernated"
took=$((SECONDS - t0))
echo "idle1: hibernate_start after ${took}s (idle_timeout ${IDLE}s, check ${CHECK}s)"
[ "$took" -le $((IDLE + CHECK + 3)) ] || fail "took ${took}s"
odrs_evlog n1 | grep '"event":"hibernate_start"' | grep -q '"reason":"idle"' || fail "reason not idle"
odrs_wait_state n1 idle1 hibernated 30 || fail "idle1 not hibernated"

step "the others stay up while the client talks (24 s, several idle timeouts)"
# odrsctl show says why each stays up: the checks' last reason, with its detail.
shows() { lab_odrsctl n1 show "$1" | grep -Eq "^stayed_up: $2"; }
lab_wait $((2 * CHECK + 2)) shows busy1 "traffic: last TCP [0-9]+ s ago, at " ||
	fail "show busy1 while its client talks: $(lab_odrsctl n1 show busy1 | grep stayed_up)"
LATE=$((IDLE + 3 * CHECK + PROBE))
skip_within $LATE load1 load
skip_within $LATE guard1 process
skip_within $LATE mute1 probe_failed
shows load1 "load: [0-9.]+, at " || fail "show load1: $(lab_odrsctl n1 show load1 | grep stayed_up)"
shows guard1 "process: (cron|httpd), at " || fail "show guard1: $(lab_odrsctl n1 show guard1 | grep stayed_up)"
shows mute1 "probe_failed: .+, at " || fail "show mute1: $(lab_odrsctl n1 show mute1 | grep stayed_up)"
wait $talker
running busy1 load1 guard1 mute1 syn1
never_hibernated busy1 load1 guard1 mute1 syn1

step "a pinned VM stays up once its client is gone"
lab_odrsctl n1 pin busy1 > /dev/null || fail "pin"
skip_within $LATE busy1 pinned
shows busy1 "pinned, at " || fail "show busy1 pinned: $(lab_odrsctl n1 show busy1 | grep stayed_up)"
running busy1
never_hibernated busy1

# syn_rounds AT SPREAD: ROUNDS times, idle1 woken without TCP (a connection
# of its own might send a late frame), then a lone SYN to it (port 81 takes
# none) AT seconds later plus the round's share of SPREAD, so that the rounds
# cover SPREAD evenly (the activity capture's block period), and busy1's
# hibernation 50 ms after the SYN, while it is still in the activity
# capture's unfinished block. Fails when idle1 hibernates sooner than
# idle_timeout after a SYN.
syn_rounds() {
	local at=$1 spread=$2 round start gap early=0 pid go=$LAB_DIR/go
	mkfifo "$go" || fail "mkfifo"
	for round in $(seq "$ROUNDS"); do
		[ "$(odrs_state n1 busy1)" = running ] || lab_odrsctl n1 wake busy1 > /dev/null || fail "wake busy1"
		odrs_wait_state n1 idle1 hibernated 30 || fail "round $round"
		lab_odrsctl n1 wake idle1 > /dev/null || fail "round $round: wake idle1"
		lab_node_exec n1 sh -c 'read -r _ < "$1" && exec "$2" -s "$3" hibernate busy1' _ "$go" "$LAB_ODRSCTL" \
			"$(lab_node_dir n1)/odrs/odrsd.sock" > /dev/null &
		pid=$!
		# The SYN is what is tested; the sleep only places it.
		sleep "$(awk -v r="$round" -v n="$ROUNDS" -v a="$at" -v s="$spread" 'BEGIN { printf "%.3f", a + (r - 1) * s / n }')"
		start=$(lab_client_exec c1 bash -c 'echo "$EPOCHREALTIME"
			curl -s -o /dev/null --max-time 0.5 http://198.18.0.21:81/ & sleep 0.05
			echo > "$1"; wait; exit 0' _ "$go") || fail "round $round: no SYN to idle1"
		lab_wait $((IDLE + 30)) hibernated_after idle1 "$start" > /dev/null || fail "round $round: idle1 never hibernated"
		wait "$pid" || fail "round $round: hibernate busy1"
		gap=$(awk -v h="$(hibernated_after idle1 "$start")" -v s="$start" 'BEGIN { printf "%.2f", h - s }')
		echo "round $round: idle1's hibernate_start ${gap}s after the SYN"
		awk -v g="$gap" -v t="$IDLE" 'BEGIN { exit !(g < t) }' && early=$((early + 1))
	done
	[ "$early" = 0 ] || fail "$early of $ROUNDS hibernations of idle1 came sooner than idle_timeout after its SYN"
}

step "a SYN $((IDLE - 2))s after idle1's wake, right before busy1 hibernates, keeps idle1 up for idle_timeout ($ROUNDS rounds)"
syn_rounds $((IDLE - 2)) 0.5
lab_odrsctl n1 wake busy1 > /dev/null || fail "wake busy1"

step "idle1 wakes on access"
body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.21/) || fail "curl idle1"
[ "$body" = "hello from idle1" ] || fail "body: $body"

step "dry_run (by reload) logs and leaves it running"
vm_sections "dry_run = yes" > "$conf.new"
{ lab_odrsd_conf n1; cat "$conf.new"; } > "$conf"
lab_odrsctl n1 reload > /dev/null || fail "reload"
odrs_mark n1
skip_within $LATE idle1 dry_run
running idle1
[ "$(odrs_events n1 hibernate_start idle1)" = 0 ] || fail "dry_run hibernated idle1"

echo "PASS"

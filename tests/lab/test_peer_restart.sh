#!/bin/bash
# A peer's restart never touches another node's snapshot files (issue 14).
# Two nodes in cluster mode share snapshot_dir and etcd; web1 moves between
# them. Each round: the node that does not run web1 is stopped, web1 is
# hibernated, and that node starts again DELAY seconds after the save's
# part file appears, so its start-up inspect sees the save in flight; then
# the node that ran web1 is stopped, a client wakes web1 (on the other
# node) and the stopped node starts again DELAY seconds after the claim
# appears, during the restore. After each: web1 is hibernated with exactly
# one image, or runs on exactly one node with no restorable image, no part
# or claim file is left, and the client reaches it.
# Then, without a configured MAC, n2 (where web1 is not defined) restarts
# while web1 sleeps, inspecting it before it reads the registry: it follows
# the registry, learns the MAC there, and answers ARP and retrains the
# switch once it holds the accept role.
# Last, a raw disk named like a legacy image (web1.img) in snapshot_dir:
# odrsd refuses to start, says why, and leaves the file alone.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.10 MAC=52:54:00:12:00:10
# Random ballast the guest holds: an image of some 250 MiB, a save of seconds.
BALLAST_MIB=160
DELAYS=${DELAYS:-0 0.5 1.5}

trap lab_down EXIT
lab_up 2 1 || fail "lab_up"
lab_etcd_up || fail "etcd"
lab_vm_start n1 web1 $IP $MAC "" $BALLAST_MIB && lab_vm_wait_ready n1 web1 120 || fail "web1"

# The MAC is configured for the rounds (the last step runs without it).
conf() { # NODE
	odrs_conf "$1" "[policy]" "idle_timeout = 0" \
		"[cluster]" "backend = etcd" "etcd = http://198.18.2.1:2379" \
		"lease_ttl = 3s" "cpus = 1000" "memory = 2G" "[vm web1]" "ip = $IP" "mac = $MAC"
}

conf_nomac() { # NODE: the same, web1's MAC from libvirt or the registry
	odrs_conf "$1" "[policy]" "idle_timeout = 0" \
		"[cluster]" "backend = etcd" "etcd = http://198.18.2.1:2379" \
		"lease_ttl = 3s" "cpus = 1000" "memory = 2G" "retrain_delay = 1s" "[vm web1]" "ip = $IP"
}

for n in n1 n2; do
	lab_odrsd_start $n "$(conf $n)" || fail "odrsd on $n did not start"
done
lab_wait 30 _odrs_is n2 web1 running || fail "n2 does not know web1 runs: $(odrs_state n2 web1)"

runs_on() { # the nodes web1 runs on
	local n
	for n in n1 n2; do
		lab_virsh $n domstate web1 2> /dev/null | grep -q running && echo $n
	done
}
other() { [ "$1" = n1 ] && echo n2 || echo n1; }
# A restorable image by any version's name: NAME.odrs-save, or main's NAME.img.
images() { ls "$LAB_SHARED" | grep -cE '^web1\.(odrs-save|img)$'; }
in_flight() { ls "$LAB_SHARED" | grep -E '\.part|\.restoring' | tr '\n' ' '; }
check() { # running|hibernated WHEN
	local on n
	on=$(runs_on)
	n=$(echo $on | wc -w)
	case $1 in
	running) [ "$n" = 1 ] && [ "$(images)" = 0 ] ;;
	hibernated) [ "$n" = 0 ] && [ "$(images)" = 1 ] ;;
	esac || fail "$2: web1 runs on [$on], files: $(ls "$LAB_SHARED" | tr '\n' ' '), want $1"
	[ -z "$(in_flight)" ] || fail "$2: left in flight: $(in_flight)"
}
reach() { # WHEN
	local body
	body=$(lab_client_exec c1 curl -sS --max-time 60 http://$IP/) || fail "$1: curl failed"
	[ "$body" = "hello from web1" ] || fail "$1: body: $body"
}
part_appears() { ls "$LAB_SHARED" | grep -q '^web1\..*part'; }
claim_appears() { ls "$LAB_SHARED" | grep -q '^web1\..*restoring'; }

for delay in $DELAYS; do
	here=$(runs_on)
	[ "$(echo $here | wc -w)" = 1 ] || fail "web1 runs on [$here] before the round"
	peer=$(other "$here")

	step "delay $delay: $peer restarts during the save on $here"
	lab_odrsd_stop $peer || true
	lab_odrsctl "$here" hibernate web1 > "$LAB_DIR/hibernate.out" 2>&1 &
	saver=$!
	lab_wait 30 part_appears || fail "the save never started: $(cat "$LAB_DIR/hibernate.out")"
	sleep "$delay"
	lab_odrsd_start $peer "$(conf $peer)" || fail "odrsd on $peer did not start again"
	wait $saver || echo "hibernate on $here failed: $(cat "$LAB_DIR/hibernate.out")"
	lab_wait 30 _odrs_is "$here" web1 hibernated || true
	check hibernated "after $peer restarted during the save"
	lab_wait 30 _odrs_is $peer web1 hibernated || fail "$peer: web1 is $(odrs_state $peer web1), want hibernated"

	step "delay $delay: $here restarts during the restore on $peer"
	lab_odrsd_stop "$here" || true
	lab_client_exec c1 curl -sS --max-time 90 http://$IP/ > "$LAB_DIR/curl.out" 2>&1 &
	client=$!
	lab_wait 60 claim_appears || fail "the restore never started: $(cat "$LAB_DIR/curl.out")"
	sleep "$delay"
	lab_odrsd_start "$here" "$(conf "$here")" || fail "odrsd on $here did not start again"
	wait $client || fail "the client's wake failed: $(cat "$LAB_DIR/curl.out")"
	[ "$(cat "$LAB_DIR/curl.out")" = "hello from web1" ] || fail "body: $(cat "$LAB_DIR/curl.out")"
	lab_wait 30 eval '[ -z "$(in_flight)" ]' || true
	check running "after $here restarted during the restore"
	[ "$(runs_on)" = "$peer" ] || fail "web1 runs on $(runs_on), want $peer"
	reach "after the restore"
	lab_wait 30 _odrs_is "$here" web1 running || fail "$here: web1 is $(odrs_state "$here" web1), want running"
done

# Without a configured MAC, a node where web1 is not defined learns it from
# the registry, even when its start-up inspect ends before the registry's
# first read (etcd unreachable from n2 until then): it follows the registry
# (hibernated, not "no such domain"), answers ARP and retrains the switch
# once it takes the accept role.
step "no MAC configured: n2, without web1's domain, restarts while web1 sleeps, then takes the role"
holder() { lab_odrsctl "$1" accept | awk '$1 == "accept:" { print $2 }'; }
if [ "$(holder n1)" != n1 ]; then
	out=$(lab_odrsctl n1 accept move n1) || fail "accept move n1: $out"
	lab_wait 10 eval '[ "$(holder n1)" = n1 ]' || fail "n1 did not take the accept role: $(holder n1)"
fi
where=$(runs_on)
out=$(lab_odrsctl "$where" hibernate web1) || fail "hibernate web1 on $where: $out"
lab_wait 30 _odrs_is n1 web1 hibernated || fail "n1: web1 is $(odrs_state n1 web1), want hibernated"
lab_wait 10 eval '[ "$(lab_fdb_port $MAC)" = sw-n1 ]' || fail "web1's MAC is on $(lab_fdb_port $MAC), want sw-n1"
! lab_virsh n2 dominfo web1 > /dev/null 2>&1 || fail "web1 is still defined on n2"
lab_odrsd_stop n2 || true
lab_node_exec n2 iptables -I OUTPUT -d 198.18.2.1 -p tcp --dport 2379 -j DROP || fail "cannot cut n2 from etcd"
: > "$(lab_node_dir n2)/odrsd.log"
lab_odrsd_start n2 "$(conf_nomac n2)" || fail "odrsd on n2 did not start again"
lab_wait 30 grep -q "web1: not defined on this node" "$(lab_node_dir n2)/odrsd.log" ||
	fail "n2's inspect of web1 did not wait for the registry: web1 is $(odrs_state n2 web1)"
lab_node_exec n2 iptables -D OUTPUT -d 198.18.2.1 -p tcp --dport 2379 -j DROP
lab_wait 30 _odrs_is n2 web1 hibernated || fail "n2: web1 is $(odrs_state n2 web1), want hibernated"
lab_wait 10 eval 'lab_odrsctl n2 list | grep -qi "^web1 .*$MAC"' || fail "n2 has no MAC for web1: $(lab_odrsctl n2 list)"
# Nothing n2 published from its inspect took the MAC out of the registry (a node restarting later needs it).
reg=$(ip netns exec "$LAB_PREFIX-etcd" etcdctl --endpoints http://127.0.0.1:2379 get /odrs/vm/web1 --print-value-only)
echo "$reg" | jq -e --arg mac $MAC '.mac == $mac' > /dev/null || fail "the registry lost web1's MAC: $reg"
out=$(lab_odrsctl n1 accept move n2) || fail "accept move n2: $out"
lab_wait 10 eval '[ "$(holder n2)" = n2 ]' || fail "n2 did not take the accept role: $(holder n2)"
lab_wait 10 eval '[ "$(lab_fdb_port $MAC)" = sw-n2 ]' || fail "web1's MAC is on $(lab_fdb_port $MAC), want sw-n2 (no retraining)"
lab_client_exec c1 ip neigh flush all
lab_client_exec c1 arping -c 1 -w 5 -i eth0 $IP > "$LAB_DIR/arping.out" 2>&1
grep -qi "$MAC" "$LAB_DIR/arping.out" || fail "no ARP answer for web1 from n2: $(cat "$LAB_DIR/arping.out")"
odrs_event n2 arp_reply web1 || fail "n2 logged no arp_reply for web1"
reach "n2 holding the role, web1 woken by the client"

step "a raw disk web1.img in snapshot_dir: odrsd refuses to start and leaves it"
where=$(runs_on)
lab_odrsd_stop n1 || true
head -c 65536 /dev/urandom > "$LAB_SHARED/web1.img"
sum=$(md5sum < "$LAB_SHARED/web1.img")
lab_odrsd_start n1 "$(conf n1)" 2> /dev/null && fail "odrsd started with a raw disk in snapshot_dir"
grep -q "snapshot_dir $LAB_SHARED holds web1.img" "$(lab_node_dir n1)/odrsd.log" ||
	fail "no clear refusal in the log: $(tail -n 3 "$(lab_node_dir n1)/odrsd.log")"
[ "$(md5sum < "$LAB_SHARED/web1.img")" = "$sum" ] || fail "the raw disk was changed or removed"
[ "$(runs_on)" = "$where" ] || fail "web1 runs on [$(runs_on)], want $where"
rm -f "$LAB_SHARED/web1.img"

echo "PASS"

#!/bin/bash
# Two nodes in cluster mode over a real etcd, each with N (default 20,000)
# [vm] sections of VMs that are hibernated from the start (an image sI.odrs-save
# each in the shared snapshot_dir, no domain): issue 17's role move at scale.
#  1. start: both nodes see every VM asleep, and neither was fenced on the way
#     (each finished inspect was its own registry write, all of them at once:
#     the lease's keepalive waited behind them past lease_ttl, the node was
#     fenced, lost the role and its lease);
#     The node's score went out at most about every 0.1 s (RESCORE_DELAY) and
#     each beat: its one-shot timer, restarted without being set, fired at
#     once, and the score (a request to etcd) went out on every loop turn;
#  2. the registry holds every VM's key;
#  3. a role move mid-sweep and back: the node that loses the role stops
#     announcing at once (its retrain_frames stand still), and the one that
#     wins it again sweeps every sleeping MAC once, from the first (its
#     retrain event counts N frames);
#  4. a node restarted reads the whole registry (N keys from each node) in
#     its first read and has every VM asleep again, unfenced.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u
command -v jq > /dev/null || { echo "needs jq (make deps)"; exit 77; }

N=${N:-20000}
START_MAX=${START_MAX:-90}
RATE=2000 # a sweep of N takes N/RATE s: 10 s, long enough to move the role back in the middle

conf() { # NODE
	odrs_conf "$1" "[policy]" "idle_timeout = 0" "probe = none" \
		"[cluster]" "backend = etcd" "etcd = http://198.18.2.1:2379" \
		"accept_term = 1h" "lease_ttl = 3s" "retrain_rate = $RATE" "retrain_delay = 0" \
		"retrain_refresh = 0" > /dev/null
	odrs_vm_sections "$N" 100 >> "$(lab_node_dir "$1")/odrs.conf"
}
sleeping() { lab_odrsctl "$1" status | awk '$1 == "sleeping:" { print $2 }'; }
frames() { lab_odrsctl "$1" status | awk '$1 == "retrain_frames:" { print $2 }'; }
holder_is() { lab_odrsctl n1 accept | grep -q "^accept: $1\$" && lab_odrsctl n2 accept | grep -q "^accept: $1\$"; }
retrains() { grep -c '"event":"retrain"' "$(lab_node_dir "$1")/odrs/events.jsonl"; }
etcdctl() { ip netns exec "$LAB_PREFIX-etcd" etcdctl --endpoints http://127.0.0.1:2379 "$@"; }

trap lab_down EXIT
step "lab: 2 nodes, etcd, $N hibernated VMs each"
lab_up 2 0 > /dev/null || fail "lab_up"
lab_etcd_up || fail "etcd"
mkdir -p "$LAB_SHARED"
odrs_snapshot_files "$N" || fail "snapshot files"
t0=$SECONDS
for n in n1 n2; do
	conf $n
	lab_odrsd_start $n "$(lab_node_dir $n)/odrs.conf" > /dev/null || fail "odrsd on $n"
done

step "1. every VM asleep on both nodes within $START_MAX s, neither fenced"
lab_wait "$START_MAX" eval '[ "$(sleeping n1)" = "$N" ] && [ "$(sleeping n2)" = "$N" ]' ||
	fail "$(sleeping n1) and $(sleeping n2) of $N VMs asleep after $START_MAX s"
for n in n1 n2; do
	! grep -q '"event":"fenced"' "$(lab_node_dir $n)/odrs/events.jsonl" ||
		fail "$n was fenced during the start: $(grep -h 'fenced\|etcd' "$(lab_node_dir $n)/odrsd.log" | head -n 5)"
done
lab_wait 10 eval 'holder_is n1 || holder_is n2' || fail "no node holds the accept role for both"
elapsed=$((SECONDS - t0 + 1))
for n in n1 n2; do
	writes=$(etcdctl get /odrs/node/$n -w json | jq '.kvs[0].version')
	echo "$n: its node key written $writes times in $elapsed s"
	[ "$writes" -le $((20 * elapsed)) ] || fail "$n wrote its score $writes times in $elapsed s"
done

step "2. the registry has all $N VMs"
registry() { etcdctl get /odrs/vm/ --prefix --keys-only | grep -c '^/odrs/vm/'; }
lab_wait 30 eval '[ "$(registry)" = "$N" ]' || fail "$(registry) registry keys, want $N"

step "3. role moved away mid-sweep and back: the loser stops, the winner sweeps all $N once"
from=n1 to=n2
holder_is n2 && from=n2 to=n1
f0=$(frames $to)
lab_odrsctl $from accept move $to > /dev/null || fail "accept move $to"
lab_wait 5 holder_is $to || fail "role not on $to"
lab_wait 5 eval '[ "$(frames $to)" -gt "$f0" ]' || fail "$to does not announce"
before=$(retrains $from)
lab_odrsctl $from accept move $from > /dev/null || fail "accept move back to $from"
lab_wait 5 holder_is $from || fail "role not back on $from"
f1=$(frames $to)
lab_wait $((N / RATE + 30)) eval '[ "$(retrains $from)" -gt "$before" ]' || fail "no retrain event on $from"
f2=$(frames $to)
[ "$f1" = "$f2" ] || fail "$to went on announcing after losing the role: $f1, then $f2 frames"
[ "$((f1 - f0))" -lt "$N" ] || fail "$to finished its sweep ($((f1 - f0)) frames) before the role moved back: no mid-sweep move"
count=$(grep '"event":"retrain"' "$(lab_node_dir $from)/odrs/events.jsonl" | tail -n 1 | jq .count)
[ "$count" = "$N" ] || fail "$from's sweep after winning the role back sent $count frames, want $N"

step "4. n2 restarted: its first read has the whole registry"
lab_odrsd_stop n2 || fail "odrsd on n2 exited with status $?"
lab_odrsd_start n2 "$(lab_node_dir n2)/odrs.conf" > /dev/null || fail "odrsd on n2 again"
lab_wait "$START_MAX" eval '[ "$(sleeping n2)" = "$N" ]' || fail "$(sleeping n2) of $N VMs asleep on n2 after its restart"
grep "cluster: following etcd" "$(lab_node_dir n2)/odrsd.log" | tail -n 1
! grep -q '"event":"fenced"' "$(lab_node_dir n2)/odrs/events.jsonl" || fail "n2 fenced after its restart"
echo "PASS"

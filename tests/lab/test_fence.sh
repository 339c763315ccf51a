#!/bin/bash
# Self-fencing and a node lost mid-wake, with three nodes, an etcd host and a
# client:
#  1. the accept-role holder is cut from etcd (iptables in its namespace, the
#     etcd port only: its data path works): within lease_ttl + 3 s another
#     node holds the role and the switch has the sleeping MAC on its port;
#     the cut-off node sends no frame with that MAC (no ARP reply, no
#     retraining) after lease_ttl, though the client keeps asking; it says
#     fenced in status and in an event; the client reaches the sleeping VM
#     through the new holder;
#  2. the link back, the cut-off node rejoins: not fenced, same holder as
#     the others, the others see its node again; its lease revoked in etcd
#     (the connection works, the keepalive says expired): fenced at once,
#     then rejoined with a new lease;
#  3. the node a wake was claimed for dies (SIGKILL of its odrsd) before it
#     restores: once its lease runs out, the other nodes log node_lost with
#     the VM, list the VM's node as lost ("n3(lost)") and name the node in
#     status.
# Load: the nodes share one kernel; n3 divides the load average by 1000 CPUs,
# n1 and n2 by 1, so n3 is the least loaded: the target of every wake while
# it lives.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.10 MAC=52:54:00:12:00:10 LEASE_TTL=3 ETCD=198.18.2.1

trap lab_down EXIT
lab_up 3 1 || fail "lab_up"
lab_etcd_up || fail "etcd"
lab_vm_start n1 web1 $IP $MAC || fail "web1 start"
lab_vm_wait_ready n1 web1 || fail "web1 not ready"

conf() { # NODE
	local cpus=1
	[ "$1" = n3 ] && cpus=1000
	odrs_conf "$1" "[policy]" "idle_timeout = 0" \
		"[cluster]" "backend = etcd" "etcd = http://$ETCD:2379" \
		"accept_term = 10m" "lease_ttl = ${LEASE_TTL}s" "cpus = $cpus" "memory = 1G" \
		"retrain_delay = 1s" "[vm web1]" "ip = $IP"
}
for n in n1 n2 n3; do
	lab_odrsd_start $n "$(conf $n)" || fail "odrsd on $n did not start"
done

holder() { lab_odrsctl "$1" accept | awk '$1 == "accept:" { print $2 }'; }
status_of() { lab_odrsctl "$1" status | awk -v k="$2:" '$1 == k { $1 = ""; print substr($0, 2) }'; }
agree() { # NODE...: they all name the same holder, and it is one of them or given
	local h
	h=$(holder "$1")
	[ -n "$h" ] && [ "$h" != - ] || return 1
	for n in "$@"; do [ "$(holder $n)" = "$h" ] || return 1; done
}
fdb_on() { [ "$(lab_fdb_port $MAC)" = "sw-$1" ]; }
node_of() { lab_odrsctl "$1" list | awk -v vm="$2" '$1 == vm { print $5 }'; }
cut() { # NODE add|del: drop the node's etcd traffic both ways
	local op=-A
	[ "$2" = del ] && op=-D
	lab_node_exec "$1" iptables $op OUTPUT -p tcp -d $ETCD --dport 2379 -j DROP &&
		lab_node_exec "$1" iptables $op INPUT -p tcp -s $ETCD --sport 2379 -j DROP
}
hibernate() { # NODE
	local out
	out=$(lab_odrsctl "$1" hibernate web1) || fail "hibernate web1 on $1: $out"
	[ -s "$LAB_SHARED/web1.odrs-save" ] || fail "no image of web1"
}

step "the role on n3; web1 sleeps"
lab_wait 20 agree n1 n2 n3 || fail "no agreed holder: $(holder n1) $(holder n2) $(holder n3)"
out=$(lab_odrsctl n1 accept move n3) || fail "accept move: $out"
lab_wait 5 eval 'agree n1 n2 n3 && [ "$(holder n1)" = n3 ]' || fail "holder is $(holder n1), want n3"
hibernate n1
for n in n1 n2 n3; do lab_wait 10 _odrs_is $n web1 hibernated || fail "$n does not know web1 sleeps"; done
lab_wait 10 fdb_on n3 || fail "web1's MAC is on $(lab_fdb_port $MAC), want sw-n3"

step "1: n3 cut from etcd: the role moves, n3 falls silent"
# What n3 sends into the switch: frames with web1's MAC as source are ARP answers or retraining.
cap=$LAB_DIR/cap-sw-n3
ip netns exec "$LAB_PREFIX-sw" tcpdump -i sw-n3 -Q in --immediate-mode -nn -tt -U -w "$cap.pcap" \
	"ether src $MAC" 2> "$cap.err" &
cap_pid=$!
lab_wait 10 grep -q listening "$cap.err" || fail "tcpdump did not start: $(cat "$cap.err")"
# The client keeps asking for web1 all along: a node that answers is seen.
lab_client_exec c1 arping -i eth0 -c 60 -w 30 -W 0.25 $IP > "$LAB_DIR/arping.out" 2>&1 &
arping_pid=$!
t_cut=$(date +%s.%N)
cut n3 add || fail "iptables on n3"
t0=$SECONDS
lab_wait $((LEASE_TTL + 3)) eval 'agree n1 n2 && [ "$(holder n1)" != n3 ]' ||
	fail "after $((SECONDS - t0)) s the holder is $(holder n1)/$(holder n2), want n1 or n2"
new=$(holder n1)
echo "role on $new after $((SECONDS - t0)) s"
lab_wait $((LEASE_TTL + 3 - (SECONDS - t0))) fdb_on "$new" ||
	fail "$((SECONDS - t0)) s after the cut web1's MAC is on $(lab_fdb_port $MAC), want sw-$new"
wait $arping_pid
kill -INT $cap_pid 2> /dev/null
wait $cap_pid 2> /dev/null
deadline=$(awk -v t="$t_cut" -v ttl=$LEASE_TTL 'BEGIN { printf "%.6f", t + ttl }')
tcpdump -nn -tt -r "$cap.pcap" 2> /dev/null > "$cap.txt"
before=$(awk -v t="$deadline" '$1 < t' "$cap.txt" | wc -l)
after=$(awk -v t="$deadline" '$1 >= t' "$cap.txt" | wc -l)
echo "n3 sent $before frames as web1 before lease_ttl after the cut, $after after"
[ "$after" = 0 ] || fail "fenced n3 sent $after frames as web1: $(awk -v t="$deadline" '$1 >= t' "$cap.txt" | head -3)"
grep -qi "$MAC" "$LAB_DIR/arping.out" || fail "nobody answered ARP for web1: $(tail -3 "$LAB_DIR/arping.out")"
[ "$(status_of n3 fenced)" = true ] || fail "n3 does not say it is fenced: $(lab_odrsctl n3 status)"
[ "$(status_of n3 accept)" = - ] || fail "fenced n3 names a holder: $(status_of n3 accept)"
[ "$(status_of n3 cluster_store)" = unreachable ] || fail "n3: cluster_store $(status_of n3 cluster_store)"
grep '"event":"fenced"' "$(lab_node_dir n3)/odrs/events.jsonl" | grep -q '"reason":"lease_overdue"' ||
	fail "no fenced event (lease_overdue) on n3"

step "1: the client reaches web1 through the new holder"
lab_client_exec c1 ip neigh flush all
body=$(lab_client_exec c1 curl -sS --max-time 30 http://$IP/) || fail "curl failed"
[ "$body" = "hello from web1" ] || fail "body: $body"
where=$(node_of "$new" web1)
[ "$where" != n3 ] && [ -n "$where" ] || fail "web1 woke on '$where'"

step "2: the link back: n3 rejoins"
joins() { grep -c "node n3 joined" "$(lab_node_dir n1)/odrsd.log"; }
joined=$(joins)
cut n3 del || fail "iptables on n3"
lab_wait 15 eval '[ "$(status_of n3 fenced)" = false ] && [ "$(status_of n3 cluster_store)" = ok ]' ||
	fail "n3 did not rejoin: $(lab_odrsctl n3 status)"
lab_wait 10 agree n1 n2 n3 || fail "holders after the rejoin: $(holder n1) $(holder n2) $(holder n3)"
grep -q '"event":"unfenced"' "$(lab_node_dir n3)/odrs/events.jsonl" || fail "no unfenced event on n3"
lab_wait 10 eval '[ "$(joins)" -gt "$joined" ]' || fail "n1 did not see n3 join again"

step "2: n3's lease revoked while etcd answers: fenced at once, then a new lease"
unfenced() { grep -c '"event":"unfenced"' "$(lab_node_dir n3)/odrs/events.jsonl"; }
before=$(unfenced)
etcdctl() { ip netns exec "$LAB_PREFIX-etcd" etcdctl --endpoints http://127.0.0.1:2379 "$@"; }
lease=$(etcdctl get /odrs/node/n3 --print-value-only | sed -n 's/.*"lease": *\([0-9]*\).*/\1/p')
[ -n "$lease" ] || fail "no lease of n3 in etcd: $(etcdctl get /odrs/node/n3)"
etcdctl lease revoke "$(printf %x "$lease")" > /dev/null || fail "etcdctl lease revoke"
lab_wait 5 eval "grep '\"event\":\"fenced\"' '$(lab_node_dir n3)/odrs/events.jsonl' | grep -q lease_expired" ||
	fail "n3 not fenced after its lease was revoked"
lab_wait 10 eval '[ "$(unfenced)" -gt "$before" ] && [ "$(status_of n3 cluster_store)" = ok ]' ||
	fail "n3 did not take a new lease: $(lab_odrsctl n3 status)"
lab_wait 10 agree n1 n2 n3 || fail "holders after the new lease: $(holder n1) $(holder n2) $(holder n3)"

step "3: n3 dies once claimed for a wake; n1 and n2 report it lost"
hibernate "$where"
for n in n1 n2 n3; do lab_wait 10 _odrs_is $n web1 hibernated || fail "$n does not know web1 sleeps"; done
holder=$(holder n1)
[ "$holder" != n3 ] || fail "n3 holds the role again"
lab_odrsd_stop n3 KILL || true
# n3's node key lives for lease_ttl more: the claim goes to it, the least loaded.
lab_odrsctl "$holder" wake web1 > "$LAB_DIR/wake3.out" 2>&1 &
claimed_for_n3() { local n; n=$(node_of n1 web1); [ "${n%(lost)}" = n3 ] && [ "$(odrs_state n1 web1)" = waking ]; }
lab_wait 5 claimed_for_n3 ||
	fail "the wake was not claimed for n3: $(lab_odrsctl n1 list)"
for n in n1 n2; do
	lab_wait $((LEASE_TTL + 5)) grep -q '"event":"node_lost"' "$(lab_node_dir $n)/odrs/events.jsonl" ||
		fail "no node_lost on $n"
	grep '"event":"node_lost"' "$(lab_node_dir $n)/odrs/events.jsonl" | grep '"lost_node":"n3"' |
		grep -q '"vms":\["web1"\]' || fail "$n: node_lost does not name n3 and web1"
	[ "$(node_of $n web1)" = "n3(lost)" ] ||
		fail "$n does not list web1's node as lost: $(lab_odrsctl $n list)"
	status_of $n lost_nodes | grep -q '"n3"' || fail "$n: lost_nodes is $(status_of $n lost_nodes)"
done

echo "PASS"

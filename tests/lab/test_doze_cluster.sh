#!/bin/bash
# Doze in a cluster (2 nodes, etcd, a client): web1 dozes on n1 while n2 holds the
# accept role.
#  1. the registry says dozing on n1 on both nodes; the switch keeps web1's MAC on
#     n1's port;
#  2. a client with an empty ARP cache reaches it with exactly one SYN on the wire
#     and gets exactly one SYN-ACK: n1 answers the ARP and resumes it, n2 answers
#     nothing and sends no frame with web1's MAC (counted on its switch port, from
#     the doze to the end of step 3);
#  3. dozing again, `odrsctl wake` on the accept holder n2 is a claim for n1, which
#     resumes it (wake_done from doze on n1);
#  4. sleep = doze_then_hibernate, hibernate_after = 2s: the dozing VM is hibernated
#     to the shared pool and a client's connection restores it on the least-loaded
#     node, n2 (n1 runs busy1).
# Exit 0 pass, 1 fail, 77 skip (not root, or no swap and no zram).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.10 MAC=52:54:00:12:00:10

trap 'lab_down; odrs_zram_down' EXIT
odrs_has_swap || odrs_zram_up || { echo "no swap and no zram: skip"; exit 77; }
lab_up 2 1 || fail "lab_up"
lab_etcd_up || fail "etcd"
lab_vm_start n1 web1 $IP $MAC || fail "web1 start"
lab_vm_start n1 busy1 198.18.0.21 52:54:00:12:00:21 || fail "busy1 start"
lab_vm_wait_ready n1 web1 90 || fail "web1 not ready"
lab_vm_wait_ready n1 busy1 90 || fail "busy1 not ready"

conf() { # NODE [LINE...]: the cluster's config, LINEs in web1's section
	local n=$1
	shift
	odrs_conf "$n" "check_interval = 1s" "[policy]" "idle_timeout = 0" \
		"[cluster]" "backend = etcd" "etcd = http://198.18.2.1:2379" "accept_term = 10m" \
		"lease_ttl = 3s" "cpus = 1000" "memory = 1G" "retrain_delay = 1s" \
		"[vm busy1]" "ip = 198.18.0.21" "[vm web1]" "ip = $IP" "$@"
}
for n in n1 n2; do
	lab_odrsd_start $n "$(conf $n)" || fail "odrsd on $n did not start"
done
holder() { lab_odrsctl "$1" accept | awk '$1 == "accept:" { print $2 }'; }
holder_is() { [ "$(holder n1)" = "$1" ] && [ "$(holder n2)" = "$1" ]; }
node_of() { lab_odrsctl "$1" list | awk -v vm="$2" '$1 == vm { print $5 }'; }
state_on() { [ "$(odrs_state "$1" web1)" = "$2" ] && [ "$(node_of "$1" web1)" = "$3" ]; } # NODE STATE ON
lab_wait 20 holder_is "$(holder n1)" && [ -n "$(holder n1)" ] || fail "no agreed holder"
if [ "$(holder n1)" != n2 ]; then
	out=$(lab_odrsctl n1 accept move n2) || fail "accept move: $out"
	lab_wait 10 holder_is n2 || fail "holder is $(holder n1)/$(holder n2), want n2"
fi
lab_wait 20 state_on n2 running n1 || fail "n2 does not see web1 running on n1: $(lab_odrsctl n2 list)"

# Frames n2 sends with web1's MAC as source, on n2's switch port (as the switch receives them).
n2cap=$LAB_DIR/cap-sw-n2
ip netns exec "$LAB_PREFIX-sw" tcpdump -i sw-n2 -Q in -U --immediate-mode -w "$n2cap.pcap" \
	"ether src $MAC" 2> "$n2cap.err" &
n2cap_pid=$!
lab_wait 10 grep -q listening "$n2cap.err" || fail "tcpdump on sw-n2: $(cat "$n2cap.err")"

step "1: web1 dozes on n1; the registry and the switch keep it there"
odrs_mark n1
odrs_mark n2
out=$(lab_odrsctl n1 doze web1) || fail "doze web1 on n1: $out"
echo "$out"
lab_wait 10 state_on n2 dozing n1 || fail "n2 sees web1 $(odrs_state n2 web1) on $(node_of n2 web1)"
state_on n1 dozing n1 || fail "n1 sees web1 $(odrs_state n1 web1)"
lab_virsh n1 domstate web1 | grep -q paused || fail "web1 not paused on n1"
[ "$(lab_fdb_port $MAC)" = sw-n1 ] || fail "web1's MAC on $(lab_fdb_port $MAC), want sw-n1"

step "2: one SYN from an empty ARP cache, answered by n1"
lab_client_exec c1 ip neigh flush all
lab_client_first_syn_only c1
odrs_capture_start c1 "tcp and host $IP and tcp[13] & 0x02 != 0"
body=$(lab_client_exec c1 curl -sS --max-time 20 "http://$IP/") || fail "curl web1 failed"
[ "$body" = "hello from web1" ] || fail "body: $body"
n=$(odrs_capture_count c1 "tcp[13] & 0x12 = 0x02 and dst host $IP")
[ "$n" = 1 ] || fail "client sent $n SYNs to the dozing web1, want 1"
n=$(odrs_capture_count c1 "tcp[13] & 0x12 = 0x12 and src host $IP")
[ "$n" = 1 ] || fail "client got $n SYN-ACKs from web1, want 1 (the SYN reached the guest $n times)"
odrs_event n1 arp_reply web1 || fail "n1 did not answer the ARP for web1"
! odrs_event n2 arp_reply web1 || fail "n2 (the accept holder) answered the ARP for the dozing web1"
! odrs_event n2 syn_held web1 || fail "n2 held a SYN of the dozing web1"
odrs_evlog n1 | grep '"event":"wake_done"' | grep '"vm":"web1"' | grep -q '"from":"doze"' ||
	fail "no wake_done from doze on n1"
lab_wait 10 state_on n2 running n1 || fail "n2 sees web1 $(odrs_state n2 web1) on $(node_of n2 web1)"

step "3: dozing on n1, woken by odrsctl wake on the accept holder n2"
out=$(lab_odrsctl n1 doze web1) || fail "doze web1 again: $out"
lab_wait 10 state_on n2 dozing n1 || fail "n2 sees web1 $(odrs_state n2 web1) after the doze"
odrs_mark n1
out=$(lab_odrsctl n2 wake web1) || fail "wake web1 on n2: $out"
echo "$out"
lab_wait 10 state_on n1 running n1 || fail "n1 sees web1 $(odrs_state n1 web1) after the wake on n2"
odrs_evlog n1 | grep '"event":"wake_done"' | grep '"vm":"web1"' | grep -q '"from":"doze"' ||
	fail "the wake asked on n2 was no resume on n1"
lab_virsh n1 domstate web1 | grep -q running || fail "web1 not running on n1"
lab_client_first_syn_only c1
body=$(lab_vm_http c1 web1) || fail "web1 does not answer a first SYN after the wake on n2"

kill -INT $n2cap_pid 2> /dev/null
wait $n2cap_pid 2> /dev/null
n=$(tcpdump -nn -r "$n2cap.pcap" 2> /dev/null | wc -l)
[ "$n" = 0 ] || fail "n2 sent $n frames with web1's MAC: $(tcpdump -nn -e -r "$n2cap.pcap" 2>/dev/null | head -3)"

step "4: doze_then_hibernate: hibernated to the shared pool, restored on the least-loaded node"
for n in n1 n2; do
	conf $n "sleep = doze_then_hibernate" "hibernate_after = 2s" > /dev/null
	out=$(lab_odrsctl $n reload) || fail "reload $n: $out"
done
out=$(lab_odrsctl n1 doze web1) || fail "doze web1 for doze_then_hibernate: $out"
odrs_wait_state n2 web1 hibernated 60 || fail "n2 does not see web1 hibernated"
[ -s "$LAB_SHARED/web1.odrs-save" ] || fail "no image $LAB_SHARED/web1.odrs-save"
lab_client_exec c1 ip neigh flush all
lab_client_first_syn_only c1
body=$(lab_client_exec c1 curl -sS --max-time 30 "http://$IP/") || fail "curl after the hibernation"
[ "$body" = "hello from web1" ] || fail "body: $body"
lab_wait 10 state_on n1 running n2 || fail "web1 is $(odrs_state n1 web1) on $(node_of n1 web1), want running on n2"
grep '"event":"wake_done"' "$(lab_node_dir n2)/odrs/events.jsonl" | grep '"vm":"web1"' | tail -1 |
	grep -q '"from":"hibernate"' || fail "n2 did not restore web1"

echo "PASS"

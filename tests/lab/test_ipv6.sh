#!/bin/bash
# IPv6: a sleeping VM with an IPv6 address is reached over IPv6.
#  1. odrsd answers the client's Neighbor Solicitation for the VM's address
#     with the VM's MAC (ndp_reply), as it answers ARP;
#  2. the client's first TCP SYN over IPv6 is held, the VM restored, the SYN
#     replayed into its tap with a repaired checksum, and the connection
#     completes on that SYN: the client, free to retransmit (restores take
#     0.3-0.7 s, its first retransmission is due after 1 s), sends one, and
#     odrsd sees the guest answer the first replay;
#  3. both paths again with a permanent neighbour entry (SYN only).
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.10 MAC=52:54:00:12:00:10 IP6=fd00:198:18::10 CLIENT6=fd00:198:18::3:1
trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
LAB_VM_IPV6=1 lab_vm_start n1 web6 $IP $MAC && lab_vm_wait_ready n1 web6 || fail "web6"
odrs_guest_sh n1 web6 "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; ip addr add $IP6/64 dev eth0" ||
	fail "no IPv6 address in the guest"
lab_client_exec c1 sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 \
	net.ipv6.conf.eth0.accept_dad=0 || fail "IPv6 on c1"
lab_client_exec c1 ip addr add $CLIENT6/64 dev eth0 || fail "address on c1"
lab_wait 10 sh -c "ip netns exec $LAB_PREFIX-c1 curl -6 -sS --max-time 2 'http://[$IP6]/' | grep -q 'hello from web6'" ||
	fail "web6 does not answer over IPv6 while running"

conf=$(odrs_conf n1 "[vm web6]" "ip = $IP" "ip6 = $IP6")
lab_odrsd_start n1 "$conf" && odrs_wait_state n1 web6 running || fail "odrsd"

step "1+2: empty neighbour cache, HTTP over IPv6"
odrs_hibernate n1 web6
odrs_mark n1
lab_client_exec c1 ip -6 neigh flush all
odrs_capture_start c1 "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02"
body=$(lab_client_exec c1 curl -6 -sS --max-time 20 "http://[$IP6]/") || fail "curl over IPv6 failed"
[ "$body" = "hello from web6" ] || fail "body: $body"
n=$(odrs_capture_count c1)
[ "$n" = 1 ] || fail "client sent $n SYNs, want 1"
odrs_event n1 ndp_reply web6 || fail "no ndp_reply event"
odrs_replayed_once n1 web6
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q "\"client\":\"$CLIENT6\"" ||
	fail "the wake was not triggered by c1's solicitation"

step "3: permanent neighbour entry: the SYN alone wakes it"
odrs_hibernate n1 web6
odrs_mark n1
lab_client_exec c1 ip -6 neigh replace $IP6 lladdr $MAC dev eth0 nud permanent
odrs_capture_start c1 "ip6 and ip6[6] = 6 and ip6[53] & 0x12 = 0x02"
body=$(lab_client_exec c1 curl -6 -sS --max-time 20 "http://[$IP6]/") || fail "curl over IPv6 failed"
[ "$body" = "hello from web6" ] || fail "body: $body"
n=$(odrs_capture_count c1)
[ "$n" = 1 ] || fail "client sent $n SYNs, want 1"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"syn"' ||
	fail "wake not triggered by the IPv6 SYN"
odrs_replayed_once n1 web6

echo "PASS"

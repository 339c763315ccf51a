#!/bin/bash
# Regenerate the pcap fixtures of tests/unit/test_pcap_fixtures.c from real
# traffic: two network namespaces joined by a veth pair (198.18.0.0/15 lab
# addresses only), tcpdump on the client side while arping, curl against
# busybox httpd and nc talk to the server side. Run as root from anywhere:
#   tools/mkfixtures.sh [OUTDIR]        (default tests/fixtures)
# The test pins the MACs, addresses and ports below: change them together.
#
#   arp.pcap          arping: ARP request (broadcast) and the kernel's reply
#   tcp.pcap          curl -> httpd :8080 and nc -> nc :9000, plus a SYN to
#                     the closed port 9 (RST); transmit checksum offload off,
#                     so every checksum on file is the correct one
#   tcp-offload.pcap  curl -> httpd with offload on: the client's segments
#                     carry the partial checksum a virtual NIC hands over
#   frag.pcap         ping -s 3000: ICMP in three IPv4 fragments each way
#   vlan.pcap         ARP (the kernel's: arping reads tagged replies wrong) and curl over 802.1Q VLAN 100, priority 3
#   qinq.pcap         ARP and nc over 802.1ad S-VLAN 200 + 802.1Q C-VLAN 300
set -euo pipefail
[ -n "${MKFIXTURES_TRACE:-}" ] && set -x

here=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$here/tests/fixtures}")
NS_C=odrsfx-client NS_S=odrsfx-server
IF_C=fxcli0 IF_S=fxsrv0
MAC_C=02:00:00:0f:00:01 MAC_S=02:00:00:0f:00:02
work=$(mktemp -d /tmp/mkfixtures.XXXXXX)
capture_pid= bg_pids=

cleanup() {
	local p
	for p in $capture_pid $bg_pids; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || { echo "mkfixtures: must run as root" >&2; exit 1; }
for t in ip ethtool tcpdump arping curl nc busybox; do
	command -v "$t" >/dev/null || { echo "mkfixtures: $t missing (see tools/deps.txt)" >&2; exit 1; }
done

c() { ip netns exec "$NS_C" "$@"; }
s() { ip netns exec "$NS_S" "$@"; }

# Leftovers of an interrupted run would make "ip netns add" fail.
ip netns del "$NS_C" 2>/dev/null || true
ip netns del "$NS_S" 2>/dev/null || true
ip netns add "$NS_C"
ip netns add "$NS_S"
# No IPv6: its neighbour discovery would clutter the captures.
for ns in "$NS_C" "$NS_S"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$IF_C" netns "$NS_C" address "$MAC_C" type veth \
	peer name "$IF_S" netns "$NS_S" address "$MAC_S"
c ip link set lo up
s ip link set lo up
c ip addr add 198.18.0.1/24 dev "$IF_C"
s ip addr add 198.18.0.2/24 dev "$IF_S"
c ip link set "$IF_C" up
s ip link set "$IF_S" up

# Tagged captures. This kernel may lack 802.1Q sub-interfaces (VLAN_8021Q) and
# bridge VLAN filtering, so the tags are put on the wire by a tc BPF program
# on each veth end: egress pushes them, ingress pops them before the stack
# looks. tcpdump taps the wire side of both hooks and sees the tagged frames.
cat > "$work/vlan.bpf.c" <<'BPF'
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#define SEC(s) __attribute__((section(s), used))
static long (*skb_vlan_push)(struct __sk_buff *, __be16, __u16) =
	(void *)BPF_FUNC_skb_vlan_push;
static long (*skb_vlan_pop)(struct __sk_buff *) = (void *)BPF_FUNC_skb_vlan_pop;
/* 802.1Q VLAN 100, priority 3. */
SEC("classifier/push_q") int push_q(struct __sk_buff *skb)
{
	skb_vlan_push(skb, __builtin_bswap16(0x8100), 3 << 13 | 100);
	return TC_ACT_OK;
}
/* 802.1ad S-VLAN 200 outside, 802.1Q C-VLAN 300 inside. */
SEC("classifier/push_qinq") int push_qinq(struct __sk_buff *skb)
{
	skb_vlan_push(skb, __builtin_bswap16(0x8100), 300);
	skb_vlan_push(skb, __builtin_bswap16(0x88a8), 200);
	return TC_ACT_OK;
}
SEC("classifier/pop") int pop(struct __sk_buff *skb)
{
	if (skb->vlan_present)
		skb_vlan_pop(skb);
	if (skb->vlan_present)
		skb_vlan_pop(skb);
	return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
BPF
clang -O2 -target bpf -I"/usr/include/$(gcc -dumpmachine)" \
	-c "$work/vlan.bpf.c" -o "$work/vlan.bpf.o"

tag_wire() { # none|push_q|push_qinq
	local side dev
	for side in c s; do
		if [ $side = c ]; then dev=$IF_C; else dev=$IF_S; fi
		$side tc qdisc del dev "$dev" clsact 2>/dev/null || true
		[ "$1" = none ] && continue
		$side tc qdisc add dev "$dev" clsact
		$side tc filter add dev "$dev" egress bpf da \
			obj "$work/vlan.bpf.o" sec "classifier/$1"
		$side tc filter add dev "$dev" ingress bpf da \
			obj "$work/vlan.bpf.o" sec classifier/pop
	done
	# Make the next exchange start with ARP, on the new wire.
	c ip neigh flush dev "$IF_C"
	s ip neigh flush dev "$IF_S"
}

mkdir -p "$work/www"
echo "odrs fixture page" > "$work/www/index.html"
ip netns exec "$NS_S" busybox httpd -f -p 8080 -h "$work/www" &
bg_pids="$bg_pids $!"

# Wait for the server's socket instead of sleeping a guess.
wait_listen() { # PORT
	local i
	for i in $(seq 50); do
		s ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	echo "mkfixtures: nothing listens on :$1" >&2
	return 1
}

capture_start() { # NAME FILTER
	# Not through c(): $! must be tcpdump itself, which SIGINT stops cleanly.
	# Immediate mode, or packets still in the ring when it stops are lost.
	ip netns exec "$NS_C" tcpdump -i "$IF_C" -n -s 0 -U --immediate-mode -Z root -w "$work/$1.pcap" "$2" \
		2> "$work/$1.log" &
	capture_pid=$!
	local i
	for i in $(seq 50); do
		grep -q "listening on" "$work/$1.log" && return 0
		sleep 0.1
	done
	cat "$work/$1.log" >&2
	return 1
}

capture_stop() { # NAME
	sleep 0.5	# let the last replies reach the capture
	kill -INT "$capture_pid"
	wait "$capture_pid" || true
	capture_pid=
	grep "packets captured" "$work/$1.log" | sed "s/^/$1: /"
}

nc_exchange() { # ADDR PORT
	s sh -c "echo 'hello from server' | nc -l -N $1 $2 > /dev/null" &
	local srv=$!
	wait_listen "$2"
	echo "hello from client" | c nc -N -w 2 "$1" "$2" > /dev/null
	wait "$srv"
}

tag_wire none
capture_start arp "arp"
c arping -c 2 -i "$IF_C" 198.18.0.2
capture_stop arp

wait_listen 8080
c ethtool -K "$IF_C" tx off > /dev/null
capture_start tcp "tcp"
c curl -sS -o /dev/null http://198.18.0.2:8080/index.html
nc_exchange 198.18.0.2 9000
c nc -z -w 1 198.18.0.2 9 || true
capture_stop tcp

c ethtool -K "$IF_C" tx on > /dev/null
capture_start tcp-offload "tcp port 8080"
c curl -sS -o /dev/null http://198.18.0.2:8080/index.html
capture_stop tcp-offload

capture_start frag "ip[6:2] & 0x3fff != 0"
c busybox ping -c 1 -s 3000 198.18.0.2 > /dev/null
capture_stop frag

tag_wire push_q
capture_start vlan ""
c curl -sS -o /dev/null http://198.18.0.2:8080/index.html
capture_stop vlan

tag_wire push_qinq
capture_start qinq ""
nc_exchange 198.18.0.2 9001
capture_stop qinq
tag_wire none

mkdir -p "$out"
for f in arp tcp tcp-offload frag vlan qinq; do
	install -m 0644 "$work/$f.pcap" "$out/$f.pcap"
done
echo "mkfixtures: wrote $out/{arp,tcp,tcp-offload,frag,vlan,qinq}.pcap"

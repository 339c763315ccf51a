#!/bin/bash
# Hostile frames from the wire: a client sends tens of thousands of malformed
# frames that odrsd's kernel filter lets through (ARP requests with bad
# lengths or truncated, TCP SYNs to a sleeping VM with impossible IPv4 and
# TCP header lengths, a non-4 IP version, tagged frames with broken insides,
# first fragments, garbage), mixed with nothing valid. odrsd must drop and
# count them, stay up, keep its memory flat, wake nothing, and still answer
# an ARP request for the sleeping VM afterwards.
# The sleeping VM needs no guest: a snapshot file and no domain is what
# odrsd sees for a hibernated VM (wake_on = none, so the answers wake nothing).
# Exit 0 pass, 1 fail, 77 skip (not root, no python3).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
command -v python3 > /dev/null || { echo "needs python3"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.40 MAC=52:54:00:12:00:40 FRAMES=${FRAMES:-40000}

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
mkdir -p "$LAB_SHARED" && echo x > "$LAB_SHARED/ghost.odrs-save"
conf=$(odrs_conf n1 "[vm ghost]" "ip = $IP" "mac = $MAC" "wake_on = arp syn")
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 ghost hibernated 20 || fail "ghost not seen hibernated"

counter() { lab_odrsctl n1 status | awk -v k="$1:" '$1 == k { print $2 }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$(lab_odrsd_pid n1)/status"; }

step "warm up, then measure memory"
# -0: sender 0.0.0.0, an address probe: answered, but it wakes nobody.
lab_client_exec c1 arping -0 -i eth0 -c 3 -w 5 $IP > /dev/null || fail "no ARP answer before the flood"
rss0=$(rss_kib) malformed0=$(counter malformed)
odrs_mark n1

step "$FRAMES malformed frames from c1"
lab_client_exec c1 python3 - "$FRAMES" "$IP" "$MAC" <<'EOF' || fail "generator failed"
import os, random, socket, struct, sys
count, vm_ip, vm_mac = int(sys.argv[1]), socket.inet_aton(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(':', ''))
me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
my_ip = socket.inet_aton('198.18.3.1')
bcast = b'\xff' * 6
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
rnd = random.Random(7)

def eth(dst, etype, body, tags=0, pad=True):
    vlan = b''.join(struct.pack('!HH', 0x8100, rnd.randrange(1, 4095)) for _ in range(tags))
    frame = dst + me + vlan + struct.pack('!H', etype) + body
    return frame + b'\0' * max(0, 60 - len(frame)) if pad else frame

def arp(hlen=6, plen=4, op=1, cut=None):
    body = struct.pack('!HHBBH', 1, 0x0800, hlen, plen, op) + me + my_ip + b'\0' * 6 + vm_ip
    return body[:cut] if cut is not None else body

def syn(ihl=5, tot=None, ver=4, doff=5, frag=0):
    tcp = struct.pack('!HHIIBBHHH', rnd.randrange(1024, 65535), 80, rnd.getrandbits(32), 0,
                      doff << 4, 0x02, 64240, 0, 0)
    opts = b'\0' * max(0, ihl * 4 - 20)
    tot = 20 + len(opts) + len(tcp) if tot is None else tot
    ip = struct.pack('!BBHHHBBH4s4s', (ver << 4) | (ihl & 15), 0, tot, rnd.getrandbits(16), frag,
                     64, 6, 0, my_ip, vm_ip) + opts
    return ip + tcp

# The switch (a Linux bridge with br_netfilter) drops untagged IPv4 with a
# broken header, as many switches would not: those go out under a VLAN tag.
kinds = [
    lambda: eth(bcast, 0x0806, arp(cut=8), pad=False),      # ARP cut after the opcode
    lambda: eth(bcast, 0x0806, arp(cut=20), pad=False),     # ARP without its target address
    lambda: eth(bcast, 0x0806, arp(hlen=8)),                # hardware length 8
    lambda: eth(bcast, 0x0806, arp(plen=16)),               # protocol length 16
    lambda: eth(bcast, 0x0806, arp(cut=24), tags=1, pad=False),  # tagged, truncated
    lambda: eth(bcast, 0x0806, arp(hlen=0), tags=2),        # two tags, length 0
    lambda: eth(vm_mac, 0x0800, syn(tot=20), tags=1),       # IPv4 total length leaves no TCP
    lambda: eth(vm_mac, 0x0800, syn(tot=2000), tags=1),     # IPv4 total length past the frame
    lambda: eth(vm_mac, 0x0800, syn(ihl=15)[:40], tags=1),  # header length past the frame
    lambda: eth(vm_mac, 0x0800, syn(ihl=3), tags=1),        # header length below 5
    lambda: eth(vm_mac, 0x0800, syn(ver=6), tags=1),        # version 6 in an IPv4 frame
    lambda: eth(vm_mac, 0x0800, syn(doff=2), tags=2),       # TCP data offset below 5
    lambda: eth(vm_mac, 0x0800, syn(doff=15), tags=2),      # TCP data offset past the segment
    lambda: eth(vm_mac, 0x0800, syn(frag=0x2000), tags=1),  # first fragment (more fragments)
    lambda: eth(vm_mac, 0x0800, syn(tot=30), tags=2),       # two tags, short IPv4
    lambda: eth(bcast, 0x0806, struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + os.urandom(rnd.randrange(0, 12)), pad=False),  # garbage after a valid start
]
only = [int(x) for x in os.environ.get('KINDS', '').split(',') if x]
for i in range(count):
    if not only or i % len(kinds) in only:
        s.send(kinds[i % len(kinds)]())
print('sent', count)
EOF

step "odrsd is up, counted them, kept its memory and woke nothing"
lab_wait 10 eval '[ $(($(counter malformed) - malformed0)) -ge $((FRAMES / 2)) ]' || true
pid=$(lab_odrsd_pid n1) || fail "odrsd died"
rss1=$(rss_kib) malformed1=$(counter malformed)
echo "malformed: $malformed0 -> $malformed1; VmRSS: ${rss0} -> ${rss1} KiB"
[ $((malformed1 - malformed0)) -ge $((FRAMES / 2)) ] ||
	fail "only $((malformed1 - malformed0)) of $FRAMES frames counted as malformed"
[ $((rss1 - rss0)) -lt 1024 ] || fail "odrsd grew by $((rss1 - rss0)) KiB"
[ "$(odrs_state n1 ghost)" = hibernated ] || fail "ghost is $(odrs_state n1 ghost)"
[ "$(odrs_events n1 wake_start ghost)" = 0 ] || fail "a hostile frame started a wake"
lab_client_exec c1 arping -0 -i eth0 -c 3 -w 5 $IP | grep -qi "$MAC" || fail "no ARP answer after the flood"
[ "$(odrs_events n1 wake_start ghost)" = 0 ] || fail "an ARP probe started a wake"

step "positive control: one valid SYN from c1 wakes ghost"
lab_router_client c1 $IP $MAC
lab_client_exec c1 nc -z -w 1 $IP 80 || true # no guest behind it: the wake fails, the SYN is what counts
lab_wait 10 odrs_event n1 wake_start ghost || fail "a valid SYN did not start a wake: the checks above prove nothing"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"syn"' || fail "ghost woke, not by the SYN"

echo "PASS"

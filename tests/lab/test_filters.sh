#!/bin/bash
# Capture filters past what the kernel can list, and per-frame events
# aggregated: one node with 100 sleeping VMs (snapshot files, no domains),
# more than a filter names (64 addresses), so the wake and activity filters
# name networks that cover the VMs instead, still run in the kernel, and
# odrsd matches what they pass against its table:
# - status says filter_wake and filter_activity: nets (not "user": the
#   kernel took them);
# - SYNs to an address no VM has amid the VMs (198.18.20.50, between
#   198.18.20.49 and .51) pass the filter and are counted in
#   filtered_user_wake, and wake nothing; SYNs to one far from them
#   (198.18.0.250, sent: counted on the client's wire) stop in the kernel;
# - 300 ARP requests for ghost in a burst are answered and logged as at most
#   a few arp_reply lines whose counts add up to the replies sent;
# - odrsd's share of the data path: each reply is one observation of
#   odrs_reply_delay_seconds and odrs_reply_turn_seconds in /metrics, the
#   loop's turns are counted, and status shows reply_delay_*, reply_turn_max_us,
#   loop_turn_max_us and the counts over 1 ms;
# - ARP (wake_on = syn) and a SYN to port 80 (wake_ports = 22) are refused:
#   trigger_refused by reason, and the status counters;
# - positive control: a SYN to port 22 wakes ghost through the filter.
# Exit 0 pass, 1 fail, 77 skip (not root, no python3).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
command -v python3 > /dev/null || { echo "needs python3"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.40 MAC=52:54:00:12:00:40 OTHERS=99 ARPS=300 AMID=198.18.20.50 FAR=198.18.0.250

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
mkdir -p "$LAB_SHARED" && echo x > "$LAB_SHARED/ghost.odrs-save"
conf=$(odrs_conf n1 "$(odrs_metrics_conf n1)" "[vm ghost]" "ip = $IP" "mac = $MAC" "wake_on = syn" "wake_ports = 22")
for i in $(seq 1 $OTHERS); do
	echo x > "$LAB_SHARED/s$i.odrs-save"
	# 198.18.20.1-49 and .51-100: $AMID is no VM's.
	printf '[vm s%d]\nip = 198.18.20.%d\nmac = 52:54:01:00:00:%02x\n' "$i" $((i < 50 ? i : i + 1)) "$i"
done >> "$conf"
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 ghost hibernated 30 || fail "ghost not seen hibernated"

status() { lab_odrsctl n1 status; }
field() { status | awk -v k="$1:" '$1 == k { print $2 }'; }
lab_wait 30 eval '[ "$(field sleeping)" = $((OTHERS + 1)) ]' || fail "only $(field sleeping) VMs sleeping"

step "the filters name networks on purpose, and the kernel's"
# The last VM found asleep asks for a rebuild, at most 0.1 s later.
lab_wait 5 eval '[ "$(field filter_wake)" = nets ]' || fail "filter_wake: $(field filter_wake), want nets"
status | grep '^filter_\|^pcap_drops_\|^filtered_user_'

[ "$(field filter_activity)" = nets ] || fail "filter_activity: $(field filter_activity), want nets"
[ -n "$(field pcap_drops_wake)" ] || fail "no pcap_drops_wake in status"

# c1's own SYNs, to a MAC no host has (the switch floods them to n1): a real client's path.
syns() { # ADDRESS: 5 connection attempts, each up to 1 s
	lab_router_client c1 "$1" 52:54:00:12:00:fe
	for i in 1 2 3 4 5; do lab_client_exec c1 nc -z -w 1 "$1" 80 || true; done
}
step "SYNs to no VM's address amid the VMs pass the filter and stop in odrsd's table"
odrs_mark n1
stray0=$(field filtered_user_wake)
syns $AMID
lab_wait 5 eval '[ $(($(field filtered_user_wake) - stray0)) -ge 3 ]' ||
	fail "filtered_user_wake $stray0 -> $(field filtered_user_wake), want +3 or more of 5 attempts (frames: $(field frames))"

step "SYNs to an address far from every VM stop in the kernel"
odrs_capture_start c1 "tcp[13] & 0x12 = 0x02 and dst host $FAR"
stray0=$(field filtered_user_wake)
syns $FAR
sent=$(odrs_capture_count c1)
echo "$sent SYNs to $FAR on c1's wire; filtered_user_wake +$(($(field filtered_user_wake) - stray0))"
[ "$sent" -ge 3 ] || fail "only $sent SYNs to $FAR left c1: the check below proves nothing"
[ $(($(field filtered_user_wake) - stray0)) -lt "$sent" ] ||
	fail "filtered_user_wake +$(($(field filtered_user_wake) - stray0)) for $sent SYNs to $FAR: the kernel's filter passed them"
[ "$(odrs_evlog n1 | grep -c '"event":"wake_start"')" = 0 ] || fail "a SYN to no VM started a wake"

step "$ARPS ARP requests for ghost: answered, logged aggregated, refused as triggers (wake_on = syn)"
replies0=$(field arp_replies) refused0=$(field triggers_refused_wake_on) turns0=$(field loop_turns)
for k in reply_delay_p99_us reply_delay_max_us reply_turn_max_us loop_turn_max_us reply_delays_over_1ms \
	loop_turns_over_1ms; do
	[ -n "$(field $k)" ] || fail "no $k in status"
done
odrs_scrape n1 "$LAB_DIR/m0"
lab_client_exec c1 python3 - "$IP" "$ARPS" <<'EOF' || fail "generator failed"
import socket, struct, sys
vm_ip, n = socket.inet_aton(sys.argv[1]), int(sys.argv[2])
me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
body = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + me + socket.inet_aton('198.18.3.1') + b'\0' * 6 + vm_ip
for _ in range(n):
    s.send(b'\xff' * 6 + me + struct.pack('!H', 0x0806) + body + b'\0' * 18)
EOF
lab_wait 5 eval '[ $(($(field arp_replies) - replies0)) -ge $((ARPS * 9 / 10)) ]' ||
	fail "$(($(field arp_replies) - replies0)) of $ARPS ARP requests answered"
# The closing line comes at the end of the 1 s interval.
replies=$(($(field arp_replies) - replies0))
sum() { odrs_evlog n1 | grep "\"event\":\"$1\"" | grep '"vm":"ghost"' | sed -n 's/.*"count":\([0-9]*\).*/\1/p' |
	awk '{ s += $1 } END { print s + 0 }'; }
lab_wait 5 eval '[ "$(sum arp_reply)" = "$replies" ]' || fail "arp_reply counts add up to $(sum arp_reply), want $replies"
lines=$(odrs_events n1 arp_reply ghost)
echo "$replies replies, $lines arp_reply lines"
[ "$lines" -le 4 ] || fail "$lines arp_reply lines for a burst of $ARPS"
[ $(($(field triggers_refused_wake_on) - refused0)) = "$replies" ] ||
	fail "triggers_refused_wake_on +$(($(field triggers_refused_wake_on) - refused0)), want +$replies"
odrs_evlog n1 | grep '"event":"trigger_refused"' | grep -q '"trigger":"arp","reason":"wake_on"' ||
	fail "no trigger_refused for arp by wake_on"
[ "$(odrs_evlog n1 | grep -c '"event":"wake_start"')" = 0 ] || fail "an ARP request started a wake"
odrs_scrape n1 "$LAB_DIR/m1"
for h in odrs_reply_delay_seconds odrs_reply_turn_seconds; do
	a=$(odrs_metric "$LAB_DIR/m0" ${h}_count) && b=$(odrs_metric "$LAB_DIR/m1" ${h}_count) || fail "no ${h}_count"
	[ $((b - a)) = "$replies" ] || fail "${h}_count +$((b - a)), want one per reply: +$replies"
done
echo "reply delay: p99 $(field reply_delay_p99_us) us, max $(field reply_delay_max_us) us," \
	"in the loop $(field reply_turn_max_us) us; loop turns $(field loop_turns), longest $(field loop_turn_max_us) us"
[ "$(field reply_delay_max_us)" -gt 0 ] && [ "$(field reply_delay_p99_us)" -gt 0 ] ||
	fail "reply_delay_max_us $(field reply_delay_max_us), reply_delay_p99_us $(field reply_delay_p99_us) after $replies replies"
[ "$(field reply_delay_p99_us)" -le "$(field reply_delay_max_us)" ] || fail "reply delay p99 above its maximum"
[ "$(field loop_turns)" -gt "$turns0" ] || fail "loop_turns did not move from $turns0"

step "a SYN to port 80 is refused (wake_ports); one to port 22 wakes ghost through the filter"
lab_router_client c1 $IP $MAC
lab_client_exec c1 nc -z -w 1 $IP 80 || true
lab_wait 5 eval 'odrs_evlog n1 | grep "\"event\":\"trigger_refused\"" | grep -q "\"reason\":\"wake_ports\""' ||
	fail "no trigger_refused by wake_ports"
[ "$(field triggers_refused_wake_ports)" -ge 1 ] || fail "triggers_refused_wake_ports not counted"
lab_client_exec c1 nc -z -w 1 $IP 22 || true # no guest behind it: the wake fails, the SYN is what counts
lab_wait 10 odrs_event n1 wake_start ghost || fail "a SYN to port 22 did not start a wake: the checks above prove nothing"

echo "PASS"

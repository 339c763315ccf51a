#!/bin/bash
# Doze (sleep = doze): a VM paused on its node with its memory paged out to swap,
# woken by a resume in tens of milliseconds.
#  1. without swap, odrsd -t names the sleep = doze line, and a doze is refused with
#     the reason, the VM still running;
#  2. with swap (zram, set up here when the host has none, undone at exit), a 256 MiB
#     guest that holds 160 MiB of data dozes: QEMU's resident memory falls by at least
#     60 % of the guest's RAM, and the event log says how much went out, as
#     odrs_memory_freed_bytes in /metrics does;
#  3. a client with an empty ARP cache reaches it with exactly one SYN on the wire
#     (lab_client_first_syn_only): ARP answered and the SYN held while it dozes, the
#     held SYN replayed after the resume, the only copy its tap gets (the bridge port
#     holds frames while it dozes); the wake's time (wake_done ms) is printed;
#     woken by odrsctl wake, it takes a client's single SYN without any ARP;
#     odrs_wakes_total{from="doze"} of the wake's trigger grew by one;
#  4. odrsd SIGKILLed while the VM dozes: restarted, it shows the VM dozing (the
#     domain is paused, the state file says a doze paused it), and a client wakes it;
#  5. sleep = doze_then_hibernate: a VM dozing for hibernate_after is hibernated (saved
#     paused), and a client's connection restores it running.
# Exit 0 pass, 1 fail, 77 skip (not root, or no zram for a host without swap).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

MEM_MIB=256
BALLAST_MIB=160

# One SYN from an empty ARP cache reaches the dozing VM, and its guest once: the
# bridge sends nothing to a dozing guest's tap (it would queue there for the
# resume, beside the replay); counted on the tap, as the guest reads it.
reach_dozing() { # CLIENT VM IP
	local body n tap cap=$LAB_DIR/cap-tap
	tap=$(lab_virsh n1 domiflist "$2" | awk '$1 ~ /^vnet/ { print $1 }')
	lab_client_exec "$1" ip neigh flush all
	lab_client_first_syn_only "$1"
	odrs_capture_start "$1" "tcp[13] & 0x12 = 0x02 and dst host $3"
	ip netns exec "$LAB_PREFIX-n1" tcpdump -i "$tap" -Q out -U --immediate-mode -w "$cap.pcap" \
		"tcp[13] & 0x12 = 0x02 and dst host $3" 2> "$cap.err" &
	local tap_pid=$!
	lab_wait 10 grep -q listening "$cap.err" || fail "tcpdump on $tap: $(cat "$cap.err")"
	body=$(lab_client_exec "$1" curl -sS --max-time 20 "http://$3/") || fail "curl $2 failed"
	[ "$body" = "hello from $2" ] || fail "body: $body"
	n=$(odrs_capture_count "$1")
	[ "$n" = 1 ] || fail "client sent $n SYNs to the dozing $2, want 1"
	sleep 1 # a second copy would follow the first within the replay's check (0.15 s)
	kill -INT $tap_pid 2> /dev/null
	wait $tap_pid 2> /dev/null
	n=$(tcpdump -nn -r "$cap.pcap" 2> /dev/null | wc -l)
	[ "$n" = 1 ] || fail "the guest's tap $tap got the SYN $n times, want 1"
}

wake_done_from_doze() { # NODE VM: the last wake_done was a resume; prints its ms
	grep '"event":"wake_done"' "$(lab_node_dir "$1")/odrs/events.jsonl" | grep "\"vm\":\"$2\"" |
		tail -1 | grep '"from":"doze"' | sed -n 's/.*"ms":\([0-9]*\).*/\1/p' | grep .
}

trap 'lab_down; odrs_zram_down' EXIT
lab_up 1 1 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 "$MEM_MIB" "$BALLAST_MIB" || fail "web1 start"
lab_vm_wait_ready n1 web1 90 || fail "guest not ready"
conf=$(odrs_conf n1 "$(odrs_metrics_conf n1)" "[vm web1]" "ip = 198.18.0.10")
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 web1 running || fail "web1 not seen running"

step "1: no swap: the doze is refused with the reason"
if odrs_has_swap; then
	echo "the host has swap: skipped"
else
	tconf=$(odrs_conf n1 "[policy]" "sleep = doze" "[vm web1]" "ip = 198.18.0.10")
	out=$(lab_node_exec n1 "$LAB_ODRSD" -t -c "$tconf" 2>&1) && fail "odrsd -t without swap passed: $out"
	echo "$out"
	grep -q "^$tconf:[0-9]*: sleep = doze needs swap" <<<"$out" || fail "odrsd -t without swap: $out"
	odrs_conf n1 "[vm web1]" "ip = 198.18.0.10" > /dev/null
	out=$(lab_odrsctl n1 doze web1 2>&1) && fail "doze without swap succeeded: $out"
	echo "$out"
	grep -q "needs swap" <<<"$out" || fail "doze without swap: $out"
	odrs_wait_state n1 web1 running || fail "web1 not running after the refused doze"
	lab_virsh n1 domstate web1 | grep -q running || fail "web1 paused after the refused doze"
	odrs_zram_up || { echo "no swap and no zram: skip"; exit 77; }
fi

step "2: doze pages QEMU's memory out"
rss_before=$(odrs_qemu_kib n1 web1 VmRSS) || fail "QEMU's VmRSS"
out=$(lab_odrsctl n1 doze web1) || fail "doze web1: $out"
echo "$out"
[ "$(odrs_state n1 web1)" = dozing ] || fail "web1 is $(odrs_state n1 web1) after doze"
lab_virsh n1 domstate web1 | grep -q paused || fail "web1 not paused: $(lab_virsh n1 domstate web1)"
rss_after=$(odrs_qemu_kib n1 web1 VmRSS)
swap_after=$(odrs_qemu_kib n1 web1 VmSwap)
echo "QEMU VmRSS ${rss_before} KiB -> ${rss_after} KiB, VmSwap ${swap_after} KiB"
fell=$((rss_before - rss_after))
[ "$fell" -ge $((MEM_MIB * 1024 * 60 / 100)) ] ||
	fail "VmRSS fell by $fell KiB, want at least 60 % of $MEM_MIB MiB"
out=$(grep '"event":"doze_done"' "$(lab_node_dir n1)/odrs/events.jsonl" | tail -1 |
	sed -n 's/.*"bytes_out":\([1-9][0-9]*\).*/\1/p')
[ -n "$out" ] || fail "no doze_done with bytes_out"
odrs_scrape n1 "$LAB_DIR/m-dozing"
[ "$(odrs_metric "$LAB_DIR/m-dozing" odrs_memory_freed_bytes)" = "$out" ] ||
	fail "odrs_memory_freed_bytes $(odrs_metric "$LAB_DIR/m-dozing" odrs_memory_freed_bytes), want bytes_out $out"

step "3: one SYN from an empty ARP cache wakes it"
reach_dozing c1 web1 198.18.0.10
odrs_event n1 arp_reply web1 || fail "no arp_reply event"
odrs_event n1 syn_replayed web1 || fail "no syn_replayed event"
ms=$(wake_done_from_doze n1 web1) || fail "no wake_done from doze"
echo "wake from doze: $ms ms"
odrs_scrape n1 "$LAB_DIR/m-woken"
trigger=$(grep '"event":"wake_done"' "$(lab_node_dir n1)/odrs/events.jsonl" | tail -1 | grep -o '"trigger":"[a-z]*"' | cut -d'"' -f4)
odrs_metric_grew_by_one "$LAB_DIR/m-dozing" "$LAB_DIR/m-woken" "odrs_wakes_total{trigger=\"$trigger\",from=\"doze\"}"
[ "$(odrs_metric "$LAB_DIR/m-woken" odrs_memory_freed_bytes)" = 0 ] || fail "odrs_memory_freed_bytes not 0 once woken"
[ "$(odrs_state n1 web1)" = running ] || fail "web1 is $(odrs_state n1 web1) after the wake"

step "3b: woken without a frame from a client, then reached with one SYN and no ARP"
# Nothing the client sends reaches the guest before its SYN, and nothing is held to
# replay: the bridge must send the SYN to the resumed guest's tap.
out=$(lab_odrsctl n1 doze web1) || fail "doze web1: $out"
out=$(lab_odrsctl n1 wake web1) || fail "wake web1: $out"
echo "$out"
lab_router_client c1 198.18.0.10 52:54:00:12:00:10
lab_client_first_syn_only c1
body=$(lab_client_exec c1 curl -sS --max-time 10 http://198.18.0.10/) || fail "curl after a manual wake from a doze"
[ "$body" = "hello from web1" ] || fail "body: $body"
lab_client_exec c1 ip neigh del 198.18.0.10 dev eth0

step "4: odrsd SIGKILLed while web1 dozes"
out=$(lab_odrsctl n1 doze web1) || fail "doze web1 again: $out"
lab_odrsd_stop n1 KILL
lab_odrsd_start n1 "$conf" || fail "odrsd did not start again"
odrs_wait_state n1 web1 dozing || fail "after the restart"
reach_dozing c1 web1 198.18.0.10
ms=$(wake_done_from_doze n1 web1) || fail "no wake_done from doze after the restart"
echo "wake from doze after the restart: $ms ms"

step "5: sleep = doze_then_hibernate: dozing for hibernate_after, it is hibernated"
odrs_conf n1 "check_interval = 1s" "[vm web1]" "ip = 198.18.0.10" "idle_timeout = 0" \
	"sleep = doze_then_hibernate" "hibernate_after = 2s" > /dev/null
out=$(lab_odrsctl n1 reload) || fail "reload: $out"
out=$(lab_odrsctl n1 doze web1) || fail "doze web1 for doze_then_hibernate: $out"
odrs_wait_state n1 web1 hibernated 60 || fail "not hibernated after hibernate_after"
[ -s "$LAB_SHARED/web1.odrs-save" ] || fail "no image $LAB_SHARED/web1.odrs-save"
lab_virsh n1 domstate web1 | grep -q 'shut off' || fail "web1 still there after its hibernation"
lab_client_first_syn_only c1
body=$(lab_client_exec c1 curl -sS --max-time 30 http://198.18.0.10/) || fail "curl after the hibernation"
[ "$body" = "hello from web1" ] || fail "body: $body"
grep '"event":"wake_done"' "$(lab_node_dir n1)/odrs/events.jsonl" | tail -1 | grep -q '"from":"hibernate"' ||
	fail "the last wake was no restore"

echo "PASS"

#!/bin/bash
# Access time of a sleeping VM: how long a client waits for its first TCP
# connection, in one run, on one VM (web1, TCG, 96 MiB), four ways, ROUNDS each:
#
#   bare        virsh save, then virsh restore, then the client connects
#               (ARP entry present): restore time + curl's connect time
#   odrs_arp    odrsctl hibernate; the client's ARP cache is empty, so the
#               wake is triggered by its ARP request and its SYN is held and
#               replayed: curl's connect time
#   odrs_syn    the same with a permanent ARP entry on the client (no ARP at
#               all; the SYN triggers the wake and is replayed)
#   retransmit  as odrs_syn, but odrsd runs with replay_syn = no: the held
#               SYN is dropped and the client's kernel retransmits (after 1 s)
#
# "Reachable" is measured the same way for every variant: the moment curl's
# connect() completes (SYN-ACK received). For odrs it is curl's time_connect,
# which starts before the client's first packet (ARP or SYN). For bare the
# client cannot start before the VM exists, so it is the duration of the
# restore call (virsh -t: the libvirt API call, not virsh's own start-up and
# connection, which odrsd does not pay either) plus curl's time_connect right
# after it returns. The wall-clock time around the whole virsh command is kept
# too (restore_wall_ms in access-detail.csv).
#
# Output (RESULTS, default bench/results/):
#   access.csv          variant,round,ms,snapshot_bytes
#   access-detail.csv   variant,round,restore_ms,restore_wall_ms,connect_ms,wake_done_ms,
#                       syn_replayed_ms,syns (SYNs the client sent, captured on its eth0)
#   access.txt          summary per variant, the ratios and whether the goals hold
#   access.png          box plot per variant (gnuplot)
#
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit.
# Exit 0: measured (goals are reported, not enforced); 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

ROUNDS=${ROUNDS:-10}
RESULTS=${RESULTS:-$BENCH_DIR/results}
VM=web1 IP=198.18.0.10 MAC=52:54:00:12:00:10 MEM=96
CURL_MAX=20
# Seconds left between putting the VM to sleep and the access, so the
# snapshot's write-out and odrsd's bookkeeping are not what is measured.
SETTLE=${SETTLE:-1}

mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/access.csv
DETAIL=$RESULTS/access-detail.csv
TXT=$RESULTS/access.txt
PNG=$RESULTS/access.png

# access: curl from c1; sets CONNECT_MS and SYNS (how many SYNs the client
# sent, from a capture on its eth0). Fails unless the body is the VM's.
access() {
	local out body
	syn_capture_start
	out=$(lab_client_exec c1 curl -sS --max-time "$CURL_MAX" \
		-w '\n%{time_connect}' "http://$IP/") || fail "curl failed: $out"
	body=$(head -n 1 <<<"$out")
	[ "$body" = "hello from $VM" ] || fail "body: '$body'"
	CONNECT_MS=$(ms "$(tail -n 1 <<<"$out")")
	SYNS=$(syn_capture_count)
}

# The client's SYNs to the VM, captured on its eth0. Immediate mode: without
# it a capture stopped right after a fast connection can miss its packets
# (they wait in the kernel's ring for a block to be handed over).
CAP=
syn_capture_start() {
	CAP=$LAB_DIR/cap-syn
	rm -f "$CAP.pcap" "$CAP.err"
	ip netns exec "$LAB_PREFIX-c1" tcpdump --immediate-mode -i eth0 -U -w "$CAP.pcap" \
		"tcp[13] & 0x12 = 0x02 and dst host $IP" 2> "$CAP.err" &
	CAP_PID=$!
	lab_wait 10 grep -q listening "$CAP.err" || fail "tcpdump on c1 did not start: $(cat "$CAP.err")"
}
syn_capture_count() {
	sleep 0.2
	kill -INT "$CAP_PID" 2>/dev/null
	wait "$CAP_PID" 2>/dev/null
	tcpdump -nn -r "$CAP.pcap" 2>/dev/null | wc -l
}

client_arp_empty() {
	lab_client_exec c1 ip neigh del "$IP" dev eth0 2>/dev/null
	lab_client_exec c1 ip neigh flush all
	[ -z "$(lab_client_exec c1 ip neigh show "$IP")" ] || fail "c1 still has an ARP entry for $IP"
}

# event_field EVENT FIELD: FIELD (a number) of the last EVENT for the VM
# among the event-log lines written since mark_events.
EVENTS=
mark_events() { EV_MARK=$(wc -l < "$EVENTS" 2>/dev/null || echo 0); }
event_field() {
	tail -n +"$((EV_MARK + 1))" "$EVENTS" | grep "\"event\":\"$1\"" |
		grep "\"vm\":\"$VM\"" | tail -n 1 | grep -o "\"$2\":[0-9.]*" | cut -d: -f2
}

row() { # VARIANT ROUND MS BYTES RESTORE WALL CONNECT WAKE_DONE REPLAYED
	echo "$1,$2,$3,$4" >> "$CSV"
	echo "$1,$2,$5,$6,$7,$8,$9,$SYNS" >> "$DETAIL"
	printf '%-10s round %2d: %8.1f ms  (snapshot %s bytes, %s SYN%s)\n' "$1" "$2" "$3" "$4" \
		"$SYNS" "${8:+, wake_done $8 ms}"
}

bare_round() { # ROUND
	local img=$LAB_DIR/bare/$VM.img bytes t0 t1 out restore wall
	mkdir -p "$LAB_DIR/bare" && rm -f "$img"
	lab_virsh n1 save "$VM" "$img" --running > /dev/null || fail "virsh save"
	bytes=$(stat -c %s "$img")
	lab_router_client c1 "$IP" "$MAC"
	sleep "$SETTLE"
	t0=$(date +%s%N)
	out=$(lab_virsh n1 -t restore "$img" --running) || fail "virsh restore: $out"
	t1=$(date +%s%N)
	access
	restore=$(sed -n 's/.*(Time: \([0-9.]*\) ms).*/\1/p' <<<"$out" | tail -n 1)
	[ -n "$restore" ] || fail "no timing in virsh -t output: $out"
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
	row bare "$1" "$(awk -v r="$restore" -v c="$CONNECT_MS" 'BEGIN { printf "%.3f", r + c }')" \
		"$bytes" "$restore" "$wall" "$CONNECT_MS" "" ""
	rm -f "$img"
}

odrs_round() { # VARIANT ROUND
	local bytes
	odrs_hibernate n1 "$VM"
	bytes=$(stat -c %s "$LAB_SHARED/$VM.odrs-save")
	case $1 in
	odrs_arp) client_arp_empty ;;
	*) lab_router_client c1 "$IP" "$MAC" ;;
	esac
	sleep "$SETTLE"
	mark_events
	access
	odrs_wait_state n1 "$VM" running 30 || fail "$VM not running after the access"
	# The events follow the access by a little: wait for wake_done.
	lab_wait 5 test -n "$(event_field wake_done ms)" || fail "no wake_done event"
	row "$1" "$2" "$CONNECT_MS" "$bytes" "$(event_field wake_done restore_ms)" "" "$CONNECT_MS" \
		"$(event_field wake_done ms)" "$(event_field syn_replayed ms)"
}

start_odrsd() { # [POLICY LINE...]
	local conf
	conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "$@" "[vm $VM]" "ip = $IP") &&
	lab_odrsd_start n1 "$conf" && odrs_wait_state n1 "$VM" running ||
		fail "odrsd did not start with $conf"
}

# summary: per variant: n median p90 min max (median of an even count is the
# mean of the middle two; p90 is the nearest rank, ceil(0.9 n)).
stats() { # VARIANT -> "n median p90 min max"
	awk -F, -v v="$1" 'NR > 1 && $1 == v { print $3 }' "$CSV" | sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (!NR) exit 1
			med = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			r = int(0.9 * NR); if (r < 0.9 * NR) r++
			printf "%d %.1f %.1f %.1f %.1f\n", NR, med, x[r], x[1], x[NR]
		}'
}
detail_median() { # VARIANT COLUMN
	awk -F, -v v="$1" -v c="$2" 'NR > 1 && $1 == v && $c != "" { print $c }' "$DETAIL" | median
}

summarize() {
	local v n med p90 min max bare arp syn rt goal1 goal2 lim
	{
		echo "odrs access-time benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds per variant)"
		machine
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "snapshot size (median): bare $(detail_snap bare) bytes, odrs $(detail_snap odrs_syn) bytes"
		echo
		printf '%-10s %3s %9s %9s %9s %9s %8s %10s %12s %5s\n' variant n median p90 min max \
			restore wake_done restore_wall SYNs
		for v in bare odrs_arp odrs_syn retransmit; do
			read -r n med p90 min max <<<"$(stats "$v")"
			printf '%-10s %3s %9s %9s %9s %9s %8s %10s %12s %5s\n' "$v" "$n" "$med" "$p90" \
				"$min" "$max" "$(detail_median "$v" 3)" "$(detail_median "$v" 6)" "$(detail_median "$v" 4)" \
				"$(detail_median "$v" 8 | sed 's/\.0$//')"
		done
		echo "(ms; restore = the libvirt restore call alone (virsh -t; odrsd's restore_ms);" \
			"wake_done = odrsd's trigger-to-running from the event log;" \
			"restore_wall = bare's wall-clock virsh restore, including virsh's start-up;" \
			"SYNs = median count the client sent per access)"
		echo
		bare=$(stats bare | cut -d' ' -f2)
		arp=$(stats odrs_arp | cut -d' ' -f2)
		syn=$(stats odrs_syn | cut -d' ' -f2)
		rt=$(stats retransmit | cut -d' ' -f2)
		awk -v b="$bare" -v a="$arp" -v s="$syn" -v r="$rt" 'BEGIN {
			printf "odrs/bare = %.2f (SYN path), %.2f (ARP path)\n", s / b, a / b
			printf "retransmit/odrs = %.2f (over the SYN path), %.2f (over the ARP path)\n", r / s, r / a
			lim = 1.05 * b + 20
			printf "goal 1, odrs within 1.05 x bare + 20 ms = %.1f ms: SYN path %.1f ms %s, ARP path %.1f ms %s\n",
				lim, s, (s <= lim ? "HOLDS" : "FAILS"), a, (a <= lim ? "HOLDS" : "FAILS")
			printf "goal 2, odrs at least 2.5 x faster than drop-and-retransmit: SYN path %.2f x %s, ARP path %.2f x %s\n",
				r / s, (r / s >= 2.5 ? "HOLDS" : "FAILS"), r / a, (r / a >= 2.5 ? "HOLDS" : "FAILS")
		}'
		echo "(ratios and goals are over medians)"
		echo
		echo "command: ROUNDS=$ROUNDS LAB_PREFIX=$LAB_PREFIX bench/access.sh (or make bench)"
	} > "$TXT"
	cat "$TXT"
}
detail_snap() { # VARIANT: median snapshot size
	awk -F, -v v="$1" 'NR > 1 && $1 == v { print $4 }' "$CSV" | sort -n |
		awk '{ x[NR] = $1 } END { if (NR) print x[int((NR + 1) / 2)] }'
}

plot() {
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal png size 800,500
	set output "$PNG"
	set datafile separator ","
	set title "Access time to a sleeping VM ($ROUNDS rounds each, TCG guest $MEM MiB)"
	set ylabel "ms until the client's TCP connect completes"
	set style fill solid 0.3 border -1
	set style boxplot nooutliers pointtype 7
	set style data boxplot
	set boxwidth 0.5
	set xtics ("bare restore" 1, "odrs ARP path" 2, "odrs SYN path" 3, "drop + retransmit" 4)
	set xrange [0.5:4.7]
	VARIANTS = "bare odrs_arp odrs_syn retransmit"
	COLORS = "#777777 #2266cc #22aa44 #cc4422"
	set yrange [0:*]
	set grid ytics
	unset key
	plot for [i=1:4] "< grep '^".word(VARIANTS, i).",' $CSV" using (i):3 lc rgb word(COLORS, i), \
	     for [i=1:4] "< grep '^".word(VARIANTS, i).",' $CSV" using (i + 0.35):3 with points pt 7 ps 0.6 lc rgb word(COLORS, i)
	EOF
}

bench_lab "$VM" "$IP" "$MAC" "$MEM"
EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
echo "variant,round,ms,snapshot_bytes" > "$CSV"
echo "variant,round,restore_ms,restore_wall_ms,connect_ms,wake_done_ms,syn_replayed_ms,syns" > "$DETAIL"

step "bare: virsh save, virsh restore, connect"
for r in $(seq 1 "$ROUNDS"); do bare_round "$r"; done

step "odrs (replay_syn = yes): ARP path and SYN path, alternating"
start_odrsd
for r in $(seq 1 "$ROUNDS"); do
	odrs_round odrs_arp "$r"
	odrs_round odrs_syn "$r"
done
lab_odrsd_stop n1 || fail "odrsd exited with status $?"

step "drop and retransmit (replay_syn = no): SYN path"
start_odrsd "replay_syn = no"
for r in $(seq 1 "$ROUNDS"); do odrs_round retransmit "$r"; done
lab_odrsd_stop n1 || fail "odrsd exited with status $?"

step "summary"
summarize
plot
echo "results in $RESULTS: $(cd "$RESULTS" && echo access.csv access-detail.csv access.txt access.png)"

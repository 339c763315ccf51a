#!/bin/bash
# Access time of a sleeping VM: how long a client waits for its first TCP
# connection, in one run, on one VM (web1, TCG, MEM MiB holding BALLAST MiB of
# random data), six ways, ROUNDS each, interleaved (each round runs every
# variant once, in this order):
#
#   bare        virsh save, then virsh restore, then the client connects
#               (ARP entry present): restore time + curl's connect time
#   odrs_arp    odrsctl hibernate; the client's ARP cache is empty, so the
#               wake is triggered by its ARP request and its SYN is held and
#               replayed: curl's connect time
#   odrs_syn    the same with a permanent ARP entry on the client (no ARP at
#               all; the SYN triggers the wake and is replayed)
#   doze_arp    odrsctl doze (pause, guest RAM paged out to swap); the client's
#               ARP cache is empty: the ARP request wakes it (a resume), the SYN
#               is held and replayed: curl's connect time
#   doze_syn    the same with a permanent ARP entry on the client
#   retransmit  as odrs_syn, but odrsd runs with replay_syn = no: the held
#               SYN is dropped and the client's kernel retransmits (after 1 s)
#
# Each doze also records the memory it freed: QEMU's VmRSS before and after,
# its VmSwap, and what the swap device kept (zram's mm_stat, before and after:
# the data stored, its compressed size, the memory zram uses). Without swap
# on the host, a zram swap device is set up for the run and removed after.
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
#                       (for doze rows, restore_ms is the resume call's)
#   access-doze.csv     variant,round,rss_before_kib,rss_after_kib,swap_kib,zram_data_kib,
#                       zram_compr_kib,zram_used_kib,bytes_out,resident_bytes,doze_ms
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
MEM=${MEM:-256} BALLAST=${BALLAST:-160}
VM=web1 IP=198.18.0.10 MAC=52:54:00:12:00:10
CURL_MAX=20
# Seconds left between putting the VM to sleep and the access, so the
# snapshot's write-out and odrsd's bookkeeping are not what is measured.
SETTLE=${SETTLE:-1}

mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/access.csv
DETAIL=$RESULTS/access-detail.csv
DOZE=$RESULTS/access-doze.csv
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

# access_asleep VARIANT ROUND BYTES: the client reaches the sleeping VM, with an
# empty ARP cache (VARIANT *_arp) or a permanent entry; its row.
access_asleep() {
	case $1 in
	*_arp) client_arp_empty ;;
	*) lab_router_client c1 "$IP" "$MAC" ;;
	esac
	sleep "$SETTLE"
	mark_events
	access
	odrs_wait_state n1 "$VM" running 30 || fail "$VM not running after the access"
	# The events follow the access by a little: wait for wake_done.
	lab_wait 5 test -n "$(event_field wake_done ms)" || fail "no wake_done event"
	row "$1" "$2" "$CONNECT_MS" "$3" "$(event_field wake_done restore_ms)" "" "$CONNECT_MS" \
		"$(event_field wake_done ms)" "$(event_field syn_replayed ms)"
}

odrs_round() { # VARIANT ROUND
	odrs_hibernate n1 "$VM"
	access_asleep "$1" "$2" "$(stat -c %s "$LAB_SHARED/$VM.odrs-save")"
}

# zram_kib: all zram devices' stored data, compressed size and memory used, in KiB ("0 0 0" without zram)
zram_kib() {
	cat /sys/block/zram*/mm_stat 2> /dev/null |
		awk '{ d += $1; c += $2; u += $3 } END { printf "%d %d %d", d / 1024, c / 1024, u / 1024 }'
}

doze_round() { # VARIANT ROUND
	local out rss0 rss1 swap z0 z1 d0 c0 u0 d1 c1 u1 dozed
	rss0=$(odrs_qemu_kib n1 "$VM" VmRSS) || fail "QEMU's VmRSS"
	z0=$(zram_kib)
	mark_events
	out=$(lab_odrsctl n1 doze "$VM") || fail "doze $VM: $out"
	dozed="$(event_field doze_done bytes_out),$(event_field doze_done resident_bytes),$(event_field doze_done ms)"
	[ "$(odrs_state n1 "$VM")" = dozing ] || fail "$VM is $(odrs_state n1 "$VM") after doze"
	rss1=$(odrs_qemu_kib n1 "$VM" VmRSS)
	swap=$(odrs_qemu_kib n1 "$VM" VmSwap)
	z1=$(zram_kib)
	read -r d0 c0 u0 <<<"$z0"
	read -r d1 c1 u1 <<<"$z1"
	access_asleep "$1" "$2" 0
	echo "$1,$2,$rss0,$rss1,$swap,$((d1 - d0)),$((c1 - c0)),$((u1 - u0)),$dozed" >> "$DOZE"
	printf '           memory: VmRSS %s -> %s KiB, VmSwap %s KiB, zram +%s KiB in +%s KiB\n' \
		"$rss0" "$rss1" "$swap" "$((d1 - d0))" "$((u1 - u0))"
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
		for v in bare odrs_arp odrs_syn doze_arp doze_syn retransmit; do
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
		doze_summary
		echo "(ratios and goals are over medians)"
		echo
		echo "command: ROUNDS=$ROUNDS MEM=$MEM BALLAST=$BALLAST LAB_PREFIX=$LAB_PREFIX bench/access.sh (or make bench)"
	} > "$TXT"
	cat "$TXT"
}
# doze_col VARIANT COLUMN: the median of access-doze.csv's COLUMN over that variant's dozes
doze_col() { awk -F, -v v="$1" -v c="$2" 'NR > 1 && $1 == v && $c != "" { print $c }' "$DOZE" | median; }
doze_summary() {
	local da ds ha hs
	da=$(stats doze_arp | cut -d' ' -f2)
	ds=$(stats doze_syn | cut -d' ' -f2)
	ha=$(stats odrs_arp | cut -d' ' -f2)
	hs=$(stats odrs_syn | cut -d' ' -f2)
	awk -v da="$da" -v ds="$ds" -v ha="$ha" -v hs="$hs" 'BEGIN {
		printf "hibernate/doze = %.1f x (SYN path), %.1f x (ARP path)\n", hs / ds, ha / da
		printf "goal 3, doze wake median <= 60 ms: SYN path %.1f ms %s, ARP path %.1f ms %s\n",
			ds, (ds <= 60 ? "HOLDS" : "FAILS"), da, (da <= 60 ? "HOLDS" : "FAILS")
		printf "goal 4, doze >= 5 x faster than the hibernate path: SYN path %.1f x %s, ARP path %.1f x %s\n",
			hs / ds, (hs / ds >= 5 ? "HOLDS" : "FAILS"), ha / da, (ha / da >= 5 ? "HOLDS" : "FAILS")
	}'
	# doze_arp follows a restore (the guest all resident); doze_syn the wake of a doze.
	awk -v m="$MEM" -v r0="$(doze_col doze_arp 3)" -v r1="$(doze_col doze_arp 4)" \
		-v sw="$(doze_col doze_arp 5)" -v zd="$(doze_col doze_arp 6)" -v zc="$(doze_col doze_arp 7)" \
		-v zu="$(doze_col doze_arp 8)" -v ms="$(doze_col doze_arp 11)" -v again="$(doze_col doze_syn 6)" \
		-v again_ms="$(doze_col doze_syn 11)" 'BEGIN {
		out = r0 - r1
		printf "memory per dozing VM, a doze after a restore (medians): QEMU VmRSS %.0f -> %.0f MiB, %.0f MiB out of RSS = %.0f %% of its %d MiB; VmSwap %.0f MiB\n",
			r0 / 1024, r1 / 1024, out / 1024, 100 * out / (m * 1024), m, sw / 1024
		printf "  zram: +%.0f MiB stored in +%.0f MiB compressed (+%.0f MiB used): the host gained %.0f MiB = %.0f %% of guest RAM; doze %.0f ms\n",
			zd / 1024, zc / 1024, zu / 1024, (out - zu) / 1024, 100 * (out - zu) / (m * 1024), ms
		printf "  a doze right after a doze'"'"'s wake pages out only what came back in: %.0f MiB in %.0f ms\n",
			again / 1024, again_ms
		printf "goal 5, >= 70 %% of guest RAM out of RSS: %.0f %% %s\n", 100 * out / (m * 1024),
			(out >= 0.7 * m * 1024 ? "HOLDS" : "FAILS")
	}'
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
	set xtics ("bare restore" 1, "odrs ARP path" 2, "odrs SYN path" 3, "doze ARP path" 4, "doze SYN path" 5, "drop + retransmit" 6)
	set xrange [0.5:6.7]
	set logscale y
	VARIANTS = "bare odrs_arp odrs_syn doze_arp doze_syn retransmit"
	COLORS = "#777777 #2266cc #22aa44 #8844cc #aa44aa #cc4422"
	set yrange [1:*]
	set grid ytics
	unset key
	plot for [i=1:6] "< grep '^".word(VARIANTS, i).",' $CSV" using (i):3 lc rgb word(COLORS, i), \
	     for [i=1:6] "< grep '^".word(VARIANTS, i).",' $CSV" using (i + 0.35):3 with points pt 7 ps 0.6 lc rgb word(COLORS, i)
	EOF
}

bench_lab "$VM" "$IP" "$MAC" "$MEM" "$BALLAST"
trap 'lab_down; odrs_zram_down' EXIT
odrs_has_swap || odrs_zram_up || fail "no swap, and no zram device for one"
EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
echo "variant,round,ms,snapshot_bytes" > "$CSV"
echo "variant,round,restore_ms,restore_wall_ms,connect_ms,wake_done_ms,syn_replayed_ms,syns" > "$DETAIL"
echo "variant,round,rss_before_kib,rss_after_kib,swap_kib,zram_data_kib,zram_compr_kib,zram_used_kib,bytes_out,resident_bytes,doze_ms" > "$DOZE"

step "$ROUNDS rounds: bare, odrs ARP and SYN paths, doze ARP and SYN paths, drop and retransmit"
for r in $(seq 1 "$ROUNDS"); do
	bare_round "$r"
	start_odrsd
	odrs_round odrs_arp "$r"
	odrs_round odrs_syn "$r"
	doze_round doze_arp "$r"
	doze_round doze_syn "$r"
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
	start_odrsd "replay_syn = no"
	odrs_round retransmit "$r"
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
done

step "summary"
summarize
plot
echo "results in $RESULTS: $(cd "$RESULTS" && echo access.csv access-detail.csv access-doze.csv access.txt access.png)"

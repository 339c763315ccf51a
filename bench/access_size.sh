#!/bin/bash
# Access time against snapshot size (the paper's Fig. 3): how long a client
# waits for its first TCP connection to a sleeping VM, for guests whose memory
# holds more and more data, in one run. For each size in SIZES a fresh guest
# (TCG, 1 vCPU) is started whose RAM holds BALLAST MiB of random data in a
# tmpfs (lab_vm_start's BALLAST_MIB), so its image is about that much larger
# than the smallest guest's; then ROUNDS rounds of each variant:
#
#   bare        virsh save, then virsh restore, then the client connects
#               (ARP entry present): restore call + curl's connect time
#   odrs_arp    odrsctl hibernate; the client's ARP cache is empty (the ARP
#               request triggers the wake; the SYN is held and replayed)
#   odrs_syn    the same with a permanent ARP entry on the client
#   retransmit  as odrs_syn, but odrsd runs with replay_syn = no: the held
#               SYN is dropped and the client's kernel retransmits
#   balloon     as odrs_syn, with shrink = balloon: before the save the guest
#               drops its caches and the balloon takes back what it does not
#               use (the ballast is in use, so little is freed)
#
# "Reachable" is measured as in access.sh (whose functions this copies): for
# odrs, curl's time_connect (from before the client's first packet to the
# SYN-ACK); for bare, the libvirt restore call (virsh -t) plus curl's
# time_connect right after it returns.
#
# SIZES are target image sizes in MiB. access.sh's guest (64 MiB does not boot), 96 MiB
# of RAM without ballast, makes an image of about 71 MiB, the smallest size
# there is (a size at or below BASE_MIB gets that guest). A larger size S gets
# BALLAST = (S - BASE_MIB) x 0.97 MiB of random data and 96 + BALLAST x 1.125
# MiB of RAM: the guest kernel's own share grows with its RAM (a 537 MiB guest
# has 452 MiB free after boot), and without the extra eighth a 537 MiB guest
# runs out of memory (and panics) filling 441 MiB. BASE_MIB (66) and the
# factors are fitted to this machine's guest so the image lands near S; what
# is reported is the image actually written (image_bytes: the file's size,
# which for odrs equals hibernate_done's bytes).
#
# Output (RESULTS, default bench/results/):
#   access_size.csv  size_mib,image_bytes,variant,ms,round,ballast_mib,mem_mib,
#                    restore_ms,restore_wall_ms,connect_ms,wake_done_ms,
#                    syn_replayed_ms,save_ms,shrink_ms,shrunk_bytes,syns
#                    (save_ms: bare's wall-clock virsh save, else hibernate_done's
#                    ms, which includes the shrink step; syns: SYNs the client sent)
#   access_size.txt  medians per size and variant, odrs/bare per size, a
#                    least-squares line (ms per MB of image) per variant
#   access_size.png  access ms against image MB, one line per variant (medians,
#                    every round as a dot), the paper's two points as markers
# Knobs: SIZES (default "64 128 256 512"), ROUNDS (default 4), BASE_MIB (66),
#        SETTLE (s between sleep and access, default 1), RESULTS.
#
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit. A run of the
# defaults takes 10 to 13 minutes on the machine of bench/README.md.
# Exit 0: measured (nothing is a goal here); 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

SIZES=${SIZES:-64 128 256 512}
ROUNDS=${ROUNDS:-4}
BASE_MIB=${BASE_MIB:-66}
RESULTS=${RESULTS:-$BENCH_DIR/results}
SETTLE=${SETTLE:-1}
VARIANTS="bare odrs_arp odrs_syn retransmit balloon"
# The paper's Fig. 3 (image MB, access s), drawn as markers.
PAPER="130 2.86
700 8.08"
# A restore of the largest guest can run past the client's 3 s retransmission.
CURL_MAX=60

mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/access_size.csv
TXT=$RESULTS/access_size.txt
PNG=$RESULTS/access_size.png
COMMAND="SIZES=\"$SIZES\" ROUNDS=$ROUNDS LAB_PREFIX=$LAB_PREFIX bench/access_size.sh"

# Per size (set by size_vm): the guest.
VM= IP= MAC= SIZE= BALLAST= MEM=

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

# The client's SYNs to the VM, captured on its eth0 (immediate mode, as in
# access.sh: else a capture stopped right after a fast connection can miss them).
CAP=
syn_capture_start() {
	CAP=$LAB_DIR/cap-syn
	rm -f "$CAP.pcap"
	: > "$CAP.err"
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
	tail -n +"$((EV_MARK + 1))" "$EVENTS" 2>/dev/null | grep "\"event\":\"$1\"" |
		grep "\"vm\":\"$VM\"" | tail -n 1 | grep -o "\"$2\":[0-9.]*" | cut -d: -f2
}

# row VARIANT ROUND MS BYTES RESTORE WALL CONNECT WAKE_DONE REPLAYED SAVE SHRINK_MS SHRUNK
row() {
	echo "$SIZE,$4,$1,$3,$2,$BALLAST,$MEM,$5,$6,$7,$8,$9,${10},${11},${12},$SYNS" >> "$CSV"
	printf '%4s MiB %-10s round %2d: %8.1f ms  (image %s bytes, save %s ms, %s SYN%s%s)\n' \
		"$SIZE" "$1" "$2" "$3" "$4" "${10}" "$SYNS" "${8:+, wake_done $8 ms}" \
		"${12:+, shrunk $((${12} / 1048576)) MiB}"
}

bare_round() { # ROUND
	local img=$LAB_DIR/bare/$VM.img bytes t0 t1 s0 out restore wall save
	mkdir -p "$LAB_DIR/bare" && rm -f "$img"
	s0=$(date +%s%N)
	lab_virsh n1 save "$VM" "$img" --running > /dev/null || fail "virsh save"
	t0=$(date +%s%N)
	save=$(awk -v a="$s0" -v b="$t0" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
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
		"$bytes" "$restore" "$wall" "$CONNECT_MS" "" "" "$save" "" ""
	rm -f "$img"
}

# memory_full: the guest has all its memory (a balloon deflated after a wake
# gives it back at the guest's pace). A VM sleeps after its idle_timeout, long
# after its last wake: a round that began before the balloon was back would
# save a smaller image and report less freed (shrunk_bytes counts from the
# balloon's current size).
memory_full() {
	lab_virsh n1 dominfo "$VM" | awk '/^Max memory:/ { m = $3 } /^Used memory:/ { u = $3 } END { exit !(m && u == m) }'
}

odrs_round() { # VARIANT ROUND
	local bytes save shrink_ms shrunk
	lab_wait 60 memory_full || fail "$VM did not get its memory back: $(lab_virsh n1 dominfo "$VM" | grep memory)"
	mark_events
	odrs_hibernate n1 "$VM"
	bytes=$(stat -c %s "$LAB_SHARED/$VM.odrs-save")
	lab_wait 5 test -n "$(event_field hibernate_done ms)" || fail "no hibernate_done event"
	save=$(event_field hibernate_done ms)
	shrink_ms=$(event_field hibernate_done shrink_ms)
	shrunk=$(event_field hibernate_done shrunk_bytes)
	case $1 in
	odrs_arp) client_arp_empty ;;
	*) lab_router_client c1 "$IP" "$MAC" ;;
	esac
	sleep "$SETTLE"
	mark_events
	access
	odrs_wait_state n1 "$VM" running 60 || fail "$VM not running after the access"
	# The events follow the access by a little: wait for wake_done.
	lab_wait 5 test -n "$(event_field wake_done ms)" || fail "no wake_done event"
	row "$1" "$2" "$CONNECT_MS" "$bytes" "$(event_field wake_done restore_ms)" "" "$CONNECT_MS" \
		"$(event_field wake_done ms)" "$(event_field syn_replayed ms)" "$save" "$shrink_ms" "$shrunk"
}

start_odrsd() { # [POLICY LINE...]
	local conf
	conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "$@" "[vm $VM]" "ip = $IP") &&
	lab_odrsd_start n1 "$conf" && odrs_wait_state n1 "$VM" running ||
		fail "odrsd did not start with $conf"
}

# size_vm INDEX SIZE: start the guest for SIZE (target image MiB) and wait
# until it answers; sets VM IP MAC SIZE BALLAST MEM.
size_vm() {
	SIZE=$2
	BALLAST=$((SIZE > BASE_MIB ? (SIZE - BASE_MIB) * 97 / 100 : 0))
	MEM=$((96 + BALLAST + BALLAST / 8))
	VM=size$SIZE IP=198.18.0.$((50 + $1)) MAC=$(printf '52:54:00:12:00:%02x' $((0x50 + $1)))
	step "$SIZE MiB: $VM, $MEM MiB of RAM, $BALLAST MiB of ballast"
	lab_vm_start n1 "$VM" "$IP" "$MAC" "$MEM" "$BALLAST" > /dev/null &&
		lab_vm_wait_ready n1 "$VM" 300 || fail "$VM did not come up"
	EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
}

size_vm_remove() {
	lab_virsh n1 destroy "$VM" > /dev/null 2>&1
	lab_virsh n1 undefine "$VM" > /dev/null || fail "undefine $VM"
	rm -f "$LAB_SHARED/$VM.odrs-save" "$LAB_DIR/bare/$VM.img"
}

# --- summary ---------------------------------------------------------------

# col SIZE VARIANT COLUMN: the column's values for that size and variant.
col() {
	awk -F, -v s="$1" -v v="$2" -v c="$3" 'NR > 1 && $1 == s && $3 == v && $c != "" { print $c }' "$CSV"
}
cmed() { col "$@" | median; }
stats() { # SIZE VARIANT -> "n median p90 min max" of ms
	col "$1" "$2" 4 | sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (!NR) { print "0 - - - -"; exit }
			med = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			r = int(0.9 * NR); if (r < 0.9 * NR) r++
			printf "%d %.1f %.1f %.1f %.1f\n", NR, med, x[r], x[1], x[NR]
		}'
}
mib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b / 1048576 }'; }

# medians: "size variant image_MB ms" per size and variant (MB = 10^6 bytes,
# as the paper's axis); the plot's lines and the fits are drawn from it.
MEDIANS=
medians() {
	local s v
	for s in $SIZES; do
		for v in $VARIANTS; do
			[ -n "$(col "$s" "$v" 4)" ] || continue
			echo "$s $v $(cmed "$s" "$v" 2 | awk '{ printf "%.1f", $1 / 1e6 }') $(cmed "$s" "$v" 4)"
		done
	done > "$MEDIANS"
}

# fit VARIANT: least squares of median ms on image MB over the sizes.
fit() {
	awk -v v="$1" '$2 == v { n++; sx += $3; sy += $4; sxx += $3 * $3; sxy += $3 * $4 }
		END {
			if (n < 2 || n * sxx == sx * sx) { print "- -"; exit }
			b = (n * sxy - sx * sy) / (n * sxx - sx * sx)
			printf "%.2f %.0f\n", b, (sy - b * sx) / n
		}' "$MEDIANS"
}

summarize() {
	local s v n med p90 min max sz b
	{
		echo "odrs access time against snapshot size ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds per size and variant)"
		machine
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "client c1: net.ipv4.tcp_syn_linear_timeouts = $(lab_client_exec c1 sysctl -n net.ipv4.tcp_syn_linear_timeouts 2>/dev/null || echo -)" \
			"(its first SYN retransmissions come 1 s apart, not 1 s, 3 s, 7 s)"
		echo
		echo "median access ms (client's TCP connect completes) per target size; image = bare's file, balloon's file"
		printf '%5s %7s %5s %9s %9s %9s %9s %9s %10s %10s %10s\n' size ballast mem image_MiB bare odrs_arp \
			odrs_syn retransmit balloon balloon_MiB shrunk_MiB
		for s in $SIZES; do
			printf '%5s %7s %5s %9s' "$s" "$(col "$s" bare 6 | head -n 1)" "$(col "$s" bare 7 | head -n 1)" \
				"$(mib "$(cmed "$s" bare 2)")"
			for v in $VARIANTS; do printf ' %9s' "$(cmed "$s" "$v" 4)"; done
			printf ' %10s %10s\n' "$(mib "$(cmed "$s" balloon 2)")" "$(mib "$(cmed "$s" balloon 15)")"
		done
		echo
		echo "per size and variant"
		printf '%5s %-10s %3s %10s %9s %9s %9s %9s %8s %10s %8s %5s\n' size variant n image_bytes median p90 \
			min max restore wake_done save_ms SYNs
		for s in $SIZES; do
			for v in $VARIANTS; do
				read -r n med p90 min max <<<"$(stats "$s" "$v")"
				printf '%5s %-10s %3s %10s %9s %9s %9s %9s %8s %10s %8s %5s\n' "$s" "$v" "$n" \
					"$(col "$s" "$v" 2 | sort -n | awk '{ x[NR] = $1 } END { print NR ? x[int((NR + 1) / 2)] : "-" }')" \
					"$med" "$p90" "$min" "$max" "$(cmed "$s" "$v" 8)" "$(cmed "$s" "$v" 11)" \
					"$(cmed "$s" "$v" 13)" "$(cmed "$s" "$v" 16 | sed 's/\.0$//')"
			done
		done
		echo "(ms; restore = the libvirt restore call alone (virsh -t; odrsd's restore_ms); wake_done = odrsd's" \
			"trigger-to-running; save_ms = bare's wall-clock virsh save, else hibernate_done's ms (with the shrink);" \
			"SYNs = median count the client sent per access; medians of an even count are the mean of the middle two)"
		echo
		for s in $SIZES; do
			b=$(cmed "$s" bare 4)
			awk -v s="$s" -v img="$(mib "$(cmed "$s" bare 2)")" -v b="$b" -v a="$(cmed "$s" odrs_arp 4)" \
				-v y="$(cmed "$s" odrs_syn 4)" -v r="$(cmed "$s" retransmit 4)" -v l="$(cmed "$s" balloon 4)" 'BEGIN {
				printf "size %s (image %s MiB): odrs/bare = %.2f (SYN path), %.2f (ARP path), %.2f (balloon);", s, img, y / b, a / b, l / b
				printf " retransmit/odrs = %.2f;", r / y
			}'
			# What odrsd adds to the restore call, over every odrs round of the size.
			awk -F, -v s="$s" 'NR > 1 && $1 == s && $11 != "" { print $11 - $8 }' "$CSV" | median |
				awk '{ printf " odrsd beyond the restore call %s ms\n", $1 }'
		done
		echo "(odrsd beyond the restore call: median of wake_done - restore_ms over the odrs rounds;" \
			"it includes unlinking the claimed image, which precedes the replay)"
		echo
		echo "least squares over the medians, access ms = slope x image MB + intercept (MB = 10^6 bytes):"
		for v in $VARIANTS; do
			read -r sz b <<<"$(fit "$v")"
			printf '  %-10s %6s ms/MB  %6s ms\n' "$v" "$sz" "$b"
		done
		awk 'NR == 1 { x1 = $1; y1 = $2 } NR == 2 { b = ($2 - y1) / ($1 - x1) * 1000
			printf "  %-10s %6.2f ms/MB  %6.0f ms  (2.86 s at 130 MB, 8.08 s at 700 MB)\n", "paper", b, y1 * 1000 - b * x1 }' <<<"$PAPER"
		echo
		echo "command: $COMMAND"
	} > "$TXT"
	cat "$TXT"
}

plot() {
	local i v plots= title color
	local titles=("bare restore" "odrs, ARP path" "odrs, SYN path" "drop and retransmit" "odrs, SYN path, shrink = balloon")
	local colors=("#777777" "#2266cc" "#22aa44" "#cc4422" "#aa44cc")
	echo "$PAPER" | awk '{ print $1, $2 * 1000 }' > "$LAB_DIR/paper.dat"
	i=0
	for v in $VARIANTS; do
		title=${titles[$i]} color=${colors[$i]}
		i=$((i + 1))
		awk -v v="$v" '$2 == v { print $3, $4 }' "$MEDIANS" > "$LAB_DIR/med-$v.dat"
		awk -F, -v v="$v" 'NR > 1 && $3 == v { print $2 / 1e6, $4 }' "$CSV" > "$LAB_DIR/pts-$v.dat"
		[ -s "$LAB_DIR/med-$v.dat" ] || continue
		plots="$plots \"$LAB_DIR/med-$v.dat\" using 1:2 with linespoints lw 2 pt 7 lc rgb \"$color\" title \"$title\","
		plots="$plots \"$LAB_DIR/pts-$v.dat\" using 1:2 with points pt 6 ps 0.7 lc rgb \"$color\" notitle,"
	done
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal png size 900,560
	set output "$PNG"
	set title "Access time against snapshot size ($ROUNDS rounds each; TCG guests, 1 vCPU; lines through the medians)"
	set xlabel "image MB (10^6 bytes)"
	set ylabel "ms until the client's TCP connect completes"
	set key top left Left reverse
	set grid
	set xrange [0:750]
	set yrange [0:*]
	plot $plots "$LAB_DIR/paper.dat" using 1:2 with points pt 9 ps 2.5 lc rgb "black" title "the paper (2011): 2.86 s at 130 MB, 8.08 s at 700 MB"
	EOF
}

# --- run -------------------------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
trap lab_down EXIT
step "raising lab '$LAB_PREFIX' (1 node, 1 client); sizes $SIZES MiB, $ROUNDS rounds"
lab_up 1 1 > /dev/null || fail "lab_up"
echo "size_mib,image_bytes,variant,ms,round,ballast_mib,mem_mib,restore_ms,restore_wall_ms,connect_ms,wake_done_ms,syn_replayed_ms,save_ms,shrink_ms,shrunk_bytes,syns" > "$CSV"
MEDIANS=$LAB_DIR/medians.dat
MAXMEM=0
i=0
for size in $SIZES; do
	i=$((i + 1))
	size_vm "$i" "$size"
	[ "$MEM" -gt "$MAXMEM" ] && MAXMEM=$MEM

	step "$SIZE MiB: bare virsh save, restore, connect"
	for r in $(seq 1 "$ROUNDS"); do bare_round "$r"; done

	step "$SIZE MiB: odrs (replay_syn = yes): ARP path and SYN path, alternating"
	start_odrsd
	for r in $(seq 1 "$ROUNDS"); do
		odrs_round odrs_arp "$r"
		odrs_round odrs_syn "$r"
	done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"

	step "$SIZE MiB: drop and retransmit (replay_syn = no): SYN path"
	start_odrsd "replay_syn = no"
	for r in $(seq 1 "$ROUNDS"); do odrs_round retransmit "$r"; done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"

	step "$SIZE MiB: shrink = balloon: SYN path"
	start_odrsd "shrink = balloon"
	for r in $(seq 1 "$ROUNDS"); do odrs_round balloon "$r"; done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"

	size_vm_remove
done

step "summary"
MEM="96-$MAXMEM"
medians
summarize
plot
echo "results in $RESULTS: access_size.csv access_size.txt access_size.png"

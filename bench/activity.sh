#!/bin/bash
# The cost of measuring a running VM's activity (issue 6). odrsd watches the
# TCP of its running VMs through a capture of its own (odrsd/capture.c
# activity_filter), which the kernel filters and hands over in blocks, at
# most 500 ms late, instead of waking odrsd for every frame as its wake
# capture (ARP, SYNs to sleeping VMs) does. Measured here against a flood of
# TCP ACKs to one VM at RATES frames/s, DURATION s each, ROUNDS times, next
# to the alternatives:
#
#   none         no capture at all: the flood's own cost (machine CPU only)
#   odrsd        odrsd with check_interval = 1s, idle_timeout = 1h, probe = none
#   tcpdump      the same capture by another program, for reference:
#                tcpdump -i br0 -w /dev/null "tcp and host IP" in the node
#                (libpcap's default buffering)
#   tcpdump_imm  the same in immediate mode, as odrsd opens its wake capture
#   domifstat    libvirt's interface counters instead of a capture: one
#                virsh session (one connection, as a daemon would hold) asked
#                "domifstat" once a second; the CPU of virsh and libvirtd
#
# The flood is build/flood (bench/flood.c) in client c1: one TCP ACK frame
# from c1's MAC and IP to web1's, through the lab's switch to node n1, whose
# br0 odrsd captures on (promiscuously), and on to the VM's tap. The VM's NIC
# link is set down first (virsh domif-setlink), so the TCG guest does not
# spend the machine's CPU on the frames; they still cross everything above.
#
# CPU is counted from the flood's start to TAIL s after its end (to catch
# work deferred past it, such as buffered capture blocks) and divided by the
# flood's duration, in % of one core: utime + stime of the measuring
# processes (cpu_pct; /proc/PID/stat, whose sum the kernel scales to the
# exact run time), and the whole machine (system_cpu_pct): the exact run time
# of every thread alive at the end (/proc/*/task/*/schedstat) plus the
# flood's own (flood_cpu_pct, which carries the kernel's work on the frames
# done in its context: forwarding, and each capture's BPF filter and copy).
# Compare with "none". /proc/stat's busy time is not used: with tick-based
# accounting and idle ticks stopped it is far off for work that comes in
# short bursts (it showed a whole core busy where threads ran 5 %).
#
# Output (RESULTS, default bench/results/):
#   activity.csv  rate,variant,achieved_pps,cpu_pct,frames_to_userspace,round,
#                 system_cpu_pct,sent_pps,filter_updates,dropped,flood_cpu_pct
#                 (achieved_pps: frames that reached n1, from its uplink's
#                 rx_packets; frames_to_userspace: over the whole flood, from
#                 odrsd's "frames" counter or tcpdump's "captured"; dropped:
#                 tcpdump's "dropped by kernel")
#   activity.txt  medians per rate and variant, the machine, the command
#   activity.png  CPU % of one core vs rate per variant (gnuplot)
#
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit.
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"0 10000 50000 100000"}
DURATION=${DURATION:-10}
RESULTS=${RESULTS:-$BENCH_DIR/results}
FLOOD=${FLOOD:-$LAB_ROOT/build/flood}
VM=web1 IP=198.18.0.10 MAC=52:54:00:12:00:10 MEM=96
VARIANTS="none odrsd tcpdump tcpdump_imm domifstat"
TAIL=1
HZ=$(getconf CLK_TCK)

[ -x "$FLOOD" ] || { echo "no $FLOOD: make build/flood"; exit 1; }
mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/activity.csv TXT=$RESULTS/activity.txt PNG=$RESULTS/activity.png

ticks() { # PID...: their utime + stime, in clock ticks
	local p s sum=0
	for p; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || { echo "no process $p"; return 1; }
		s=${s##*) }
		set -- $s
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}
# runtimes FILE: "TID NS" for every thread, NS its exact run time so far.
runtimes() {
	grep -H . /proc/[0-9]*/task/[0-9]*/schedstat 2>/dev/null | awk -F'[/: ]' '{ print $5, $7 }' > "$1"
}
rx_packets() { ip netns exec "$LAB_PREFIX-n1" cat /sys/class/net/up0/statistics/rx_packets; }
odrsd_counter() { lab_odrsctl n1 status | awk -F': ' -v k="$1" '$1 == k { print $2 }'; }
kv() { sed -n "s/.*\<$1=\([0-9.]*\).*/\1/p" <<<"$2"; } # KEY "k=v ..." -> v

# measure RATE [PID...]: one flood of DURATION s from c1 to the VM. Sets
# M_SECS (the flood's duration), M_SENT_PPS, M_ACH_PPS (frames that reached
# n1), M_CPU (of PIDs, empty without any), M_SYS (the machine) and M_FLOOD.
measure() {
	local rate=$1 p0 p1 rx0 rx1 out
	shift
	p0=$(ticks "$@") || fail "$p0"
	rx0=$(rx_packets)
	runtimes "$LAB_DIR/rt0"
	out=$(ip netns exec "$LAB_PREFIX-c1" "$FLOOD" -i eth0 -s "$SRC_MAC" -d "$MAC" \
		-S "$SRC_IP" -D "$IP" -r "$rate" -t "$DURATION") || fail "flood: $out"
	sleep "$TAIL"
	runtimes "$LAB_DIR/rt1"
	rx1=$(rx_packets)
	p1=$(ticks "$@") || fail "$p1"
	M_SECS=$(kv seconds "$out")
	M_SENT_PPS=$(kv pps "$out")
	[ "$(kv errors "$out")" = 0 ] || echo "   (flood: $out)"
	M_ACH_PPS=$(awk -v a="$rx0" -v b="$rx1" -v t="$M_SECS" 'BEGIN { printf "%.0f", (b - a) / t }')
	M_FLOOD=$(awk -v c="$(kv cpu "$out")" -v t="$M_SECS" 'BEGIN { printf "%.1f", c / t * 100 }')
	M_SYS=$(awk -v c="$(kv cpu "$out")" -v t="$M_SECS" '
		NR == FNR { a[$1] = $2; next }
		{ ns += $2 - ($1 in a ? a[$1] : 0) }
		END { printf "%.1f", (ns / 1e9 + c) / t * 100 }' "$LAB_DIR/rt0" "$LAB_DIR/rt1")
	M_CPU=
	[ $# = 0 ] || M_CPU=$(awk -v a="$p0" -v b="$p1" -v t="$M_SECS" -v hz="$HZ" \
		'BEGIN { printf "%.1f", (b - a) / hz / t * 100 }')
}

row() { # VARIANT RATE ROUND FRAMES FILTER_UPDATES DROPPED
	echo "$2,$1,$M_ACH_PPS,$M_CPU,$4,$3,$M_SYS,$M_SENT_PPS,$5,$6,$M_FLOOD" >> "$CSV"
	printf '%-11s %6s pps: reached %6s pps, cpu %5s %%, machine %5s %% (flood %s %%), %s frames to user space%s\n' \
		"$1" "$2" "$M_ACH_PPS" "${M_CPU:--}" "$M_SYS" "$M_FLOOD" "${4:--}" \
		"${5:+, $5 filter updates}${6:+, $6 dropped}"
}

run_none() { # ROUND
	local rate
	for rate in $RATES; do
		measure "$rate"
		row none "$rate" "$1" "" "" ""
	done
}

run_odrsd() { # ROUND
	local rate conf pid f0 u0
	conf=$(odrs_conf n1 "check_interval = 1s" "[policy]" "idle_timeout = 1h" "probe = none" \
		"[vm $VM]" "ip = $IP") &&
	lab_odrsd_start n1 "$conf" && odrs_wait_state n1 "$VM" running ||
		fail "odrsd did not start with $conf"
	pid=$(lab_odrsd_pid n1) || fail "no odrsd pid"
	sleep 2
	for rate in $RATES; do
		f0=$(odrsd_counter frames) u0=$(odrsd_counter filter_updates)
		measure "$rate" "$pid"
		row odrsd "$rate" "$1" "$(($(odrsd_counter frames) - f0))" \
			"$(($(odrsd_counter filter_updates) - u0))" ""
	done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
}

run_tcpdump() { # VARIANT ROUND [TCPDUMP OPTION...]
	local v=$1 r=$2 rate err=$LAB_DIR/tcpdump.err pid
	shift 2
	for rate in $RATES; do
		rm -f "$err"
		ip netns exec "$LAB_PREFIX-n1" tcpdump -i br0 "$@" -w /dev/null "tcp and host $IP" 2> "$err" &
		pid=$!
		lab_wait 10 grep -q listening "$err" || fail "tcpdump did not start: $(cat "$err")"
		measure "$rate" "$pid"
		kill -INT "$pid"
		wait "$pid"
		row "$v" "$rate" "$r" "$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$err")" "" \
			"$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$err")"
	done
}

run_domifstat() { # ROUND
	local rate fifo=$LAB_DIR/virsh.fifo out=$LAB_DIR/virsh.out virsh libvirtd feeder polls
	libvirtd=$(lab_node_exec n1 cat /run/libvirt/libvirtd.pid) || fail "no libvirtd pid"
	rm -f "$fifo" && mkfifo "$fifo" || fail "mkfifo $fifo"
	: > "$out"
	nsenter -t "$(cat "$LAB_DIR/n1/anchor.pid")" -m -n -- \
		virsh -q -c qemu:///system < "$fifo" > "$out" 2>&1 &
	virsh=$!
	exec 7> "$fifo"
	echo "domifstat $VM $IFACE" >&7
	lab_wait 10 grep -q rx_bytes "$out" || fail "virsh domifstat: $(cat "$out")"
	for rate in $RATES; do
		polls=$(grep -c rx_bytes "$out")
		( for _ in $(seq "$DURATION"); do echo "domifstat $VM $IFACE"; sleep 1; done ) >&7 &
		feeder=$!
		measure "$rate" "$virsh" "$libvirtd"
		wait "$feeder"
		sleep 0.5
		[ "$(($(grep -c rx_bytes "$out") - polls))" = "$DURATION" ] ||
			fail "virsh answered $(($(grep -c rx_bytes "$out") - polls)) of $DURATION polls"
		row domifstat "$rate" "$1" 0 "" ""
	done
	exec 7>&-
	wait "$virsh"
}

# Medians per (rate, variant):
# "rate variant achieved cpu frames machine filter_updates dropped flood"
medians() {
	local rate v c
	for rate in $RATES; do
		for v in $VARIANTS; do
			printf '%s %s' "$rate" "$v"
			for c in 3 4 5 7 9 10 11; do
				printf ' %s' "$(awk -F, -v r="$rate" -v v="$v" -v c="$c" \
					'NR > 1 && $1 == r && $2 == v && $c != "" { print $c }' "$CSV" | median)"
			done
			echo
		done
	done
}

summarize() {
	local med top
	med=$(medians)
	top=${RATES##* }
	{
		echo "odrs activity-measurement benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS round(s)," \
			"$DURATION s per rate, check_interval = 1s)"
		machine
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "flood: build/flood in c1, 54-byte TCP ACKs to $VM ($IP) through the lab switch" \
			"to n1's br0 and the VM's tap ($IFACE, link down)"
		echo
		printf '%7s %-11s %9s %6s %9s %7s %10s %9s %10s %8s\n' rate variant reached cpu_% \
			machine_% flood_% to_user to_user/s filt_upd/s dropped
		awk -v d="$DURATION" '
			function per_s(x) { return x == "-" ? "-" : sprintf("%.1f", x / d) }
			{ printf "%7s %-11s %9s %6s %9s %7s %10s %9s %10s %8s\n", $1, $2, $3, $4, $6, $9, $5,
				per_s($5), per_s($7), $8 }' <<<"$med"
		echo "(medians; rate = target frames/s; reached = frames/s that arrived at n1;"
		echo " cpu_% = the measuring processes (odrsd; tcpdump; virsh + libvirtd), % of one core;"
		echo " machine_% = every thread's run time, % of one core (2 cores = 200 %), including"
		echo " flood_% = the generator's own, which carries the kernel's work on the frames in its"
		echo " context: forwarding through the lab, and each capture's BPF filter and copy to its ring;"
		echo " to_user = frames handed to user space during the ${DURATION}-s flood, to_user/s per second;"
		echo " filt_upd/s = odrsd's capture filter swaps per second; dropped = tcpdump's kernel drops)"
		echo
		awk -v top="$top" -v d="$DURATION" '
			$1 == 0 { base[$2] = $4; mbase[$2] = $6 }
			$1 == top { cpu[$2] = $4; mach[$2] = $6; fr[$2] = $5; ach[$2] = $3; drop[$2] = $8; fu[$2] = $7 }
			END {
				printf "at %d frames/s (%.0f reached):\n", top, ach["odrsd"]
				printf "  odrsd: %s %% of one core (%s %% at rest), %.1f frames/s to user space,\n",
					cpu["odrsd"], base["odrsd"], fr["odrsd"] / d
				printf "  every frame to user space instead: tcpdump %s %% (%.0f frames/s),\n",
					cpu["tcpdump"], fr["tcpdump"] / d
				printf "    tcpdump in immediate mode %s %% (%.0f frames/s, %.0f dropped)\n",
					cpu["tcpdump_imm"], fr["tcpdump_imm"] / d, drop["tcpdump_imm"]
				printf "  libvirt counters polled once a second: %s %% (%s %% at rest)\n",
					cpu["domifstat"], base["domifstat"]
				printf "  machine: none %s %%, odrsd %s %%, tcpdump %s %%, tcpdump immediate %s %%, domifstat %s %%\n",
					mach["none"], mach["odrsd"], mach["tcpdump"], mach["tcpdump_imm"], mach["domifstat"]
			}' <<<"$med"
		echo
		echo "command: ROUNDS=$ROUNDS RATES=\"$RATES\" DURATION=$DURATION LAB_PREFIX=$LAB_PREFIX" \
			"bench/activity.sh (or make bench)"
	} > "$TXT"
	cat "$TXT"
}

plot() {
	local d=$LAB_DIR/plot v
	mkdir -p "$d"
	medians > "$d/all"
	for v in $VARIANTS; do
		awk -v v="$v" '$2 == v { print $1, $4, $6 }' "$d/all" > "$d/$v.dat"
	done
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal png size 1100,500 noenhanced
	set output "$PNG"
	set multiplot layout 1,2 title "Cost of measuring one VM's TCP activity ($ROUNDS round(s), medians)"
	set xlabel "flood to the VM, kframes/s"
	set grid
	set key top left
	set yrange [0:*]
	set ylabel "CPU of the measuring processes, % of one core"
	V = "$VARIANTS"
	plot for [i=2:words(V)] "$d/".word(V, i).".dat" \
		using (\$1 / 1000):2 with linespoints pt 7 lc i title word(V, i)
	set ylabel "CPU of the whole machine, % of one core"
	plot for [i=1:words(V)] "$d/".word(V, i).".dat" \
		using (\$1 / 1000):3 with linespoints pt 7 lc i title word(V, i)
	unset multiplot
	EOF
}

bench_lab "$VM" "$IP" "$MAC" "$MEM"
IFACE=$(lab_virsh n1 domiflist "$VM" | awk 'NF { print $1; exit }')
[ -n "$IFACE" ] || fail "no interface for $VM"
lab_virsh n1 domif-setlink "$VM" "$IFACE" down > /dev/null &&
	lab_virsh n1 domif-getlink "$VM" "$IFACE" | grep -q down || fail "$VM's link is not down"
SRC_MAC=$(ip -n "$LAB_PREFIX-c1" -br link show eth0 | awk '{ print $3 }')
SRC_IP=$(lab_client_ip c1)
echo "rate,variant,achieved_pps,cpu_pct,frames_to_userspace,round,system_cpu_pct,sent_pps,filter_updates,dropped,flood_cpu_pct" > "$CSV"

for r in $(seq 1 "$ROUNDS"); do
	step "round $r of $ROUNDS: rates $RATES, $DURATION s each"
	run_none "$r"
	run_odrsd "$r"
	run_tcpdump tcpdump "$r"
	run_tcpdump tcpdump_imm "$r" --immediate-mode
	run_domifstat "$r"
done

step "summary"
summarize
plot
echo "results in $RESULTS: activity.csv activity.txt activity.png"

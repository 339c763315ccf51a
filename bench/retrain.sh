#!/bin/bash
# Retraining the switches when the accept role moves (issue 7 and issue 8, item 5):
# how long the node that gains the role takes to announce N sleeping VMs'
# MACs, at retrain_rate frames/s, and whether the switch then sends every one
# of those MACs to it.
#
# Two nodes in cluster mode over a real etcd, N VMs (default 1000) that are
# hibernated from the start: each has a snapshot file in the shared
# snapshot_dir and no domain, which is what odrsd sees for a hibernated VM.
# For each RATE the role is moved to the other node (odrsctl accept move); the
# node that gains it logs a `retrain` event with the frames of its first burst
# and how long the burst took; the switch's fdb is then counted for those MACs
# on the new holder's port.
#
# A role move and each retrain_refresh are one sweep over the VMs at the rate,
# queueing nothing (issue 17): with N=100000 the burst takes N/rate s and
# the holder's memory stays flat (rss_kib: the new holder's VmRSS after the
# burst, against rss_before_kib, before the move, and rss_sweeping_kib, once
# the sweep has sent a tenth of the VMs' frames: what came with taking the
# role, not with the sweep). cpu_pct: the new holder's
# CPU time over the burst, in percent of one core. With REFRESH (a
# retrain_refresh, e.g. 20s; default 0, none) each round then waits for
# refresh sweeps worth half of the VMs more and takes the RSS again
# (rss_refresh_kib; "-" without REFRESH): a refresh never grows memory.
#
# Output (RESULTS, default bench/results/; TAG: retrain-TAG.*, default none):
#   retrain.csv  rate,vms,frames,ms,fps,fdb_on_holder,round,rss_kib,rss_before_kib,cpu_pct,rss_refresh_kib,
#                rss_sweeping_kib
#   retrain.txt  medians per rate, the machine, the load at start and end, the command
#   retrain.png  burst time and frames/s vs retrain_rate (gnuplot)
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

N=${N:-1000}
RATES=${RATES:-"1000 10000 100000"}
ROUNDS=${ROUNDS:-3}
RESULTS=${RESULTS:-$BENCH_DIR/results}
REFRESH=${REFRESH:-0}
TAG=${TAG:-}
OUT=$RESULTS/retrain${TAG:+-$TAG}
MEM=-
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

conf() { # NODE RATE
	odrs_conf "$1" "[policy]" "idle_timeout = 0" \
		"[cluster]" "backend = etcd" "etcd = http://198.18.2.1:2379" \
		"accept_term = 1h" "lease_ttl = 3s" "retrain_rate = $2" "retrain_delay = 0" \
		"retrain_refresh = $REFRESH"
	# Appended to the file odrs_conf printed the path of: sI at 198.18.100.0 + I.
	odrs_vm_sections "$N" 100 >> "$(lab_node_dir "$1")/odrs.conf"
}

holder_is() { lab_odrsctl n1 accept | grep -q "^accept: $1\$" && lab_odrsctl n2 accept | grep -q "^accept: $1\$"; }
sleeping() { lab_odrsctl "$1" status | awk '$1 == "sleeping:" { print $2 }'; }
last_retrain() { # NODE: "count ms" of its last retrain event
	grep '"event":"retrain"' "$(lab_node_dir "$1")/odrs/events.jsonl" | tail -n 1 |
		sed -n 's/.*"count":\([0-9]*\),"ms":\([0-9]*\).*/\1 \2/p'
}
frames_sent() { lab_odrsctl "$1" status | awk '$1 == "retrain_frames:" { print $2 }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }  # PID
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # PID: user and system time
col() { cut -d, -f"$1" "$LAB_DIR/r.csv" | grep -E '^[0-9.]+$' | median; } # FIELD: its median over the rate's rounds
fdb_count() { # PORT: how many of our MACs the switch has there
	ip netns exec "$LAB_PREFIX-sw" bridge fdb show br sw0 | awk -v p="$1" '$1 ~ /^52:54:01:/ && $3 == p' | wc -l
}

trap lab_down EXIT
step "raising lab '$LAB_PREFIX' (2 nodes, etcd) with $N hibernated VMs"
lab_up 2 0 > /dev/null || fail "lab_up"
lab_etcd_up || fail "etcd"
mkdir -p "$LAB_SHARED"
for i in $(seq 1 "$N"); do echo x > "$LAB_SHARED/s$i.odrs-save"; done
set -- $RATES
for n in n1 n2; do
	f=$(conf $n "$1") && lab_odrsd_start $n "$(lab_node_dir $n)/odrs.conf" || fail "odrsd on $n"
done
lab_wait "${START_TIMEOUT:-900}" eval '[ "$(sleeping n1)" = "$N" ] && [ "$(sleeping n2)" = "$N" ]' ||
	fail "not all $N VMs seen hibernated: $(sleeping n1) $(sleeping n2)"

mkdir -p "$RESULTS"
csv=$OUT.csv
echo "rate,vms,frames,ms,fps,fdb_on_holder,round,rss_kib,rss_before_kib,cpu_pct,rss_refresh_kib,rss_sweeping_kib" > "$csv"
for rate in $RATES; do
	for n in n1 n2; do conf $n "$rate" > /dev/null; lab_odrsctl $n reload > /dev/null || fail "reload $n"; done
	for round in $(seq 1 "$ROUNDS"); do
		cur=$(lab_odrsctl n1 accept | awk '$1 == "accept:" { print $2 }')
		to=n1; [ "$cur" = n1 ] && to=n2
		before=$(grep -c '"event":"retrain"' "$(lab_node_dir $to)/odrs/events.jsonl" 2>/dev/null)
		pid=$(lab_odrsd_pid $to) || fail "no odrsd on $to"
		rss0=$(rss_kib "$pid") cpu0=$(cpu_ticks "$pid") sent0=$(frames_sent $to)
		lab_odrsctl n1 accept move $to > /dev/null || fail "accept move $to"
		lab_wait 5 holder_is $to || fail "role not on $to"
		lab_wait $((N / rate + 60)) eval '[ "$(frames_sent $to)" -ge $((sent0 + N / 10)) ]' ||
			fail "$to did not sweep a tenth of the VMs"
		rss_sweep=$(rss_kib "$pid")
		lab_wait $((N / rate * 2 + 60)) eval '[ "$(grep -c "\"event\":\"retrain\"" "$(lab_node_dir $to)/odrs/events.jsonl")" -gt "$before" ]' ||
			fail "no retrain event on $to"
		cpu1=$(cpu_ticks "$pid")
		read -r frames ms <<< "$(last_retrain $to)"
		sleep 0.2
		fdb=$(fdb_count "sw-$to")
		fps=$(awk -v f="$frames" -v m="$ms" 'BEGIN { printf "%.0f", (m > 0 ? f * 1000 / m : 0) }')
		echo "rate $rate round $round: $frames frames in $ms ms ($fps/s), $fdb of $N MACs on sw-$to"
		rss=$(rss_kib "$pid")
		cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v m="$ms" 'BEGIN { printf "%.0f", (m > 0 ? t * 100000 / hz / m : 0) }')
		rss_refresh=-
		if [ "$REFRESH" != 0 ]; then
			sent=$(frames_sent $to)
			lab_wait $((N / rate + 120)) eval '[ "$(frames_sent $to)" -ge $((sent + N / 2)) ]' ||
				fail "no refresh sweep on $to after the burst"
			rss_refresh=$(rss_kib "$pid")
		fi
		echo "RSS $rss0 KiB before, $rss_sweep a tenth in, $rss after, $rss_refresh after refreshes;" \
			"CPU $cpu % of a core over the burst"
		echo "$rate,$N,$frames,$ms,$fps,$fdb,$round,$rss,$rss0,$cpu,$rss_refresh,$rss_sweep" >> "$csv"
	done
done

{
	echo "# Retraining $N sleeping VMs on an accept-role move (bench/retrain.sh)"
	echo "command: N=$N RATES=\"$RATES\" ROUNDS=$ROUNDS REFRESH=$REFRESH${TAG:+ TAG=$TAG} bench/retrain.sh"
	echo "$(machine | sed 's/; guest.*//'); no guests: hibernated VMs are snapshot files"
	echo "load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	printf '%-12s %-8s %-12s %-10s %-22s %s\n' retrain_rate frames "burst (ms)" "frames/s" "MACs on holder's port" \
		"RSS KiB before/a tenth in/after/refreshed, CPU %"
	for rate in $RATES; do
		awk -F, -v r="$rate" '$1 == r' "$csv" > "$LAB_DIR/r.csv"
		printf '%-12s %-8s %-12s %-10s %-22s %s\n' "$rate" "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6) of $N" \
			"$(col 9)/$(col 12)/$(col 8)/$(col 11), $(col 10)"
	done
} > "$OUT.txt"
cat "$OUT.txt"

command -v gnuplot > /dev/null || fail "gnuplot missing (make deps)"
gnuplot <<-EOF || echo "warning: gnuplot failed; no $OUT.png" >&2
	set terminal png size 800,500
	set output "$OUT.png"
	set termoption noenhanced
	set datafile separator ","
	set title "Retraining $N sleeping MACs on a role move ($ROUNDS rounds per rate)"
	set logscale x
	set xlabel "retrain_rate (frames/s)"
	set ylabel "burst ms"
	set y2label "achieved frames/s"
	set y2tics
	set logscale y
	set logscale y2
	set grid
	set key top center
	plot "$csv" every ::1 using 1:4 axes x1y1 with points pt 7 title "burst ms", \
	     "$csv" every ::1 using 1:5 axes x1y2 with points pt 5 title "frames/s achieved", \
	     x axes x1y2 with lines dt 2 title "frames/s asked"
EOF

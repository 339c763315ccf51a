#!/bin/bash
# Smaller snapshots: image size, save time and access time of one guest whose
# page cache is full (CACHE MiB of a disk's random data), for each shrink
# mode, ROUNDS each:
#
#   none      saved as it is
#   caches    the guest drops its page cache first
#   balloon   ... and the balloon takes back all but its used memory
#
# Before each round the guest reads its disk again, so the cache is full.
# Access is the SYN path (the client has a permanent ARP entry): curl's
# time_connect, as in access.sh.
#
# Output (RESULTS, default bench/results/):
#   shrink.csv   mode,round,image_bytes,shrunk_bytes,hibernate_ms,access_ms
#   shrink.txt   medians per mode and the command
#   shrink.png   image size and access time per mode (gnuplot)
# Needs root; raises its own lab under LAB_PREFIX (default odrsbench).
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

ROUNDS=${ROUNDS:-10}
CACHE=${CACHE:-128}
RESULTS=${RESULTS:-$BENCH_DIR/results}
VM=cache1 IP=198.18.0.30 MAC=52:54:00:12:00:30 MEM=$((96 + CACHE))
MODES="none caches balloon"
SETTLE=${SETTLE:-1}
mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/shrink.csv TXT=$RESULTS/shrink.txt PNG=$RESULTS/shrink.png

last_done() { # FIELD of the VM's last hibernate_done
	grep '"event":"hibernate_done"' "$EVENTS" | grep "\"vm\":\"$VM\"" | tail -n 1 |
		grep -o "\"$1\":[0-9]*" | cut -d: -f2
}

round() { # MODE ROUND
	local out connect
	odrs_guest_sh n1 "$VM" "dd if=/dev/vda of=/dev/null bs=1M count=$CACHE 2>/dev/null; grep Buffers /proc/meminfo" \
		> /dev/null || fail "refilling the cache"
	odrs_hibernate n1 "$VM"
	lab_router_client c1 "$IP" "$MAC"
	sleep "$SETTLE"
	out=$(lab_client_exec c1 curl -sS --max-time 20 -w '\n%{time_connect}' "http://$IP/") || fail "curl: $out"
	[ "$(head -n 1 <<<"$out")" = "hello from $VM" ] || fail "body: $out"
	connect=$(ms "$(tail -n 1 <<<"$out")")
	odrs_wait_state n1 "$VM" running 30 || fail "$VM not running after the access"
	echo "$1,$2,$(last_done bytes),$(last_done shrunk_bytes),$(last_done ms),$connect" >> "$CSV"
	printf '%-8s round %2d: image %4d MiB, shrunk %4d MiB, save %5d ms, access %7.1f ms\n' "$1" "$2" \
		"$(($(last_done bytes) / 1048576))" "$(($(last_done shrunk_bytes) / 1048576))" "$(last_done ms)" "$connect"
}

col_median() { # MODE COLUMN
	awk -F, -v m="$1" -v c="$2" 'NR > 1 && $1 == m { print $c }' "$CSV" | median
}

summarize() {
	local m
	{
		echo "odrs shrink benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds per mode, page cache $CACHE MiB)"
		machine
		echo
		printf '%-8s %10s %11s %9s %10s\n' mode image_MiB shrunk_MiB save_ms access_ms
		for m in $MODES; do
			printf '%-8s %10.1f %11.1f %9s %10s\n' "$m" \
				"$(awk -v b="$(col_median "$m" 3)" 'BEGIN { print b / 1048576 }')" \
				"$(awk -v b="$(col_median "$m" 4)" 'BEGIN { print b / 1048576 }')" \
				"$(col_median "$m" 5)" "$(col_median "$m" 6)"
		done
		echo "(medians; save_ms is hibernate_done's ms: the shrink step and the save; access_ms is curl's time_connect)"
		echo
		echo "command: ROUNDS=$ROUNDS CACHE=$CACHE LAB_PREFIX=$LAB_PREFIX bench/shrink.sh (or make bench)"
	} > "$TXT"
	cat "$TXT"
}

plot() {
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal png size 800,500
	set output "$PNG"
	set datafile separator ","
	set title "Shrink before save: guest with $CACHE MiB of page cache ($ROUNDS rounds each)"
	set xtics ("none" 1, "caches" 2, "balloon" 3)
	set xrange [0.5:3.5]
	set ylabel "image MiB"
	set y2label "access ms"
	set y2tics
	set yrange [0:*]
	set y2range [0:*]
	set grid ytics
	set key top right
	MODES = "none caches balloon"
	plot for [i=1:3] "< grep '^".word(MODES, i).",' $CSV" using (i - 0.1):(\$3 / 1048576) \
		with points pt 7 lc rgb "#2266cc" title (i == 1 ? "image MiB" : ""), \
	     for [i=1:3] "< grep '^".word(MODES, i).",' $CSV" using (i + 0.1):6 axes x1y2 \
		with points pt 5 lc rgb "#cc4422" title (i == 1 ? "access ms" : "")
	EOF
}

bench_lab "$VM" "$IP" "$MAC" "$MEM" 0 "$CACHE"
EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
echo "mode,round,image_bytes,shrunk_bytes,hibernate_ms,access_ms" > "$CSV"
for mode in $MODES; do
	step "shrink = $mode"
	conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "shrink = $mode" "[vm $VM]" "ip = $IP")
	lab_odrsd_start n1 "$conf" && odrs_wait_state n1 "$VM" running || fail "odrsd did not start"
	for r in $(seq 1 "$ROUNDS"); do round "$mode" "$r"; done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
done
step "summary"
summarize
plot
echo "results in $RESULTS: shrink.csv shrink.txt shrink.png"

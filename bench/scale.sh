#!/bin/bash
# odrsd at scale: how start-up, reload, `odrsctl list` and memory grow with
# the number of [vm] sections.
#
# One node n1 (single-node mode), no clients. The N VMs need no guests: each
# is a [vm sI] section (ip, mac; odrs_vm_sections) with no domain on the
# node's libvirtd and an empty image sI.odrs-save in snapshot_dir (N files
# there, nothing else), so each
# start-up inspect is a real libvirt lookup (the domain is not there) and a
# stat, and finds the VM hibernated (as bench/datapath.sh does).
#
# For each N, odrsd is started and timed from its launch:
#   status_s   until `odrsctl status` first answers (config parsed, table
#              built, control socket open, the loop serving);
#   asleep_s   until status shows `sleeping: N` (every VM inspected);
#   rss_mib    odrsd's resident memory then; per_vm_b is (RSS(N) - RSS(N0)) / (N - N0)
#              against the smallest N0 of the run: what one more sleeping VM costs;
#   reload_s   `odrsctl reload` of the unchanged file, from the request to its
#              answer (every section matched to its VM, the table rebuilt), the
#              median of RELOADS;
#   list_s     `odrsctl list` to its last row, rows counted (must be N), the
#              median of LISTS;
#   rss_reload_mib, per_vm_reload_b   RSS after the reloads, and per VM as
#              per_vm_b (against RSS(N0) after its start): what a reload's
#              peak leaves resident;
#   rss_list_mib, per_vm_list_b       the same after the lists.
# Each time is taken around an odrsctl run in the node's namespaces, which
# adds about 10-20 ms on this machine.
#
# Output in RESULTS (default bench/results), TAG names a run (default: the
# commit), so runs before and after a change sit side by side:
#   scale-TAG.csv   tag,vms,status_s,asleep_s,odrsd_cpu_s,rss_mib,per_vm_b,reload_s,list_s,list_rows,
#                   rss_reload_mib,per_vm_reload_b,rss_list_mib,per_vm_list_b
#   scale-TAG.txt   the same as a table; machine; load; command
#   scale.png       start time (status_s) against N, one line per scale-*.csv there
#
# Knobs: N="1000 10000 100000" RELOADS=3 LISTS=3 START_TIMEOUT=900 TAG=
# ASLEEP_MAX=START_TIMEOUT (stop waiting for every VM asleep after that long:
# asleep_s is then ">S (K asleep)", and reload and list run during the inspects)
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit.
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

NS=${N:-"1000 10000 100000"}
RELOADS=${RELOADS:-3}
LISTS=${LISTS:-3}
START_TIMEOUT=${START_TIMEOUT:-900}
ASLEEP_MAX=${ASLEEP_MAX:-$START_TIMEOUT}
RESULTS=${RESULTS:-$BENCH_DIR/results}
TAG=${TAG:-$(git -C "$LAB_ROOT" describe --always --dirty 2> /dev/null || echo run)}
MEM=-
HZ=$(getconf CLK_TCK)
mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/scale-$TAG.csv TXT=$RESULTS/scale-$TAG.txt PNG=$RESULTS/scale.png

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ticks() { # PID: utime + stime in clock ticks
	local s
	s=$(cat "/proc/$1/stat" 2> /dev/null) || return 1
	s=${s##*) }
	set -- $s
	echo $((${12} + ${13}))
}
median3() { sort -g | awk '{ x[NR] = $1 } END { printf "%.3f", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
status() { lab_odrsctl n1 status > "$LAB_DIR/status" 2>&1; }
sleeping() { awk -F': *' '$1 == "sleeping" { print $2 }' "$LAB_DIR/status"; }
alive() { kill -0 "$PID" 2> /dev/null || fail "odrsd exited; see $(lab_node_dir n1)/odrsd.log"; }
in_time() { [ "$(since "$T0" | cut -d. -f1)" -lt "$START_TIMEOUT" ] || fail "$1 after $START_TIMEOUT s"; }

# timed CMD...: the seconds CMD took (its output to $LAB_DIR/out); fails with it.
timed() {
	local t
	t=$(now)
	"$@" > "$LAB_DIR/out" 2>&1 || fail "$*: $(tail -n 3 "$LAB_DIR/out")"
	since "$t"
}

# measure N: one CSV row.
measure() {
	local n=$1 conf c0 status_s asleep_s cpu rss rss_reload rss_list reload_s list_s rows times
	find "$LAB_SHARED" -mindepth 1 -delete && odrs_snapshot_files "$n" || fail "snapshot files"
	conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "probe = none" "wake_on = syn") || fail "conf"
	odrs_vm_sections "$n" >> "$conf"
	T0=$(now)
	lab_odrsd_start n1 "$conf" > /dev/null 2>&1 || true
	PID=$(lab_odrsd_pid n1) || fail "odrsd did not start with $n VMs; see $(lab_node_dir n1)/odrsd.log"
	until status; do alive; in_time "no status"; sleep 0.05; done
	status_s=$(since "$T0")
	c0=$(ticks "$PID")
	until [ "$(sleeping)" = "$n" ]; do
		alive
		in_time "only $(sleeping) of $n VMs seen sleeping"
		[ "$(since "$T0" | cut -d. -f1)" -lt "$ASLEEP_MAX" ] || break
		sleep 0.1
		status || true
	done
	asleep_s=$(since "$T0")
	[ "$(sleeping)" = "$n" ] || asleep_s=">$asleep_s ($(sleeping) asleep)"
	cpu=$(awk -v a="$c0" -v b="$(ticks "$PID")" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz }')
	rss=$(rss_kib "$PID")
	times=
	for _ in $(seq "$RELOADS"); do times+="$(timed lab_odrsctl n1 reload) "; done
	reload_s=$(printf '%s\n' $times | median3)
	rss_reload=$(rss_kib "$PID")
	times=
	for _ in $(seq "$LISTS"); do times+="$(timed lab_odrsctl n1 list) "; done
	list_s=$(printf '%s\n' $times | median3)
	rss_list=$(rss_kib "$PID")
	rows=$(awk '$1 ~ /^s[0-9]+$/' "$LAB_DIR/out" | wc -l)
	[ "$rows" = "$n" ] || echo "warning: odrsctl list gave $rows rows of $n" >&2
	alive
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
	[ -n "${RSS0:-}" ] || { RSS0=$rss N0=$n; }
	echo "N = $n: status after $status_s s, all asleep after $asleep_s s (odrsd CPU $cpu s after" \
		"status), RSS $((rss / 1024)) MiB, reload $reload_s s (RSS $((rss_reload / 1024)) MiB)," \
		"list $list_s s ($rows rows; RSS $((rss_list / 1024)) MiB)"
	awk -v t="$TAG" -v n="$n" -v s="$status_s" -v a="$asleep_s" -v c="$cpu" -v r="$rss" -v r0="$RSS0" \
		-v n0="$N0" -v rl="$reload_s" -v l="$list_s" -v rows="$rows" -v rr="$rss_reload" \
		-v rs="$rss_list" 'function per_vm(x) { return n > n0 ? sprintf("%.0f", (x - r0) * 1024 / (n - n0)) : "-" }
		BEGIN {
		printf "%s,%d,%s,%s,%s,%.1f,%s,%s,%s,%d,%.1f,%s,%.1f,%s\n", t, n, s, a, c, r / 1024, per_vm(r),
			rl, l, rows, rr / 1024, per_vm(rr), rs / 1024, per_vm(rs) }' >> "$CSV"
}

plot() {
	local f args=
	for f in "$RESULTS"/scale-*.csv; do
		args+="${args:+, }\"$f\" using 2:3 with linespoints lw 1.5 pt 7"
		args+=" title \"$(basename "$f" .csv | sed 's/^scale-//')\""
	done
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal pngcairo size 800,500 noenhanced font ",10"
	set output "$PNG"
	set title "odrsd start-up: launch to the first odrsctl status answer"
	set datafile separator ","
	set key top left
	set grid
	set logscale xy
	set xlabel "[vm] sections (no domains, hibernated images)"
	set ylabel "seconds"
	plot $args
	EOF
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
trap lab_down EXIT
step "raising lab '$LAB_PREFIX' (1 node)"
lab_up 1 0 > /dev/null || fail "lab_up"
echo "tag,vms,status_s,asleep_s,odrsd_cpu_s,rss_mib,per_vm_b,reload_s,list_s,list_rows,rss_reload_mib,per_vm_reload_b,rss_list_mib,per_vm_list_b" > "$CSV"
for n in $(printf '%s\n' $NS | sort -n); do
	step "N = $n"
	measure "$n"
done
{
	echo "odrsd at scale, $TAG ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo "$(machine | sed 's/; guest.*//'); no guests: sleeping VMs are snapshot files"
	echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	column -t -s, "$CSV"
	echo
	echo "(status_s, asleep_s: from odrsd's launch; odrsd_cpu_s: from status to all asleep;"
	echo " per_vm_b: RSS bytes per VM beyond the smallest N; reload_s, list_s: medians of" \
		"$RELOADS and $LISTS; *_reload_*, *_list_*: RSS after the reloads and after the lists," \
		"per VM against the smallest N's RSS after its start)"
	echo "command: N=\"$NS\" RELOADS=$RELOADS LISTS=$LISTS ASLEEP_MAX=$ASLEEP_MAX TAG=$TAG" \
		"LAB_PREFIX=$LAB_PREFIX bench/scale.sh"
	echo "run time: $SECONDS s"
} > "$TXT"
cat "$TXT"
plot

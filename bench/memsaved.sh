#!/bin/bash
# Memory saved by automatic hibernation against the mean interval between
# accesses (the paper's Fig. 4: 54 % saved with a 2-minute idle_timeout and a
# 4-minute mean access interval over 30 minutes). Two parts:
#
#   simulation  build/memsim (bench/memsim.c, built here against
#               build/libwake.a): a node as a configuration file describes it,
#               read with wk_config_load, its idle checks, probes (judged by
#               wk_idle_judge), saves and restores done as odrsd/idle.c and
#               odrsd/wake.c do them; accesses to each VM a Poisson process
#               with mean interval I. idle_timeout T = 1, 2 and 5 min,
#               check_interval 10 s, probe = agent, SIM_VMS VMs on the node,
#               I from 0.5 to 30 min; over the paper's 30 minutes (all VMs
#               running at the start, SIM_RUNS runs) and in the long run
#               (6 h after a 30-minute warm-up). Each save and each wake
#               takes one of the durations the lab measured, drawn at random;
#               TCP activity reaches odrsd up to ACTIVITY_DELAY_MS late and is
#               lost when the activity capture is swapped meanwhile (memsim -X,
#               as odrsd does it; see memsim.c).
#   lab         time-compressed, on real TCG guests: one node, one client,
#               VMS guests of MEM MiB, odrsd with idle_timeout = T_LAB,
#               check_interval = CHECK, probe = PROBE; per ratio T/I in
#               RATIOS, PHASE seconds during which the client fetches
#               http://VM/ from each VM at exponential random intervals of
#               mean I = T_LAB / ratio (an access at the start, then a
#               Poisson schedule; curl runs in the background, so a slow wake
#               does not delay the next access). All VMs are running at the
#               start of each phase. Memory saved = the fraction of VM-time
#               spent hibernated inside the phase, weighted by each guest's
#               memory, from odrsd's event log: from hibernate_done to the
#               next wake_start (the moment an access makes odrsd start the
#               restore). Each point is set beside memsim run with the lab's
#               own odrsd configuration, the measured save and wake times, a
#               probe time fitted to the measured idle-detection delay, and
#               the phase's duration: with Poisson accesses, and replaying
#               the phase's own accesses.
#
# Output (RESULTS, default bench/results/):
#   memsaved.csv      label,T_s,I_s,T_over_I,check_s,save_s,restore_s,runs,vms,duration_s,
#                     warmup_s,saved_pct,stderr_pct,ideal_pct,approx_pct,hib_per_vm_h,woke_pct,
#                     lost_pct,early_pct,wait_ms
#                     (memsim's columns, see bench/memsim.c; labels sim30_T*m and
#                     long_T*m: the paper's setting; simlab, simlab_long: the lab's;
#                     simlab_noloss: the same without the activity lost on capture
#                     swaps; simtrace: simlab replaying each phase's own accesses
#                     (memsim -t); lab: measured (stderr over the VMs; save_s, restore_s
#                     the measured means; early_pct: idle hibernations sooner than
#                     idle_timeout + the confirmation after the VM's last access);
#                     paper: the paper's point)
#   memsaved-lab.csv  ratio,I_s,vm,mem_mib,window_s,hibernated_s,to_wake_done_s,
#                     hibernations,wakes,accesses,failed,waited (connect > 0.3 s)
#   memsaved.txt      the lab points beside the simulation, the measured
#                     overheads, the paper's point beside the simulation
#   memsaved.png      saved % against I (paper's setting) and against I/T (lab)
#
# Knobs: VMS=4 MEM=96 T_LAB=6 CHECK=1 PROBE=agent RATIOS="0.5 1 0.25" PHASE=180
#        SEED=1 SIM_RUNS=1000 SIM_VMS=8 LAB=1 (LAB=0: simulation only, with
#        SAVE_S=1.5 RESTORE_S=1.1 PROBE_S=0.2) KEEP=DIR (keep the parsed events,
#        access logs and configurations there)
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit.
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

VMS=${VMS:-4}
MEM=${MEM:-96}
T_LAB=${T_LAB:-6}
CHECK=${CHECK:-1}
PROBE=${PROBE:-agent}
RATIOS=${RATIOS:-"0.5 1 0.25"}
PHASE=${PHASE:-180}
SEED=${SEED:-1}
SIM_RUNS=${SIM_RUNS:-1000}
SIM_VMS=${SIM_VMS:-8}
LAB=${LAB:-1}
KEEP=${KEEP:-}
SAVE_S=${SAVE_S:-1.5} RESTORE_S=${RESTORE_S:-1.1} PROBE_S=${PROBE_S:-0.2}
RESULTS=${RESULTS:-$BENCH_DIR/results}
ROOT=$(cd "$BENCH_DIR/.." && pwd)
MEMSIM=$ROOT/build/memsim
CURL_MAX=30
# An access that waited this long for its connection found its VM asleep.
WAITED_S=0.3
# odrsd/odrsd.h's ACTIVITY_DELAY_MS (the activity capture's block timeout)
# and idle.c's confirmation after it, in seconds.
ACT_DELAY=$(awk '$2 == "ACTIVITY_DELAY_MS" { printf "%g", $3 / 1000 }' "$ROOT/odrsd/odrsd.h")
ACT_DELAY=${ACT_DELAY:-0.5}
CONFIRM_S=$(awk -v a="$ACT_DELAY" 'BEGIN { printf "%g", a + 0.05 }')
# The paper's setting: mean intervals in minutes, idle_timeouts in minutes.
SIM_I_MIN="0.5 0.75 1 1.5 2 2.5 3 4 5 6 8 10 12 15 20 25 30"
SIM_T_MIN="1 2 5"
# The lab's curve: I / T.
LAB_I_OVER_T="0.5 0.75 1 1.5 2 3 4 6 8 10 15"

mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/memsaved.csv
DETAIL=$RESULTS/memsaved-lab.csv
TXT=$RESULTS/memsaved.txt
PNG=$RESULTS/memsaved.png
TMP=$(mktemp -d /tmp/memsaved.XXXXXX) || exit 1
CMDLINE="VMS=$VMS MEM=$MEM T_LAB=$T_LAB CHECK=$CHECK PROBE=$PROBE RATIOS=\"$RATIOS\" PHASE=$PHASE SEED=$SEED SIM_RUNS=$SIM_RUNS SIM_VMS=$SIM_VMS LAB=$LAB LAB_PREFIX=$LAB_PREFIX bench/memsaved.sh"
START=$SECONDS
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

memsim_build "$MEMSIM" || { rm -rf "$TMP"; fail "memsim did not build"; }

keep() { [ -z "$KEEP" ] || { mkdir -p "$KEEP" && cp -r "$TMP"/. "$KEEP"/; }; }
vm_name() { echo "vm$1"; }
# dist: of the seconds on standard input, "n N, mean M s, median D s, p90 P s, max X s"
dist() {
	sort -g | awk '{ x[NR] = $1; s += $1 }
		END {
			if (!NR) { printf "n 0"; exit }
			r = int(0.9 * NR); if (r < 0.9 * NR) r++
			printf "n %d, mean %.2f s, median %.2f s, p90 %.2f s, min %.2f s, max %.2f s", NR, s / NR,
				NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2, x[r], x[1], x[NR]
		}'
}
# mean_of LIST: of a comma-separated list
mean_of() { tr , '\n' <<<"$1" | awk '{ s += $1 } END { printf "%.3f", NR ? s / NR : 0 }'; }
vm_ip() { echo "198.18.0.$((10 + $1))"; }
vm_mac() { printf '52:54:00:12:00:%02x' $((0x10 + $1)); }
now_us() { echo "${EPOCHREALTIME/./}"; }

# gen VM IP MEAN_S DUR_S SEED T0_US LOG: in the client's namespace, fetch
# http://IP/ at T0 and then at exponential intervals of mean MEAN_S until
# DUR_S, each fetch in the background; LOG gets one line per fetch:
# vm sched_s start_epoch_s http_code connect_s total_s
gen() {
	local vm=$1 ip=$2 mean=$3 dur=$4 seed=$5 t0=$6 log=$7 at w now
	awk -v seed="$seed" -v m="$mean" -v d="$dur" 'BEGIN {
		srand(seed); t = 0; print 0
		for (;;) { t += -m * log(1 - rand()); if (t >= d) break; printf "%d\n", t * 1e6 }
	}' | { while read -r at; do
		now=${EPOCHREALTIME/./}
		w=$((t0 + at - now))
		[ "$w" -gt 0 ] && sleep "$((w / 1000000)).$(printf %06d $((w % 1000000)))"
		(
			s=$EPOCHREALTIME
			out=$(curl -s -o /dev/null --max-time "$CURL_MAX" -w '%{http_code} %{time_connect} %{time_total}' \
				"http://$ip/")
			echo "$vm $((at / 1000)) $s ${out:-000 0 0}" >> "$log"
		) &
	done; wait; }
}

# events_tsv FROM_LINE: the event log's lines after FROM_LINE as
# vm event epoch_s ms restore_ms reason
events_tsv() {
	tail -n +"$(($1 + 1))" "$EVENTS" | jq -r 'select(.vm != null) |
		[.vm, .event, ((.ts[0:19] + "Z" | fromdate) + (.ts[20:23] | tonumber) / 1000),
		 (.ms // "-"), (.restore_ms // "-"), (.reason // "-")] | @tsv'
}

all_running() {
	local i vm
	for i in $(seq 1 "$VMS"); do
		vm=$(vm_name "$i")
		[ "$(odrs_state n1 "$vm")" = running ] || lab_odrsctl n1 wake "$vm" > /dev/null &
	done
	wait
	for i in $(seq 1 "$VMS"); do odrs_wait_state n1 "$(vm_name "$i")" running 60 || return 1; done
}

# phase RATIO INDEX: one ratio T/I; appends to DETAIL and to $TMP/ev.tsv, $TMP/acc.log
phase() {
	local ratio=$1 k=$2 mean t0 t1 mark i vm log pids=
	mean=$(awk -v t="$T_LAB" -v r="$ratio" 'BEGIN { printf "%.3f", t / r }')
	step "T/I = $ratio: I = $mean s, $PHASE s, $VMS VMs"
	all_running || fail "the VMs did not all run at the start of the phase"
	mark=$(wc -l < "$EVENTS")
	log=$TMP/acc-$k.log
	: > "$log"
	t0=$(($(now_us) + 200000))
	for i in $(seq 1 "$VMS"); do
		vm=$(vm_name "$i")
		lab_client_exec c1 bash -c "$(declare -f gen); CURL_MAX=$CURL_MAX; gen $vm $(vm_ip "$i") $mean $PHASE \
			$((SEED * 1000 + k * 10 + i)) $t0 $log" &
		pids="$pids $!"
	done
	sleep "$PHASE"
	# shellcheck disable=SC2086
	wait $pids
	t1=$(awk -v t="$t0" -v p="$PHASE" 'BEGIN { printf "%.6f", t / 1e6 + p }')
	t0=$(awk -v t="$t0" 'BEGIN { printf "%.6f", t / 1e6 }')
	events_tsv "$mark" > "$TMP/ev-$k.tsv"
	# The accesses as they happened, for memsim -t: VM, seconds after t0.
	awk -v t0="$t0" '{ printf "%s %.3f\n", $1, $3 - t0 }' "$log" > "$TMP/trace-$k.txt"
	# Per VM: hibernated time inside [t0, t1] (hibernate_done -> wake_start), the
	# same up to wake_done, counts; then the accesses.
	for i in $(seq 1 "$VMS"); do
		vm=$(vm_name "$i")
		awk -v vm="$vm" -v t0="$t0" -v t1="$t1" -v mem="${VM_MEM[$i]}" -v ratio="$ratio" -v I="$mean" \
			-v waited="$WAITED_S" '
			function clip(a, b) { a = a < t0 ? t0 : a; b = b > t1 ? t1 : b; return b > a ? b - a : 0 }
			f == 1 && $1 == vm {
				if ($2 == "hibernate_done") { slept = $3; hib++ }
				else if ($2 == "wake_start") { if (slept) saved += clip(slept, $3); wakes++ }
				else if ($2 == "wake_done") { if (slept) upper += clip(slept, $3); slept = 0 }
			}
			f == 2 && $1 == vm { acc++; if ($4 != 200) failed++; else if ($5 > waited) wt++ }
			END {
				if (slept) { saved += clip(slept, t1); upper += clip(slept, t1) }
				printf "%s,%s,%s,%d,%.3f,%.3f,%.3f,%d,%d,%d,%d,%d\n", ratio, I, vm, mem, t1 - t0, saved, upper,
					hib, wakes, acc, failed, wt
			}' f=1 "$TMP/ev-$k.tsv" f=2 "$log" >> "$DETAIL"
	done
	tail -n "$VMS" "$DETAIL" | awk -F, '{ s += $6; w += $5 } END { printf "   hibernated %.1f %% of the VM-time\n", 100 * s / w }'
	sed "s/^/$k /" "$TMP/ev-$k.tsv" >> "$TMP/ev.tsv"
	sed "s/^/$k /" "$log" >> "$TMP/acc.log"
}

lab_part() {
	local i conf lines=()
	trap 'lab_down; keep; rm -rf "$TMP"' EXIT
	step "raising lab '$LAB_PREFIX' (1 node, 1 client) and $VMS guests ($MEM MiB, TCG)"
	lab_up 1 1 > /dev/null || fail "lab_up"
	for i in $(seq 1 "$VMS"); do
		lab_vm_start n1 "$(vm_name "$i")" "$(vm_ip "$i")" "$(vm_mac "$i")" "$MEM" > /dev/null ||
			fail "$(vm_name "$i") did not start"
	done
	for i in $(seq 1 "$VMS"); do
		lab_vm_wait_ready n1 "$(vm_name "$i")" 180 || fail "$(vm_name "$i") did not come up"
		VM_MEM[i]=$(lab_virsh n1 dominfo "$(vm_name "$i")" | awk '/^Max memory/ { printf "%d", $3 / 1024 }')
		lines+=("[vm $(vm_name "$i")]" "ip = $(vm_ip "$i")" "mac = $(vm_mac "$i")")
	done
	EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
	LAB_CONF=$(odrs_conf n1 "check_interval = ${CHECK}s" "[policy]" "idle_timeout = ${T_LAB}s" \
		"probe = $PROBE" "${lines[@]}")
	lab_odrsd_start n1 "$LAB_CONF" || fail "odrsd did not start with $LAB_CONF"
	for i in $(seq 1 "$VMS"); do odrs_wait_state n1 "$(vm_name "$i")" running || fail "odrsd does not see vm$i"; done
	cp "$LAB_CONF" "$TMP/lab.conf"
	: > "$TMP/ev.tsv"
	: > "$TMP/acc.log"
	echo "ratio,I_s,vm,mem_mib,window_s,hibernated_s,to_wake_done_s,hibernations,wakes,accesses,failed,waited" > "$DETAIL"
	LAB_START=$SECONDS
	k=0
	for r in $RATIOS; do
		k=$((k + 1))
		phase "$r" "$k"
	done
	LAB_SECONDS=$((SECONDS - LAB_START))
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
	cp "$EVENTS" "$TMP/events.jsonl"
	measured_overheads
}

# From every phase's events: save (hibernate_done ms), wake (wake_done ms:
# trigger to running; restore_ms: the libvirt call), both as medians; and the
# idle detection delay: hibernate_start minus (the end of the VM's last
# access before it + T), median.
measured_overheads() {
	# Every save (hibernate_done ms) and every wake (wake_start to wake_done:
	# the time memsim's restore stands for) in seconds, for memsim to draw from.
	awk '$3 == "hibernate_done" { printf "%.3f\n", $5 / 1000 }' "$TMP/ev.tsv" > "$TMP/save.txt"
	awk '$3 == "wake_start" { at[$1 " " $2] = $4 }
		$3 == "wake_done" && at[$1 " " $2] { printf "%.3f\n", $4 - at[$1 " " $2]; at[$1 " " $2] = 0 }' \
		"$TMP/ev.tsv" > "$TMP/wake.txt"
	if [ ! -s "$TMP/save.txt" ] || [ ! -s "$TMP/wake.txt" ]; then fail "no save or no wake in the lab's event log"; fi
	SAVE_S=$(paste -sd, "$TMP/save.txt")
	RESTORE_S=$(paste -sd, "$TMP/wake.txt")
	SAVE_STATS=$(dist < "$TMP/save.txt")
	WAKE_STATS=$(dist < "$TMP/wake.txt")
	TRIGGER_STATS=$(awk '$3 == "wake_done" { printf "%.3f\n", $5 / 1000 }' "$TMP/ev.tsv" | dist)
	CALL_STATS=$(awk '$3 == "wake_done" { printf "%.3f\n", $6 / 1000 }' "$TMP/ev.tsv" | dist)
	# What should not happen: probes that failed, failed saves or wakes, failed accesses.
	LAB_TROUBLE=$(awk '$3 == "idle_skip" { n["idle_skip " $7]++ } $3 ~ /_failed$/ { n[$3]++ }
		END { for (k in n) printf "%s %d, ", k, n[k] }' "$TMP/ev.tsv")
	LAB_TROUBLE="${LAB_TROUBLE}failed accesses $(awk '$5 != 200' "$TMP/acc.log" | wc -l) of $(wc -l < "$TMP/acc.log")"
	# Idle detection: hibernate_start (reason idle) minus the end of the VM's
	# last access before it, minus T; and whether another VM's activity
	# filter changed (its hibernate_start or wake_done) from just before that
	# access to the capture's block timeout after it. acc.log: k vm sched
	# start code connect total; ev.tsv: k vm event epoch ms restore_ms reason.
	awk -v T="$T_LAB" -v blk="$ACT_DELAY" '
		f == 1 && $5 == 200 { n = ++na[$1 " " $2]; st[$1 " " $2, n] = $4; end[$1 " " $2, n] = $4 + $7 }
		f == 2 && ($3 == "hibernate_start" || $3 == "wake_done") { ne++; ek[ne] = $1; ev[ne] = $2; et[ne] = $4 }
		f == 2 && $3 == "hibernate_start" && $7 == "idle" {
			key = $1 " " $2; last = 0
			for (j = 1; j <= na[key]; j++) if (end[key, j] < $4 && end[key, j] > last) { last = end[key, j]; a = st[key, j] }
			if (!last) next
			swap = 0
			for (i = 1; i < ne; i++)
				if (ek[i] == $1 && ev[i] != $2 && et[i] >= a - 0.1 && et[i] <= last + blk + 0.1) swap = 1
			printf "%.3f %d %s\n", $4 - last - T, swap, $1
		}' f=1 "$TMP/acc.log" f=2 "$TMP/ev.tsv" > "$TMP/detect.txt"
	# The confirmation alone waits CONFIRM_S after the check: a hibernation
	# sooner than that after idle_timeout means odrsd missed the last access.
	DETECT_STATS=$(awk -v c="$CONFIRM_S" '$1 >= c { print $1 }' "$TMP/detect.txt" | dist)
	DETECT_MEAN=$(awk -v c="$CONFIRM_S" '$1 >= c { s += $1; n++ } END { printf "%.2f", n ? s / n : 0 }' "$TMP/detect.txt")
	EARLY=$(awk -v c="$CONFIRM_S" '$1 < c { n++; w += $2; if (!m || $1 < m) m = $1 }
		END { printf "%d of %d idle hibernations, %d of them with another VM'"'"'s hibernate_start or wake_done" \
			" (a swap of the activity capture) within the block timeout of that access", n, NR, w }' "$TMP/detect.txt")
	# memsim's -P: what the mean detection delay leaves after the tick, the
	# confirmation and the capture's lateness (each half on average).
	PROBE_S=$(awk -v d="$DETECT_MEAN" -v c="$CHECK" -v p="$PROBE" -v cf="$CONFIRM_S" -v blk="$ACT_DELAY" \
		'BEGIN { x = d - c / 2 - cf - blk / 2; printf "%.2f", (p == "none" || x < 0) ? 0 : x }')
	WAITED_CONNECT=$(awk -v w="$WAITED_S" '$5 == 200 && $6 > w { print $6 * 1000 }' "$TMP/acc.log" | median)
	echo "   save $SAVE_STATS; wake $WAKE_STATS; idle detection delay $DETECT_STATS -> probe ~ $PROBE_S s;" \
		"early: $EARLY"
}

# The lab's points as memsim rows (label lab), weighted by memory.
lab_rows() {
	local r k=0 early
	for r in $RATIOS; do
		k=$((k + 1))
		early=$(awk -v k="$k" -v c="$CONFIRM_S" '$3 == k { n++; if ($1 < c) e++ }
			END { printf "%.1f", n ? 100 * e / n : 0 }' "$TMP/detect.txt")
		awk -F, -v r="$r" -v T="$T_LAB" -v c="$CHECK" -v S="$(mean_of "$SAVE_S")" -v R="$(mean_of "$RESTORE_S")" \
			-v P="$PROBE_S" -v probe="$PROBE" -v ph="$PHASE" -v early="$early" -v cf="$CONFIRM_S" -v blk="$ACT_DELAY" '
			NR > 1 && $1 == r {
			n++; I = $2; f[n] = $6 / $5; ws += $4 * $6; ww += $4 * $5; hib += $8; acc += $10; wt += $12
		} END {
			m = ws / ww; for (i = 1; i <= n; i++) v += (f[i] - m) ^ 2
			se = n > 1 ? sqrt(v / (n - 1) / n) : 0
			tau = T + blk / 2 + c / 2 + cf + (probe == "none" ? 0 : P)
			approx = exp(-S / I) / (exp(tau / I) - 1 + (S + R) / I + exp(-S / I))
			printf "lab,%g,%g,%.4f,%g,%g,%g,1,%d,%g,0,%.2f,%.2f,%.2f,%.2f,%.2f,%.1f,,%s\n", T, I, T / I, c, S, R, n,
				ph, 100 * m, 100 * se, 100 * exp(-T / I), 100 * approx, hib / (n * ph / 3600),
				acc ? 100 * wt / acc : 0, early
		}' "$DETAIL"
	done
}

# simulate LABEL CONFIG "I_S..." DURATION WARMUP RUNS [MEMSIM ARGS...]: memsim's rows, no header
simulate() {
	"$MEMSIM" -c "$2" -I "$3" -d "$4" -w "$5" -n "$6" -r "$SEED" -S "$SAVE_S" -R "$RESTORE_S" \
		-P "$PROBE_S" -A "$ACT_DELAY" -l "$1" "${@:7}" | tail -n +2
}

sim_part() {
	local t i_s conf lab_i
	step "simulation: T = $SIM_T_MIN min, I = $SIM_I_MIN min, $SIM_VMS VMs, save $(mean_of "$SAVE_S") s, wake $(mean_of "$RESTORE_S") s (means), probe $PROBE_S s"
	i_s=$(for i in $SIM_I_MIN; do awk -v i="$i" 'BEGIN { printf "%g ", i * 60 }'; done)
	for t in $SIM_T_MIN; do
		conf=$TMP/sim-T${t}m.conf
		{
			printf '[odrsd]\nnode = sim\n[policy]\nidle_timeout = %sm\nprobe = agent\n' "$t"
			for i in $(seq 1 "$SIM_VMS"); do printf '[vm s%d]\nip = 198.18.0.%d\n' "$i" $((100 + i)); done
		} > "$conf"
		simulate "sim30_T${t}m" "$conf" "$i_s" 1800 0 "$SIM_RUNS" -X >> "$CSV" || fail "memsim"
		simulate "long_T${t}m" "$conf" "$i_s" 21600 1800 $((SIM_RUNS / 10)) -X >> "$CSV" || fail "memsim"
	done
	[ "$LAB" = 1 ] || return 0
	lab_i=$(for i in $LAB_I_OVER_T; do awk -v i="$i" -v t="$T_LAB" 'BEGIN { printf "%g ", i * t }'; done)
	step "simulation of the lab: its odrsd configuration, I = T x ($LAB_I_OVER_T), $PHASE s"
	# As odrsd is (-X: activity lost when the capture is swapped), and without that loss.
	simulate simlab "$TMP/lab.conf" "$lab_i" "$PHASE" 0 "$SIM_RUNS" -X >> "$CSV" || fail "memsim"
	simulate simlab_noloss "$TMP/lab.conf" "$lab_i" "$PHASE" 0 "$SIM_RUNS" >> "$CSV" || fail "memsim"
	simulate simlab_long "$TMP/lab.conf" "$lab_i" 3660 60 $((SIM_RUNS / 10)) -X >> "$CSV" || fail "memsim"
	# Each phase's own accesses, replayed.
	k=0
	for r in $RATIOS; do
		k=$((k + 1))
		simulate simtrace "$TMP/lab.conf" "$(awk -v t="$T_LAB" -v r="$r" 'BEGIN { printf "%g", t / r }')" \
			"$PHASE" 0 "$SIM_RUNS" -X -t "$TMP/trace-$k.txt" >> "$CSV" || fail "memsim"
	done
}

# pm ROW: its saved_pct and stderr_pct as "X+-Y"
pm() { awk -F, '{ printf "%.1f+-%.1f", $12, $13 }' <<<"$1"; }

# row LABEL I_S: the CSV row of that label at that I
row() { awk -F, -v l="$1" -v i="$2" '$1 == l && $3 + 0 == i + 0' "$CSV" | head -n 1; }

summarize() {
	local r I lab sim s30 t2 p
	{
		echo "odrs memory saved against the access interval ($(date -u +%Y-%m-%dT%H:%MZ))"
		machine
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo
		if [ "$LAB" = 1 ]; then
			echo "lab: $VMS guests of $MEM MiB, idle_timeout = ${T_LAB}s, check_interval = ${CHECK}s, probe = $PROBE," \
				"$PHASE s per ratio (${LAB_SECONDS}s in all), Poisson accesses (curl over HTTP) from one client"
			echo "measured: save (hibernate_done ms): $SAVE_STATS"
			echo "  wake (wake_start to wake_done): $WAKE_STATS"
			echo "    the restore call alone (restore_ms): $CALL_STATS"
			echo "    trigger to running (wake_done ms, includes a save still running when the access came): $TRIGGER_STATS"
			echo "  idle detection (hibernate_start minus the end of the VM's last access minus idle_timeout," \
				"where at least the ${CONFIRM_S} s confirmation): $DETECT_STATS"
			echo "    (expected: check_interval/2 + ${CONFIRM_S} s confirmation + up to ${ACT_DELAY} s capture lateness + probe," \
				"on average; memsim's probe time set to $PROBE_S s from the mean)"
			echo "  hibernated sooner than idle_timeout + ${CONFIRM_S} s after the VM's last access (odrsd missed it):"
			echo "    $EARLY"
			echo "  memsim draws each save and each wake from the durations above"
			echo "  accesses that found their VM asleep (connect > ${WAITED_S}s) connected after $WAITED_CONNECT ms (median)"
			echo
			printf '%-5s %6s %11s %11s %10s %9s %9s %8s %7s\n' "T/I" "I (s)" "lab %" "sim %" "same acc %" \
				"no loss %" "long %" "ideal %" "T=2m %"
			for r in $RATIOS; do
				lab=$(awk -F, -v r="$r" '$1 == "lab" && $4 + 0 == r + 0' "$CSV")
				I=$(cut -d, -f3 <<<"$lab")
				t2=$(row sim30_T2m "$(awk -v r="$r" 'BEGIN { print 120 / r }')")
				printf '%-5s %6s %11s %11s %10s %9s %9s %8s %7s\n' "$r" "$I" "$(pm "$lab")" "$(pm "$(row simlab "$I")")" \
					"$(row simtrace "$I" | cut -d, -f12)" \
					"$(row simlab_noloss "$I" | cut -d, -f12)" "$(row simlab_long "$I" | cut -d, -f12)" \
					"$(cut -d, -f14 <<<"$lab")" "${t2:+$(cut -d, -f12 <<<"$t2")}"
			done
			echo "(memory saved; lab: memory-weighted, +- the standard error over the VMs; sim: memsim with the lab's" \
				"odrsd.conf, the measured save and wake times, ${PHASE}s from all running, $SIM_RUNS runs, +- its"
			echo " standard error, activity lost on capture swaps as odrsd does (-X); same acc: the same, replaying the" \
				"phase's own accesses (memsim -t); no loss: sim without -X; long: sim in the long run (1 h after 1 min);"
			echo " ideal: e^(-T/I); T=2m: memsim in the paper's setting (30 min) at the same ratio)"
			echo
			printf '%-5s %6s %18s %16s %26s\n' "T/I" "I (s)" "hib/VM-h" "woke %" "early %"
			printf '%-5s %6s %18s %16s %26s\n' "" "" "lab / same acc" "lab / same acc" "lab / same acc / no loss"
			for r in $RATIOS; do
				lab=$(awk -F, -v r="$r" '$1 == "lab" && $4 + 0 == r + 0' "$CSV")
				I=$(cut -d, -f3 <<<"$lab")
				sim=$(row simtrace "$I")
				printf '%-5s %6s %18s %16s %26s\n' "$r" "$I" "$(cut -d, -f16 <<<"$lab") / $(cut -d, -f16 <<<"$sim")" \
					"$(cut -d, -f17 <<<"$lab") / $(cut -d, -f17 <<<"$sim")" \
					"$(cut -d, -f19 <<<"$lab") / $(cut -d, -f19 <<<"$sim") / $(row simlab_noloss "$I" | cut -d, -f19)"
			done
			echo "(same acc: memsim replaying the phase's accesses, with -X; no loss: memsim without -X, Poisson accesses;" \
				"hib/VM-h: hibernations per VM and hour;"
			echo " woke: accesses that found their VM not running (lab: connect > ${WAITED_S}s);" \
				"early: idle hibernations sooner than idle_timeout + ${CONFIRM_S} s after the VM's last access)"
			echo "lab trouble: $LAB_TROUBLE"
			awk -F, 'NR > 1 { w += $4 * $5; s += $4 * $6; u += $4 * $7 }
				END { printf "counting the restore as saved too (to wake_done): %.1f %% instead of %.1f %% over all phases\n",
					100 * u / w, 100 * s / w }' "$DETAIL"
			echo
		fi
		echo "the paper's setting: idle_timeout 2 min, check_interval 10 s, probe agent, $SIM_VMS VMs," \
			"save $(mean_of "$SAVE_S") s, wake $(mean_of "$RESTORE_S") s (means${LABSRC}), probe $PROBE_S s"
		printf '%8s' "I (min)"
		for p in sim30_T1m sim30_T2m long_T2m sim30_T5m; do printf ' %13s' "$p"; done
		printf ' %13s\n' "e^(-2/I)"
		for I in $SIM_I_MIN; do
			printf '%8s' "$I"
			for p in sim30_T1m sim30_T2m long_T2m sim30_T5m; do
				printf ' %13s' "$(row "$p" "$(awk -v i="$I" 'BEGIN { print i * 60 }')" | cut -d, -f12)"
			done
			printf ' %13s\n' "$(row sim30_T2m "$(awk -v i="$I" 'BEGIN { print i * 60 }')" | cut -d, -f14)"
		done
		echo "(memory saved, %; sim30: 30 minutes from all running, $SIM_RUNS runs; long: 6 h after 30 min, $((SIM_RUNS / 10)) runs)"
		s30=$(row sim30_T2m 240)
		echo "paper (Fig. 4): 54 % at T = 2 min, I = 4 min; memsim: $(cut -d, -f12 <<<"$s30") ± $(cut -d, -f13 <<<"$s30") %" \
			"over 30 minutes, $(row long_T2m 240 | cut -d, -f12) % in the long run;" \
			"e^(-1/2) = $(cut -d, -f14 <<<"$s30") %; with the overheads (renewal approximation)" \
			"$(cut -d, -f15 <<<"$s30") %"
		echo
		echo "command: $CMDLINE"
		echo "took $((SECONDS - START)) s"
	} > "$TXT"
	cat "$TXT"
}

plot() {
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal pngcairo noenhanced size 1200,520 font ",10"
	set output "$PNG"
	set datafile separator ","
	set multiplot layout 1,2 title "Memory saved by automatic hibernation, Poisson accesses (odrs, cf. the paper's Fig. 4)"
	set grid
	set key bottom right
	set yrange [0:100]
	set ylabel "memory saved (% of VM-time hibernated)"
	set logscale x
	set title "the paper's setting (memsim: check 10 s, probe $PROBE_S s, save $(printf %.1f "$(mean_of "$SAVE_S")") s, wake $(printf %.1f "$(mean_of "$RESTORE_S")") s, means)"
	set xlabel "mean interval between accesses I (min)"
	set xrange [0.45:33]
	set xtics (0.5, 1, 2, 4, 8, 15, 30)
	plot for [t in "1 2 5"] "< grep '^sim30_T".t."m,' $CSV" using (\$3/60):12 with linespoints pt 7 ps 0.5 lw 2 \
	       title "idle_timeout ".t." min, 30 min", \
	     "< grep '^long_T2m,' $CSV" using (\$3/60):12 with lines dt 2 lw 2 lc rgb "#444444" title "idle_timeout 2 min, long run", \
	     [0.5:30] 100 * exp(-2 / x) with lines dt 3 lw 2 lc rgb "#999999" title "e^(-T/I), T = 2 min", \
	     "-" using 1:2 with points pt 3 ps 3 lw 3 lc rgb "#cc0000" title "the paper: 54 % (T = 2 min, I = 4 min)"
	4,54
	e
	set title "time-compressed lab (T = ${T_LAB} s, check ${CHECK} s, ${PHASE} s per point) against the ratio"
	set xlabel "I / T (mean access interval over idle_timeout)"
	set xrange [0.45:17]
	set xtics (0.5, 1, 2, 4, 8, 15)
	plot 100 * exp(-1 / x) with lines dt 3 lw 2 lc rgb "#999999" title "e^(-T/I)", \
	     "< grep '^sim30_T2m,' $CSV" using (\$3/\$2):12 with lines lw 2 lc rgb "#2266cc" title "memsim, paper's setting (T = 2 min)", \
	     "< grep '^simlab,' $CSV" using (\$3/\$2):12 with linespoints pt 6 lw 2 lc rgb "#22aa44" title "memsim, the lab's config and overheads, ${PHASE} s", \
	     "< grep '^simlab_long,' $CSV" using (\$3/\$2):12 with lines dt 2 lw 2 lc rgb "#22aa44" title "the same, long run", \
	     "< grep '^simtrace,' $CSV" using (\$3/\$2):12 with points pt 4 ps 2 lw 2 lc rgb "#22aa44" title "memsim replaying the lab's accesses", \
	     "< grep '^lab,' $CSV" using (\$3/\$2):12:13 with yerrorbars pt 7 ps 1.5 lw 2 lc rgb "#cc4422" title "lab, measured (+- s.e. over VMs)", \
	     "-" using 1:2 with points pt 3 ps 3 lw 3 lc rgb "#cc0000" title "the paper"
	2,54
	e
	unset multiplot
	EOF
}

echo "label,T_s,I_s,T_over_I,check_s,save_s,restore_s,runs,vms,duration_s,warmup_s,saved_pct,stderr_pct,ideal_pct,approx_pct,hib_per_vm_h,woke_pct,lost_pct,early_pct,wait_ms" > "$CSV.new"
if [ "$LAB" = 1 ]; then
	lab_part
	lab_rows >> "$CSV.new"
	LABSRC=", drawn from the lab's"
else
	LABSRC=
	trap 'keep; rm -rf "$TMP"' EXIT
fi
mv "$CSV.new" "$CSV"
echo "paper,120,240,0.5000,,,,,,1800,0,54,,60.65,,,,," >> "$CSV"
sim_part
step "summary"
summarize
plot
[ "$LAB" = 1 ] && LABCSV=memsaved-lab.csv || LABCSV=
echo "results in $RESULTS: memsaved.csv $LABCSV memsaved.txt memsaved.png"

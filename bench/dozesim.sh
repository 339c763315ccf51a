#!/bin/bash
# The two-tier model (bench/memsim.c): memory saved against the mean access
# interval when idle VMs doze first and are hibernated after hibernate_after,
# beside plain hibernation, plain doze and the paper's 54 % (Fig. 4), and what
# each costs the first access after a sleep (the mean wait until the VM runs).
#
# The paper's setting, as memsaved.sh simulates it: idle_timeout 2 min,
# check_interval 10 s, probe = agent, SIM_VMS VMs, 30 minutes from all running
# (SIM_RUNS runs), accesses to each VM Poisson with mean I from 0.5 to 60 min.
# Per mode, one [policy] sleep line: hibernate; doze; doze_then_hibernate with
# hibernate_after = each of AFTER_MIN. Save and wake times as memsaved.sh's lab
# measured them (SAVE_S, RESTORE_S); the doze and its resume as access.sh's doze
# rows measured them (DOZE_S, RESUME_S). A dozing VM counts FREED of its memory
# as saved: FREED_DISK for swap on a disk (the share of guest RAM out of QEMU's
# RSS), FREED_ZRAM for swap on zram (net of what zram keeps, compressed, in RAM).
#
# Output (RESULTS, default bench/results/):
#   dozesim.csv   memsim's columns (bench/memsim.c), label = the mode
#                 (hibernate, doze_disk, doze_zram, d2h_Hm_disk, d2h_Hm_zram)
#   dozesim.txt   memory saved and the first access's wait, per I, per mode
#
# Knobs: SIM_RUNS=400 SIM_VMS=8 SEED=1 AFTER_MIN="5 15" SAVE_S=1.83 RESTORE_S=1.42
#        DOZE_S=1.5 RESUME_S=0.05 FREED_DISK=0.72 FREED_ZRAM=0.46
# No lab, no VM: a simulation only (root for lib.sh's checks alone).
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

SIM_RUNS=${SIM_RUNS:-400}
SIM_VMS=${SIM_VMS:-8}
SEED=${SEED:-1}
AFTER_MIN=${AFTER_MIN:-"5 15"}
SAVE_S=${SAVE_S:-1.83} RESTORE_S=${RESTORE_S:-1.42}
DOZE_S=${DOZE_S:-1.5} RESUME_S=${RESUME_S:-0.05}
FREED_DISK=${FREED_DISK:-0.72} FREED_ZRAM=${FREED_ZRAM:-0.46}
RESULTS=${RESULTS:-$BENCH_DIR/results}
I_MIN="0.5 1 2 4 8 15 30 60"
MEMSIM=$(cd "$BENCH_DIR/.." && pwd)/build/memsim
CSV=$RESULTS/dozesim.csv
TXT=$RESULTS/dozesim.txt
CMDLINE="SIM_RUNS=$SIM_RUNS SIM_VMS=$SIM_VMS SEED=$SEED AFTER_MIN=\"$AFTER_MIN\" SAVE_S=$SAVE_S RESTORE_S=$RESTORE_S DOZE_S=$DOZE_S RESUME_S=$RESUME_S FREED_DISK=$FREED_DISK FREED_ZRAM=$FREED_ZRAM bench/dozesim.sh"
TMP=$(mktemp -d /tmp/dozesim.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$RESULTS" || exit 1
memsim_build "$MEMSIM" || fail "memsim did not build"

# conf NAME SLEEP_LINES...: the paper's node, with these lines in [policy]
conf() {
	local f=$TMP/$1.conf i
	shift
	{
		printf '[odrsd]\nnode = sim\n[policy]\nidle_timeout = 2m\nprobe = agent\n'
		printf '%s\n' "$@"
		for i in $(seq 1 "$SIM_VMS"); do printf '[vm s%d]\nip = 198.18.0.%d\n' "$i" $((100 + i)); done
	} > "$f"
	echo "$f"
}
# sim LABEL CONFIG FREED: memsim's rows, no header
sim() {
	"$MEMSIM" -c "$2" -I "$i_s" -d 1800 -n "$SIM_RUNS" -r "$SEED" -S "$SAVE_S" -R "$RESTORE_S" -P 0 \
		-D "$DOZE_S" -U "$RESUME_S" -F "$3" -X -l "$1" | tail -n +2
}

i_s=$(for i in $I_MIN; do awk -v i="$i" 'BEGIN { printf "%g ", i * 60 }'; done)
step "simulation: hibernate, doze, doze_then_hibernate (hibernate_after $AFTER_MIN min), I = $I_MIN min"
modes="hibernate doze_disk doze_zram"
{
	"$MEMSIM" -c "$(conf hibernate "sleep = hibernate")" -I 60 -n 1 | head -n 1
	sim hibernate "$(conf hibernate "sleep = hibernate")" 1
	sim doze_disk "$(conf doze "sleep = doze")" "$FREED_DISK"
	sim doze_zram "$TMP/doze.conf" "$FREED_ZRAM"
	for h in $AFTER_MIN; do
		f=$(conf "d2h$h" "sleep = doze_then_hibernate" "hibernate_after = ${h}m")
		sim "d2h_${h}m_disk" "$f" "$FREED_DISK"
		sim "d2h_${h}m_zram" "$f" "$FREED_ZRAM"
	done
} > "$CSV" || fail "memsim"
for h in $AFTER_MIN; do modes="$modes d2h_${h}m_disk d2h_${h}m_zram"; done

# cell MODE I_S COLUMN: that column of the mode's row at I
cell() { awk -F, -v l="$1" -v i="$2" -v c="$3" '$1 == l && $3 + 0 == i + 0 { print $c }' "$CSV"; }
# table COLUMN: that column per I (rows) and mode (columns)
table() {
	local i m
	printf '%-8s' "I (min)"
	for m in $modes; do printf ' %14s' "$m"; done
	echo
	for i in $I_MIN; do
		printf '%-8s' "$i"
		for m in $modes; do printf ' %14s' "$(cell "$m" "$(awk -v i="$i" 'BEGIN { print i * 60 }')" "$1")"; done
		echo
	done
}
{
	echo "odrs two-tier sleep, simulated ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo "command: $CMDLINE"
	echo "the paper's setting: idle_timeout 2 min, check_interval 10 s, probe agent, $SIM_VMS VMs, 30 min from all running, $SIM_RUNS runs"
	echo "save $SAVE_S s, restore $RESTORE_S s, doze $DOZE_S s, resume $RESUME_S s; a dozing VM frees $FREED_DISK of its memory (disk swap), $FREED_ZRAM (zram)"
	echo
	echo "memory saved, % (the paper: 54 % at I = 4 min, hibernating)"
	table 12
	echo
	echo "mean wait of the first access to a sleeping VM until it runs, ms"
	table 20
} > "$TXT"
cat "$TXT"

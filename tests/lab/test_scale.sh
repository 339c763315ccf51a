#!/bin/bash
# odrsd with 100,000 VMs (issue 17), on one node, no guests: each VM is a
# [vm sI] section with no domain on the node and an image sI.odrs-save in
# snapshot_dir (tests/lab/odrs.sh: odrs_vm_sections, odrs_snapshot_files), so
# every start-up inspect is a real libvirt lookup and finds it hibernated.
#  1. start: odrsctl status answers within STATUS_MAX s of the launch (a
#     quadratic step in the configuration loader took 37 s), and the
#     start-up inspects get on: SLEEPING_MIN VMs asleep within SLEEPING_MAX s
#     (each inspect reading the whole snapshot_dir put 296 to sleep in 60 s);
#     not all of them: the wake capture's filter, rebuilt after each finished
#     inspect, still makes the rest take about a minute (issue 17's filter part);
#  2. reload of the unchanged file within RELOAD_MAX s (a pairwise step: 78 s);
#  3. odrsctl list returns whole, 100,000 rows in order, within LIST_MAX s,
#     as text and as --json;
#  4. clients hanging up in the middle of a list answer leave odrsd serving,
#     and the next list is whole again;
#  5. memory (issue 17: at most 1 KiB per sleeping VM): odrsd's RSS with N VMs,
#     after step 1, after the reload and after the lists, is at most
#     VM_BYTES_MAX per VM beyond its RSS with N0 VMs (measured first: the
#     fixed part, libvirt's and libpcap's). Each VM carried a lifecycle job,
#     fixed text fields and timers: 2,244 B after the start; the heap then
#     kept the reload's peak (both configurations live while it matches
#     them): 1,239 B after the reload and the lists.
# The bounds are generous for a loaded CI machine; bench/scale.sh measures.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u
command -v jq > /dev/null || { echo "needs jq (make deps)"; exit 77; }

N=${N:-100000}
STATUS_MAX=10 SLEEPING_MIN=10000 SLEEPING_MAX=40 RELOAD_MAX=10 LIST_MAX=10
N0=1000 VM_BYTES_MAX=1024
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
within() { awk -v t="$1" -v max="$2" 'BEGIN { exit !(t < max) }'; } # T MAX
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$(lab_odrsd_pid n1)/status"; }
counter() { lab_odrsctl n1 status 2> /dev/null | awk -v k="$1:" '$1 == k { print $2 }'; }
enough_asleep() { [ "$(counter sleeping)" -ge "$SLEEPING_MIN" ] 2> /dev/null; }
rows() { lab_odrsctl n1 list | awk '$1 ~ /^s[0-9]+$/' | wc -l; }

trap lab_down EXIT
step "lab: 1 node, $N [vm] sections and images"
lab_up 1 0 > /dev/null || fail "lab_up"
odrs_snapshot_files "$N" || fail "snapshot files"
sock=$(lab_node_dir n1)/odrs/odrsd.sock

step "0. the fixed part of the memory: RSS with $N0 VMs, all asleep"
conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "probe = none" "wake_on = syn") || fail "conf"
odrs_vm_sections "$N0" >> "$conf"
lab_odrsd_start n1 "$conf" > /dev/null || fail "odrsd did not start with $N0 VMs"
lab_wait 30 eval '[ "$(counter sleeping)" = "$N0" ]' || fail "$(counter sleeping) of $N0 VMs asleep after 30 s"
rss0=$(rss_kib) || fail "no RSS"
lab_odrsd_stop n1 || fail "odrsd exited with status $?"
echo "RSS with $N0 VMs: $rss0 KiB"
# per_vm WHEN: odrsd's RSS now, in bytes per VM beyond rss0.
per_vm() {
	local rss
	rss=$(rss_kib) || fail "no RSS $1"
	echo "$(((rss - rss0) * 1024 / (N - N0)))"
}
# memory_bounded WHEN: RSS per VM now printed, and at most VM_BYTES_MAX.
memory_bounded() {
	local b
	b=$(per_vm "$1")
	echo "RSS $1: $b B per VM beyond $N0 VMs"
	[ "$b" -le "$VM_BYTES_MAX" ] || fail "$b B per VM $1, over $VM_BYTES_MAX"
}
conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "probe = none" "wake_on = syn") || fail "conf"
odrs_vm_sections "$N" >> "$conf"

step "1. start with $N VMs: status within $STATUS_MAX s, $SLEEPING_MIN asleep within $SLEEPING_MAX s"
t0=$(now)
lab_odrsd_start n1 "$conf" > /dev/null || fail "odrsd did not start"
lab_wait "$STATUS_MAX" eval 'lab_odrsctl n1 status > /dev/null 2>&1' ||
	fail "no status answer $(secs "$t0") s after the launch"
t=$(secs "$t0")
within "$t" "$STATUS_MAX" || fail "status answered $t s after the launch, over $STATUS_MAX s"
echo "status answered $t s after the launch"
[ "$(counter vms)" = "$N" ] || fail "status shows $(counter vms) VMs, want $N"
lab_wait "$SLEEPING_MAX" enough_asleep || fail "after $SLEEPING_MAX s, $(counter sleeping) of $N VMs asleep"
echo "$(counter sleeping) asleep $(secs "$t0") s after the launch"
memory_bounded "after the start"

step "2. reload within $RELOAD_MAX s"
t0=$(now)
out=$(lab_odrsctl n1 reload 2>&1) || fail "reload: $out"
t=$(secs "$t0")
within "$t" "$RELOAD_MAX" || fail "reload took $t s, over $RELOAD_MAX s"
echo "reload took $t s"
[ "$(counter reloads)" = 1 ] || fail "status counts $(counter reloads) reloads, want 1"
[ "$(counter vms)" = "$N" ] || fail "after the reload status shows $(counter vms) VMs, want $N"
memory_bounded "after the reload"

step "3. list: $N rows within $LIST_MAX s, text and --json"
t0=$(now)
n=$(rows)
t=$(secs "$t0")
[ "$n" = "$N" ] || fail "odrsctl list gave $n rows, want $N"
within "$t" "$LIST_MAX" || fail "odrsctl list took $t s, over $LIST_MAX s"
echo "odrsctl list: $n rows in $t s"
lab_odrsctl n1 list --json > "$LAB_DIR/list.json" || fail "list --json"
n=$(jq 'length' "$LAB_DIR/list.json")
[ "$n" = "$N" ] || fail "odrsctl list --json gave $n VMs, want $N"
[ "$(jq -r '[.[].name] | (.[0] + " " + .[-1] + " " + (unique | length | tostring))' "$LAB_DIR/list.json")" = "s1 s$N $N" ] ||
	fail "list --json: not s1..s$N once each: $(jq -c '.[0], .[-1]' "$LAB_DIR/list.json")"

step "4. clients hanging up in the middle of a list answer"
for _ in 1 2 3; do
	# head takes the first 64 KiB and exits; socat then closes the connection mid-answer.
	got=$(lab_node_exec n1 sh -c "printf '{\"cmd\":\"list\"}\n' | socat -t 5 - UNIX-CONNECT:$sock | head -c 65536 | wc -c")
	[ "$got" = 65536 ] || fail "a list answer's first 64 KiB: got $got bytes"
done
lab_odrsd_pid n1 > /dev/null || fail "odrsd died after clients hung up mid-answer"
n=$(rows)
[ "$n" = "$N" ] || fail "after the hang-ups odrsctl list gave $n rows, want $N"
memory_bounded "after the lists"
lab_odrsd_stop n1 || fail "odrsd exited with status $?"
echo "PASS"

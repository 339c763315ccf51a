#!/bin/bash
# Hibernations are spread out: three VMs go idle at the same moment on a node
# with hibernate_concurrency = 1, and their saves run one after the other
# (each save starts after the previous one ended, by the event log's times).
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

VMS="sp1 sp2 sp3"
trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
i=41
for vm in $VMS; do
	lab_vm_start n1 $vm 198.18.0.$i 52:54:00:12:00:$i > /dev/null || fail "$vm start"
	i=$((i + 1))
done
for vm in $VMS; do lab_vm_wait_ready n1 $vm 90 || fail "$vm not ready"; done

conf=$(odrs_conf n1 "hibernate_concurrency = 1" "check_interval = 1s" \
	"[policy]" "idle_timeout = 2s" "probe = none" \
	"[vm sp1]" "ip = 198.18.0.41" "[vm sp2]" "ip = 198.18.0.42" "[vm sp3]" "ip = 198.18.0.43")
lab_odrsd_start n1 "$conf" || fail "odrsd"

step "all three go idle together and hibernate one at a time"
for vm in $VMS; do odrs_wait_state n1 $vm hibernated 60 || fail "$vm not hibernated"; done
# "END_MS SAVE_MS" per hibernate_done, in the order they ended.
ends=$(grep '"event":"hibernate_done"' "$(lab_node_dir n1)/odrs/events.jsonl" | jq -r '
	(.ts | sub("\\.(?<f>[0-9]+)Z$"; "Z") | fromdateiso8601) as $s |
	"\($s * 1000 + (.ts | capture("\\.(?<f>[0-9]+)Z$").f | tonumber)) \(.ms)"')
[ "$(wc -l <<<"$ends")" = 3 ] || fail "want 3 hibernate_done events, got: $ends"
echo "$ends" | awk '{ printf "ended at %.0f, save took %d ms\n", $1, $2 }'
# Each save (ms before its end) starts no earlier than the previous one ended.
awk 'NR > 1 && $1 - $2 < prev - 50 { bad = 1; print "overlap: save ending " $1 " began before " prev }
     { prev = $1 } END { exit bad }' <<<"$ends" || fail "saves overlapped with hibernate_concurrency = 1"
echo "PASS"

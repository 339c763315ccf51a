#!/bin/bash
# make demo: one node, one VM, one client, no cluster store. The VM is
# hibernated, then a client that knows nothing of odrs connects to it.
[ "$(id -u)" = 0 ] || { echo "make demo needs root (sudo make demo)"; exit 1; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u
t0=$SECONDS
ms() { awk -v s="$1" 'BEGIN { printf "%d ms", s * 1000 }'; }

trap lab_down EXIT
echo "Raising the lab: switch, node n1 (libvirtd, bridge br0), client c1; guest web1 (TCG)"
lab_up 1 1 > /dev/null || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 > /dev/null && lab_vm_wait_ready n1 web1 ||
	fail "the guest did not come up"

echo "Bare libvirt, for comparison: virsh save, then time virsh restore"
lab_virsh n1 save web1 "$LAB_DIR/bare.img" > /dev/null || fail "virsh save"
start=$(date +%s%N)
lab_virsh n1 restore "$LAB_DIR/bare.img" > /dev/null || fail "virsh restore"
bare=$(( ($(date +%s%N) - start) / 1000000 ))
rm -f "$LAB_DIR/bare.img"
lab_vm_wait_ready n1 web1 > /dev/null || fail "guest after bare restore"

conf=$(odrs_conf n1 "[vm web1]" "ip = 198.18.0.10")
echo; echo "odrsd on n1 with $conf:"; sed 's/^/    /' "$conf"
lab_odrsd_start n1 "$conf" && odrs_wait_state n1 web1 running || fail "odrsd did not start"

echo; echo "$ odrsctl hibernate web1"
lab_odrsctl n1 hibernate web1 | sed 's/^/    /'
echo "$ odrsctl list      (before)"
lab_odrsctl n1 list | sed 's/^/    /'

echo; echo "$ curl http://198.18.0.10/      (from c1, ARP cache empty, first SYN held and replayed)"
lab_client_exec c1 ip neigh flush all
out=$(lab_client_exec c1 curl -sS --max-time 20 -w '\n%{time_connect} %{time_total}' http://198.18.0.10/) ||
	fail "curl failed"
body=$(head -n 1 <<<"$out")
read -r connect total <<<"$(tail -n 1 <<<"$out")"
echo "    $body"
echo "$ odrsctl list      (after)"
lab_odrsctl n1 list | sed 's/^/    /'

echo
printf '%-34s %s\n' "access time (curl, connect):" "$(ms "$connect")" \
	"access time (curl, whole request):" "$(ms "$total")" \
	"bare virsh restore:" "$bare ms"
echo; echo "wake-event log ($(lab_node_dir n1)/odrs/events.jsonl):"
lab_odrsctl n1 events -l "$(lab_node_dir n1)/odrs/events.jsonl" | sed 's/^/    /'
[ "$body" = "hello from web1" ] || fail "unexpected body"
echo; echo "demo done in $((SECONDS - t0)) s; tearing the lab down"

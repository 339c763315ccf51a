#!/bin/bash
# Smaller snapshots (shrink), with real guests whose page cache holds 64 MiB
# of a disk's random data:
#  - shrink = none: hibernate_done says shrunk_bytes 0;
#  - shrink = caches: the guest drops its cache (shrunk_bytes >= 48 MiB);
#  - shrink = balloon: the image is at least 48 MiB smaller than none's, and
#    the guest has all its memory back once woken, and does it all again
#    (a guest squeezed too hard once answered its replayed SYN with a reset);
#  - every VM answers its client after the wake.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

CACHE=64 MIB=1048576
VMS="none1 caches1 balloon1"
# done_field VM FIELD: FIELD of the VM's last hibernate_done event.
done_field() {
	grep '"event":"hibernate_done"' "$(lab_node_dir n1)/odrs/events.jsonl" | grep "\"vm\":\"$1\"" |
		tail -n 1 | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}
mib() { echo $(($1 / MIB)); }

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
i=31
for vm in $VMS; do
	lab_vm_start n1 $vm 198.18.0.$i 52:54:00:12:00:$i "" 0 $CACHE > /dev/null || fail "$vm start"
	i=$((i + 1))
done
for vm in $VMS; do lab_vm_wait_ready n1 $vm 90 || fail "$vm not ready"; done
for vm in $VMS; do grep -q "page cache $CACHE MiB" "$(lab_vm_console $vm)" || fail "$vm did not fill its cache"; done

conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" \
	"[vm none1]" "ip = 198.18.0.31" "shrink = none" \
	"[vm caches1]" "ip = 198.18.0.32" "shrink = caches" \
	"[vm balloon1]" "ip = 198.18.0.33" "shrink = balloon")
lab_odrsd_start n1 "$conf" || fail "odrsd"
for vm in $VMS; do odrs_wait_state n1 $vm running || fail "$vm not running"; done

step "hibernate each"
for vm in $VMS; do
	odrs_hibernate n1 $vm
	eval "bytes_$vm=\$(done_field $vm bytes) shrunk_$vm=\$(done_field $vm shrunk_bytes)"
	echo "$vm: image $(mib "$(eval echo \$bytes_$vm)") MiB, shrunk $(mib "$(eval echo \$shrunk_$vm)") MiB"
done
[ "$shrunk_none1" = 0 ] || fail "shrink = none reports $shrunk_none1 bytes shrunk"
[ "$shrunk_caches1" -ge $((48 * MIB)) ] || fail "shrink = caches freed only $shrunk_caches1 bytes"
[ "$shrunk_balloon1" -ge $((48 * MIB)) ] || fail "shrink = balloon took back only $shrunk_balloon1 bytes"
[ "$bytes_balloon1" -le $((bytes_none1 - 48 * MIB)) ] ||
	fail "balloon image $bytes_balloon1 bytes is not 48 MiB smaller than none's $bytes_none1"
[ "$(stat -c %s "$LAB_SHARED/balloon1.odrs-save")" = "$bytes_balloon1" ] || fail "hibernate_done bytes is not the image's size"

step "each wakes on access, the ballooned one with all its memory"
i=31
for vm in $VMS; do
	body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.$i/) || fail "curl $vm"
	[ "$body" = "hello from $vm" ] || fail "$vm answered: $body"
	i=$((i + 1))
done
full_memory() {
	local info
	info=$(lab_virsh n1 dominfo balloon1) || return 1
	[ "$(awk '/^Used memory/ { print $3 }' <<<"$info")" = "$(awk '/^Max memory/ { print $3 }' <<<"$info")" ]
}
lab_wait 20 full_memory || fail "balloon1 did not get its memory back: $(lab_virsh n1 dominfo balloon1 | grep memory)"

step "balloon1 again, its cache refilled"
odrs_guest_sh n1 balloon1 "dd if=/dev/vda of=/dev/null bs=1M count=$CACHE 2>/dev/null" > /dev/null ||
	fail "refilling balloon1's cache"
odrs_hibernate n1 balloon1
[ "$(done_field balloon1 shrunk_bytes)" -ge $((48 * MIB)) ] || fail "second balloon took back only $(done_field balloon1 shrunk_bytes) bytes"
body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.33/) || fail "curl balloon1, second wake"
[ "$body" = "hello from balloon1" ] || fail "balloon1 answered: $body"
lab_wait 20 full_memory || fail "balloon1 did not get its memory back the second time"

echo "PASS"

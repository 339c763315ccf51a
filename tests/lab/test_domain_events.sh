#!/bin/bash
# libvirt's domain lifecycle events, on one node:
#  1. `virsh destroy` of a running VM: `odrsctl list` no longer shows it
#     running within 2 s (no odrsctl request in between asks libvirt), and a
#     domain_event is logged;
#  2. a hibernated VM restored by hand (`virsh restore` of its image): odrsd
#     lists it running at once, the image is no longer restorable, and
#     `odrsctl wake` restores nothing (no second instance);
#  3. the same with `virsh start`;
#  4. libvirtd killed and started again: odrsd follows the events of the new
#     libvirtd (a destroy is seen within 2 s).
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

trap lab_down EXIT
lab_up 1 0 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 || fail "web1 start"
lab_vm_wait_ready n1 web1 || fail "guest not ready"

conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "[vm web1]" "ip = 198.18.0.10")
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 web1 running || fail "web1 not seen running"

not_running() { [ "$(odrs_state n1 web1)" != running ]; }
restores() { lab_odrsctl n1 status | awk '$1 == "restores:" { print $2 }'; }

step "1: virsh destroy: not shown running within 2 s"
lab_virsh n1 destroy web1 > /dev/null || fail "virsh destroy"
lab_wait 2 not_running || fail "web1 still listed running 2 s after virsh destroy"
echo "web1 is $(odrs_state n1 web1) after the destroy"
odrs_event n1 domain_event web1 || fail "no domain_event for web1"

step "the VM started again by hand is followed as running"
lab_virsh n1 start web1 > /dev/null || fail "virsh start"
odrs_wait_state n1 web1 running 5 || fail "web1 not followed as running after virsh start"
lab_vm_wait_ready n1 web1 || fail "guest not ready after the start"

for how in restore start; do
	step "2/3: hibernated, then virsh $how by hand: running, image gone, wake restores nothing"
	odrs_hibernate n1 web1
	before=$(restores)
	if [ "$how" = restore ]; then
		lab_virsh n1 restore "$LAB_SHARED/web1.odrs-save" > /dev/null || fail "virsh restore"
	else
		lab_virsh n1 start web1 > /dev/null || fail "virsh start"
	fi
	odrs_wait_state n1 web1 running 5 || fail "web1 not followed as running after virsh $how"
	[ ! -e "$LAB_SHARED/web1.odrs-save" ] || fail "web1.odrs-save still restorable after virsh $how"
	out=$(lab_odrsctl n1 wake web1) || fail "wake: $out"
	[ "$(restores)" = "$before" ] || fail "odrsctl wake restored web1 again after virsh $how"
	[ "$(lab_virsh n1 list --name | grep -c '^web1$')" = 1 ] || fail "web1 listed twice"
	lab_vm_wait_ready n1 web1 || fail "guest not ready after virsh $how"
done

step "4: libvirtd restarted: the events of the new one are followed"
lab_node_exec n1 sh -c 'kill -KILL $(cat /run/libvirt/libvirtd.pid)' || fail "kill libvirtd"
sleep 1
lab_node_exec n1 libvirtd -d -p /run/libvirt/libvirtd.pid || fail "libvirtd did not start again"
lab_wait 30 lab_virsh n1 version > /dev/null 2>&1 || fail "libvirtd does not answer"
lab_wait 20 grep -q "following domain events again" "$(lab_node_dir n1)/odrsd.log" ||
	fail "odrsd did not reconnect for domain events"
odrs_wait_state n1 web1 running 10 || fail "web1 not running after the libvirtd restart"
lab_virsh n1 destroy web1 > /dev/null || fail "virsh destroy"
lab_wait 2 not_running || fail "web1 still listed running 2 s after a destroy under the new libvirtd"

echo "PASS"

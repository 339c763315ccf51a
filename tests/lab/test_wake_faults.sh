#!/bin/bash
# Faults on the wake path, with a real VM:
#  6. odrsd killed with SIGKILL during a save and during a restore, then
#     restarted: the VM is not lost (running, or hibernated with a valid
#     image), never both, and no stale image stays restorable;
#  7. a save into a full filesystem, or into a read-only one, fails and the
#     VM keeps running;
#  8. libvirtd killed and started again during a restore: odrsd settles it
#     once libvirtd is back; the VM is running or hibernated, never both,
#     and it is reachable;
#  9. SIGKILL at random points of hibernations and wakes, CYCLES times: after
#     each restart the VM is running or hibernated, never both, no stale
#     image stays restorable, and it is reachable at the end.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

# Exactly one of: the domain runs, or a complete image waits.
check_one_copy() { # EXPECTED_STATE
	local running=0 images
	lab_virsh n1 domstate web1 | grep -q running && running=1
	images=$(ls "$LAB_SHARED" | grep -c '^web1\.odrs-save')
	case $1 in
	running)    [ $running = 1 ] && [ "$images" = 0 ] ;;
	hibernated) [ $running = 0 ] && [ -s "$LAB_SHARED/web1.odrs-save" ] && [ "$images" = 1 ] ;;
	esac || fail "after restart: running=$running, files: $(ls "$LAB_SHARED"), want $1"
}

reach() {
	local body
	body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.10/) || fail "curl failed"
	[ "$body" = "hello from web1" ] || fail "body: $body"
}

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 && lab_vm_wait_ready n1 web1 || fail "web1"
conf=$(odrs_conf n1 "[vm web1]" "ip = 198.18.0.10")
lab_odrsd_start n1 "$conf" && odrs_wait_state n1 web1 running || fail "odrsd"

step "6a: SIGKILL during a save"
lab_odrsctl n1 hibernate web1 > /dev/null 2>&1 &
lab_wait 10 test -e "$LAB_SHARED/web1.odrs-save.part.n1" || fail "the save never started"
lab_odrsd_stop n1 KILL
wait
echo "killed with: $(ls "$LAB_SHARED" | tr '\n' ' ')"
lab_odrsd_start n1 "$conf" || fail "restart"
odrs_wait_state n1 web1 hibernated 60 || fail "not hibernated after the restart"
check_one_copy hibernated
reach
check_one_copy running

step "6b: SIGKILL during a restore"
odrs_hibernate n1 web1
lab_odrsctl n1 wake web1 > /dev/null 2>&1 &
lab_wait 10 sh -c "ls '$LAB_SHARED' | grep -q restoring" || fail "the restore never started"
lab_odrsd_stop n1 KILL
wait
echo "killed with: $(ls "$LAB_SHARED" | tr '\n' ' ')"
lab_odrsd_start n1 "$conf" || fail "restart"
odrs_wait_state n1 web1 running 60 || fail "not running after the restart"
check_one_copy running
reach
[ "$(lab_virsh n1 list --name | grep -c '^web1$')" = 1 ] || fail "web1 listed twice"

step "8: libvirtd killed during a restore and started again"
odrs_hibernate n1 web1
lab_odrsctl n1 wake web1 > "$LAB_DIR/wake8.out" 2>&1 &
lab_wait 10 sh -c "ls '$LAB_SHARED' | grep -q restoring" || fail "the restore never started"
lab_node_exec n1 sh -c 'kill -KILL $(cat /run/libvirt/libvirtd.pid)' || fail "kill libvirtd"
wait
echo "odrsctl wake said: $(cat "$LAB_DIR/wake8.out"); files: $(ls "$LAB_SHARED" | tr '\n' ' ')"
sleep 1
lab_node_exec n1 libvirtd -d -p /run/libvirt/libvirtd.pid || fail "libvirtd did not start again"
settled() { case $(odrs_state n1 web1) in running|hibernated) ! ls "$LAB_SHARED" | grep -q restoring ;; *) false ;; esac; }
lab_wait 60 settled || fail "not settled: $(odrs_state n1 web1), files: $(ls "$LAB_SHARED")"
state=$(odrs_state n1 web1)
echo "after libvirtd came back: $state"
check_one_copy "$state"
reach
check_one_copy running

step "9: SIGKILL at random points, ${CYCLES:=6} cycles"
for i in $(seq "$CYCLES"); do
	case $(odrs_state n1 web1) in running) verb=hibernate ;; *) verb=wake ;; esac
	delay=$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", rand() * 2.5 }')
	lab_odrsctl n1 $verb web1 > /dev/null 2>&1 &
	sleep "$delay"
	lab_odrsd_stop n1 KILL
	wait
	files=$(ls "$LAB_SHARED" | tr '\n' ' ')
	lab_odrsd_start n1 "$conf" || fail "restart $i"
	lab_wait 60 settled || fail "cycle $i: not settled: $(odrs_state n1 web1), files: $(ls "$LAB_SHARED")"
	state=$(odrs_state n1 web1)
	echo "cycle $i: $verb killed after ${delay}s with [$files] -> $state"
	check_one_copy "$state"
done
reach
check_one_copy running

step "7: a save into a full filesystem leaves the VM running"
lab_odrsd_stop n1
tiny=$(lab_node_dir n1)/tiny
mkdir -p "$tiny"
lab_node_exec n1 mount -t tmpfs -o size=8m odrs-tiny "$tiny" || fail "mount"
conf=$(odrs_conf n1 "[vm web1]" "ip = 198.18.0.10")
sed -i "s|^snapshot_dir = .*|snapshot_dir = $tiny|" "$conf"
lab_odrsd_start n1 "$conf" && odrs_wait_state n1 web1 running || fail "odrsd"
if out=$(lab_odrsctl n1 hibernate web1 2>&1); then fail "hibernate into a full disk succeeded: $out"; fi
echo "odrsctl said: $out"
[ "$(odrs_state n1 web1)" = running ] || fail "state $(odrs_state n1 web1), want running"
lab_virsh n1 domstate web1 | grep -q running || fail "domain not running"
[ -z "$(lab_node_exec n1 ls -A "$tiny")" ] || fail "left in the full dir: $(lab_node_exec n1 ls -A "$tiny")"
odrs_event n1 hibernate_failed web1 || fail "no hibernate_failed event"
reach

step "7: a save into a read-only filesystem leaves the VM running"
lab_node_exec n1 mount -o remount,size=512m,ro "$tiny" || fail "remount read-only"
before=$(odrs_events n1 hibernate_failed web1)
if out=$(lab_odrsctl n1 hibernate web1 2>&1); then fail "hibernate into a read-only dir succeeded: $out"; fi
echo "odrsctl said: $out"
[ "$(odrs_state n1 web1)" = running ] || fail "state $(odrs_state n1 web1), want running"
lab_virsh n1 domstate web1 | grep -q running || fail "domain not running"
[ "$(odrs_events n1 hibernate_failed web1)" -gt "$before" ] || fail "no hibernate_failed event"
reach

echo "PASS"

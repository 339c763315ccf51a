#!/bin/bash
# odrsd under the confinement of examples/odrsd.service (tests/lab/unit-sandbox.sh
# applies its capability bounding set, NoNewPrivileges, ProtectSystem=strict with the
# writable paths, ProtectHome, PrivateTmp, ProtectKernelTunables and
# ProtectControlGroups, and RestrictAddressFamilies) does all its work:
#  1. negative controls: with CAP_NET_RAW left out of the bounding set, or AF_PACKET
#     out of the address families, it cannot start (its packet socket is refused),
#     so the sandbox does bound it;
#  2. it starts, gives its control socket to group odrs (CAP_CHOWN), and keeps
#     exactly CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_NICE and CAP_SYS_PTRACE, no new
#     privileges, under the seccomp filter;
#  3. hibernates a VM (libvirt's socket, renames in snapshot_dir) and a client's
#     single SYN restores it (capture, ARP reply, SYN replayed into the tap; its
#     state file written);
#  4. dozes it (process_madvise over QEMU's memory: CAP_SYS_NICE, CAP_SYS_PTRACE)
#     and a client's single SYN resumes it;
#  5. stops cleanly (exit 0).
# Exit 0 pass, 1 fail, 77 skip (not root, or no swap and no zram for the doze).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

trap 'lab_down; odrs_zram_down' EXIT
odrs_has_swap || odrs_zram_up || { echo "no swap and no zram: skip"; exit 77; }
make -s -C "$LAB_ROOT" build/restrict_af >/dev/null || fail "cannot build build/restrict_af"

reach() { # CLIENT VM IP FROM: one SYN from an empty ARP cache wakes VM, from FROM (hibernate, doze)
	local body
	lab_client_exec "$1" ip neigh flush all
	lab_client_first_syn_only "$1"
	body=$(lab_client_exec "$1" curl -sS --max-time 30 "http://$3/") || fail "curl $2 failed"
	[ "$body" = "hello from $2" ] || fail "body: $body"
	# The guest may answer before the event is written.
	lab_wait 10 woken_from "$2" "$4" || fail "no wake_done of $2 from $4"
	odrs_event n1 syn_replayed "$2" || fail "no syn_replayed for $2"
}
woken_from() { odrs_evlog n1 | grep '"event":"wake_done"' | grep "\"vm\":\"$1\"" | grep -q "\"from\":\"$2\""; }

lab_up 1 1 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 52:54:00:12:00:10 || fail "web1 start"
lab_vm_wait_ready n1 web1 90 || fail "guest not ready"
d=$(lab_node_dir n1)
conf=$(odrs_conf n1 "[vm web1]" "ip = 198.18.0.10")
mkdir -p "$d/odrs/state"
export LAB_ODRSD=$LAB_ROOT/tests/lab/unit-sandbox.sh SANDBOX_RW="$d/odrs $LAB_SHARED"

step "1: without CAP_NET_RAW in the bounding set, or AF_PACKET, odrsd cannot start"
SANDBOX_CAPS="CAP_NET_ADMIN CAP_SYS_NICE CAP_SYS_PTRACE CAP_CHOWN" lab_odrsd_start n1 "$conf" 2>/dev/null &&
	fail "odrsd started without CAP_NET_RAW"
grep -q 'packet socket: Operation not permitted' "$d/odrsd.log" || fail "no EPERM in the log: $(tail -n 5 "$d/odrsd.log")"
SANDBOX_AF="AF_UNIX AF_INET AF_INET6 AF_NETLINK" lab_odrsd_start n1 "$conf" 2>/dev/null &&
	fail "odrsd started without AF_PACKET"
grep -q 'packet socket: Address family not supported' "$d/odrsd.log" ||
	fail "no EAFNOSUPPORT in the log: $(tail -n 5 "$d/odrsd.log")"

step "2: under the unit's bounding set it serves; the socket is group odrs'"
{ cat /etc/group; echo "odrs:x:4242:"; } >"$d/group"
SANDBOX_GROUP=$d/group lab_odrsd_start n1 "$conf" || fail "odrsd under the unit's sandbox did not start"
odrs_wait_state n1 web1 running || fail "web1 not seen running"
pid=$(lab_odrsd_pid n1) || fail "no odrsd pid"
[ "$(cat "/proc/$pid/comm")" = odrsd ] || fail "pid $pid is $(cat "/proc/$pid/comm"), not odrsd"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status"
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_SYS_PTRACE 19, CAP_SYS_NICE 23.
grep -q '^CapEff:[[:space:]]*0000000000883000$' "/proc/$pid/status" || fail "odrsd's effective capabilities"
grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status" || fail "odrsd may gain privileges"
grep -q '^Seccomp:[[:space:]]*2$' "/proc/$pid/status" || fail "odrsd runs without the address-family filter"
[ "$(stat -c %g:%a "$d/odrs/odrsd.sock")" = 4242:660 ] ||
	fail "control socket $(stat -c %g:%a "$d/odrs/odrsd.sock"), want group 4242, mode 660"

step "3: hibernated, and restored by a client's single SYN"
odrs_mark n1
odrs_hibernate n1 web1
reach c1 web1 198.18.0.10 hibernate
# Written on every restore (the last wake's time), off the loop, into state_dir.
lab_wait 10 test -s "$d/odrs/state/web1.json" || fail "no state file for web1"

step "4: dozed, and resumed by a client's single SYN"
odrs_mark n1
out=$(lab_odrsctl n1 doze web1) || fail "doze web1: $out"
[ "$(odrs_state n1 web1)" = dozing ] || fail "web1 is $(odrs_state n1 web1) after doze"
odrs_evlog n1 | grep '"event":"doze_done"' | grep -q '"bytes_out":[1-9]' || fail "no doze_done with bytes_out"
reach c1 web1 198.18.0.10 doze

step "5: stopped cleanly"
lab_odrsd_stop n1 || fail "odrsd did not stop cleanly"
echo "PASS"

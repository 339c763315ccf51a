#!/bin/bash
# The lab's own test (issue "Lab: real VMs on a real L2 network"): a VM answers a
# client; saved on n1 and restored on n2 from the shared directory it answers again
# and the switch learns its MAC on n2's port; a router client with a permanent ARP
# entry reaches it without ever asking for it; the odrsd plumbing runs a program in
# the node's namespaces; etcd answers; and afterwards namespaces, processes and the
# lab directory are as before, also after a test that failed half way.
# Exit: 0 pass, 1 fail, 77 skip (not root, or a tool missing).
cd "$(dirname "$0")/../.." || exit 1
[ "$(id -u)" = 0 ] || { echo "test_lab: needs root" >&2; exit 77; }
for t in ip bridge nsenter unshare virsh libvirtd virtlogd qemu-system-x86_64 curl nc \
	socat tcpdump etcd busybox /usr/sbin/qemu-ga cpio; do
	command -v "$t" >/dev/null || { echo "test_lab: $t missing" >&2; exit 77; }
done
. tests/lab/lab.sh
set -u

VM=web1 VM_IP=198.18.0.10 VM_MAC=52:54:00:12:00:10
WORK=$(mktemp -d /tmp/test_lab.XXXXXX)
trap 'lab_down; rm -rf "$WORK"' EXIT

T0=$(date +%s%N)
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
step() { printf '%6sms  %s\n' "$(ms "$T0")" "$*"; }
fail() { echo "FAIL: $*" >&2; lab_status >&2; exit 1; }

# What "as before" means: the lab's namespaces and its directory (processes: below).
host_state() {
	_lab_namespaces | sort
	[ -e "$LAB_DIR" ] && echo "exists: $LAB_DIR"
	true
}

# Which processes belong to the lab: its pids and its network namespaces, recorded
# while it is up, so that leftovers are found after the namespaces are gone.
record_lab() { # FILE
	{
		for ns in $(_lab_namespaces); do
			echo "ns net:[$(stat -L -c %i "/run/netns/$ns")]"
		done
		for p in $(_lab_pids); do echo "pid $p"; done
	} >"$1"
}
leftovers() { # FILE: lab processes still alive
	local p f args
	for p in $(awk '$1 == "pid" { print $2 }' "$1"); do
		[ -d "/proc/$p" ] && echo "pid $p alive: $(tr '\0' ' ' <"/proc/$p/cmdline")"
	done
	find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' 2>/dev/null |
		awk 'NR == FNR { if ($1 == "ns") lab[$2] = 1; next }
			$2 in lab { print $1 " is in a lab netns" }' "$1" -
	for f in /proc/[0-9]*/cmdline; do
		mapfile -d '' -t args <"$f" 2>/dev/null || continue
		case " ${args[*]} " in *"$LAB_DIR/"*) echo "$f names $LAB_DIR: ${args[*]}" ;; esac
	done
	true
}
check_clean() { # LABEL RECORD
	local left
	[ "$(host_state)" = "$BEFORE" ] ||
		fail "$1: host state differs: before [$BEFORE] after [$(host_state)]"
	left=$(leftovers "$2")
	[ -z "$left" ] || fail "$1: lab processes left: $left"
}

lab_down
BEFORE=$(host_state)

t=$(date +%s%N)
lab_up 2 2 || fail "lab_up"
step "lab up, 2 nodes 2 clients ($(ms "$t") ms)"
[ "$(lab_node_exec n1 cat /sys/class/net/br0/address)" = 02:00:00:01:00:01 ] ||
	fail "n1 br0 has not the lab MAC"
lab_node_exec n2 busybox ping -c 1 -W 2 198.18.1.1 >/dev/null || fail "n2 cannot reach n1"
lab_client_exec c1 busybox ping -c 1 -W 2 198.18.1.2 >/dev/null || fail "c1 cannot reach n2"
lab_node_exec n1 test -d "$LAB_SHARED" || fail "shared dir not visible on n1"
LAB_PREFIX=$LAB_PREFIX LAB_DIR=$LAB_DIR bash -c '. tests/lab/lab.sh; lab_down' 2>/dev/null && fail "another process tore down our lab"
lab_virsh n1 version >/dev/null || fail "n1's libvirtd gone after a foreign lab_down"
[ "$(lab_node_exec n1 cat /run/libvirt/libvirtd.pid)" != \
  "$(lab_node_exec n2 cat /run/libvirt/libvirtd.pid)" ] || fail "n1 and n2 share a libvirtd"

t=$(date +%s%N)
lab_vm_start n1 $VM $VM_IP $VM_MAC || fail "lab_vm_start"
lab_vm_wait_ready n1 $VM 90 || fail "$VM not ready on n1"
step "$VM booted on n1 and answers HTTP ($(ms "$t") ms)"

body=$(lab_vm_http c1 $VM) || fail "c1: no HTTP answer from $VM"
[ "$body" = "hello from $VM" ] || fail "c1: body '$body'"
echo=$(echo "echo-$$" | lab_client_exec c1 nc -N -w 5 $VM_IP 7) || fail "c1: echo failed"
[ "$echo" = "echo-$$" ] || fail "c1: echo returned '$echo'"
[ "$(lab_fdb_port $VM_MAC)" = sw-n1 ] || fail "switch has $VM_MAC on '$(lab_fdb_port $VM_MAC)', not sw-n1"
lab_virsh n1 qemu-agent-command $VM '{"execute":"guest-ping"}' >/dev/null ||
	fail "qemu-guest-agent does not answer"
step "c1 gets HTTP and echo from $VM; switch has its MAC on sw-n1; agent answers"

t=$(date +%s%N)
lab_virsh n1 save $VM "$LAB_SHARED/$VM.save" >/dev/null || fail "virsh save on n1"
step "saved on n1 ($(ms "$t") ms, $(stat -c %s "$LAB_SHARED/$VM.save") bytes)"
[ "$(lab_virsh n1 domstate $VM)" = "shut off" ] || fail "$VM still running on n1 after save"
lab_client_exec c1 curl -sf -m 1 "http://$VM_IP/" >/dev/null && fail "$VM answers while saved"

t=$(date +%s%N)
lab_virsh n2 restore "$LAB_SHARED/$VM.save" >/dev/null || fail "virsh restore on n2"
step "restored on n2 ($(ms "$t") ms)"
lab_wait 15 _lab_vm_answers c1 $VM || fail "c1: no answer from $VM after restore on n2"
[ "$(lab_virsh n2 domstate $VM)" = running ] || fail "$VM not running on n2"
lab_wait 5 test "$(lab_fdb_port $VM_MAC)" = sw-n2 ||
	fail "switch has $VM_MAC on '$(lab_fdb_port $VM_MAC)', not sw-n2"
step "$VM answers c1 from n2 ($(ms "$t") ms after restore began); switch has its MAC on sw-n2"

# The router client never asks: a permanent entry, and no ARP request on its wire.
lab_router_client c2 $VM_IP $VM_MAC || fail "lab_router_client"
lab_client_exec c2 ip neigh show $VM_IP | grep -q PERMANENT || fail "c2 entry not permanent"
lab_client_exec c2 tcpdump -n -l --immediate-mode -i eth0 arp >"$WORK/c2.arp" 2>"$WORK/c2.err" &
dump=$!
lab_wait 10 grep -q "listening on" "$WORK/c2.err" || fail "tcpdump on c2 did not start"
body=$(lab_vm_http c2 $VM) || fail "router client c2: no HTTP answer"
[ "$body" = "hello from $VM" ] || fail "c2: body '$body'"
sleep 0.5
kill $dump; wait $dump 2>/dev/null
if grep -q "who-has $VM_IP tell $(lab_client_ip c2)" "$WORK/c2.arp"; then
	fail "c2 sent an ARP request for $VM_IP: $(cat "$WORK/c2.arp")"
fi
step "router client c2 reaches $VM through its permanent ARP entry, no ARP request sent"

# odrsd plumbing, with a stand-in program: it must run in the node's net and mount
# namespaces (br0, the node's libvirtd), serve its control socket, and report its exit.
cat >"$WORK/fake-odrsd" <<'EOF'
#!/bin/sh
# -f -c CONFIG: note where we run, serve the control socket, exit 3 on SIGTERM.
conf=$3
sock=$(sed -n 's/^control_socket = //p' "$conf")
out=${conf%.conf}.seen
ip -o -4 addr show br0 | awk '{print $4}' >"$out"
virsh -q -c qemu:///system list --name >>"$out"
socat UNIX-LISTEN:"$sock",fork OPEN:/dev/null &
trap 'kill $!; exit 3' TERM
wait
EOF
chmod +x "$WORK/fake-odrsd"
lab_odrsd_conf n2 >"$WORK/n2.conf"
LAB_ODRSD=$WORK/fake-odrsd lab_odrsd_start n2 "$WORK/n2.conf" || fail "lab_odrsd_start"
lab_odrsd_pid n2 >/dev/null || fail "lab_odrsd_pid"
[ "$(cat "$WORK/n2.seen")" = "$(printf '198.18.1.2/16\n%s' $VM)" ] ||
	fail "odrsd stand-in saw [$(cat "$WORK/n2.seen")], not n2's br0 and libvirtd"
lab_odrsd_stop n2
rc=$?
[ $rc = 3 ] || fail "lab_odrsd_stop returned $rc, not the program's exit status 3"
lab_odrsd_pid n2 >/dev/null && fail "odrsd still running after lab_odrsd_stop"
step "lab_odrsd_start/stop run a program in n2's namespaces and report its exit status"

t=$(date +%s%N)
lab_etcd_up || fail "lab_etcd_up"
lab_node_exec n1 curl -sf -m 3 http://198.18.2.1:2379/health | grep -q true ||
	fail "n1 cannot reach etcd"
step "etcd answers n1 at 198.18.2.1:2379 ($(ms "$t") ms)"

record_lab "$WORK/lab1"
t=$(date +%s%N)
lab_down
step "lab down ($(ms "$t") ms)"
check_clean "after the test" "$WORK/lab1"

# A test that fails half way, with a VM booting: its EXIT trap must leave nothing.
(
	trap lab_down EXIT
	lab_up 1 1 || exit 2
	lab_vm_start n1 crash1 198.18.0.20 52:54:00:12:00:20 || exit 2
	[ "$(lab_virsh n1 domstate crash1)" = running ] || exit 2
	record_lab "$WORK/lab2"
	exit 1
)
rc=$?
[ $rc = 1 ] || fail "the half-way test did not get as far as its failure (exit $rc)"
check_clean "after a failed test" "$WORK/lab2"
step "a test that failed half way left nothing behind"
echo "PASS: test_lab"

#!/bin/bash
# The odrs lab: real VMs on a real L2 network, in network namespaces, as root.
#
#   CLI:      tests/lab/lab.sh up [NODES] [CLIENTS] | down | status
#             tests/lab/lab.sh node NODE CMD... | client CLIENT CMD... | virsh NODE ARGS...
#   Library:  . tests/lab/lab.sh; trap lab_down EXIT; lab_up 2 2; ...
#
# Topology (all addresses in 198.18.0.0/16, nothing leaves the namespaces):
#
#   netns PFX-sw    bridge sw0, MAC learning on, default ageing; one port per host:
#                   sw-n1.. (nodes), sw-c1.. (clients), sw-etcd
#   netns PFX-nN    bridge br0 = 198.18.1.N/16 (MAC 02:00:00:01:00:NN) uplinked to sw-nN;
#                   its own libvirtd + virtlogd in a private mount namespace where
#                   /run is a fresh tmpfs (so /run/libvirt, /run/odrs are per node) and
#                   /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt are
#                   bind mounts of $LAB_DIR/nN/{lib,cache,log,etc}.  $LAB_DIR itself is
#                   visible at the same path on every node and on the host.
#   netns PFX-cN    eth0 = 198.18.3.N/16 (MAC 02:00:00:03:00:NN), plugged into sw-cN
#   netns PFX-etcd  eth0 = 198.18.2.1/16, etcd on :2379 (only after lab_etcd_up)
#   VMs             you choose IP (use 198.18.0.X) and MAC; they attach to their node's br0.
#                   The guest (mkguest.sh) answers HTTP on 80 with "hello from NAME\n",
#                   echoes on TCP 7, runs qemu-guest-agent (lab_virsh NODE
#                   qemu-agent-command NAME '{"execute":"guest-ping"}'), optionally holds
#                   BALLAST MiB of random data in RAM, and prints "odrs-guest-ready
#                   name=NAME ip=IP" on its console (a file shared by all nodes).
#   IPv6 is off everywhere (hosts and guests), so the wire carries ARP and IPv4 only.
#
# Environment (read when this file is sourced):
#   LAB_PREFIX     name prefix of the namespaces (default odrs); labs with different
#                  prefixes can run side by side
#   LAB_DIR        all lab state (default /run/$LAB_PREFIX-lab); removed by lab_down
#   LAB_CACHE_DIR  what survives lab_down (default build/lab): the guest image (guest/)
#                  and libvirt's probe of qemu (qemu-caps/, saves seconds per node)
#   LAB_GUEST_DIR  guest image (default $LAB_CACHE_DIR/guest, made by mkguest.sh)
#   LAB_ODRSD, LAB_ODRSCTL  binaries (default build/odrsd, build/odrsctl)
# Set by this file: LAB_SHARED = $LAB_DIR/shared/snap, the directory shared by every
# node (stands in for NFS); LAB_ROOT = the project root.
#
# Functions (NODE is n1.., CLIENT is c1..; all return non-zero with a message on stderr
# on failure, and work under set -eu -o pipefail):
#   lab_up [NODES=2] [CLIENTS=1]      fresh lab (tears down a stale one first); the
#                                     calling shell owns it: while that shell lives,
#                                     lab_up/lab_down in other processes with the same
#                                     LAB_PREFIX refuse to touch it (LAB_FORCE=1
#                                     overrides; "lab.sh down" forces)
#   lab_down                          idempotent: kills every process in the lab's
#                                     namespaces (VMs, libvirtd, virtlogd, odrsd, etcd),
#                                     deletes the namespaces and $LAB_DIR
#   lab_status                        human-readable summary
#   lab_node_exec NODE CMD...         run in the node's network + mount namespace
#                                     (the one its libvirtd and odrsd see)
#   lab_client_exec CLIENT CMD...     run in the client's network namespace
#   lab_virsh NODE ARGS...            virsh -c qemu:///system on that node
#                                     (lab_node_virsh is the same)
#   lab_node_ip NODE                  198.18.1.N;  lab_client_ip CLIENT: 198.18.3.N
#   lab_node_dir NODE                 $LAB_DIR/NODE (odrsd.log, odrs/ live there)
#   lab_node_link NODE up|down        plug/unplug the node's switch port
#   lab_vm_start NODE NAME IP MAC [MEM_MIB] [BALLAST_MIB] [CACHE_MIB]
#                                     define (persistent) and start a guest; IP without
#                                     /prefix means /16; MEM defaults to
#                                     96 + BALLAST + CACHE. CACHE_MIB > 0: the guest gets
#                                     a disk of that much random data and reads it all at
#                                     boot, so its page cache holds it (droppable memory);
#                                     LAB_VM_IPV6=1 leaves IPv6 on in the guest (give it
#                                     an address through its agent: odrs_guest_sh)
#   lab_vm_wait_ready NODE NAME [TIMEOUT_S=60]
#                                     console shows "odrs-guest-ready" and the node gets
#                                     "hello from NAME" over HTTP from the VM
#   lab_vm_http FROM NAME             curl http://IP/ of VM NAME from FROM (node or client)
#   lab_vm_ip NAME, lab_vm_mac NAME, lab_vm_console NAME (console log path)
#   lab_fdb_port MAC                  switch port the MAC is learned on (e.g. sw-n2)
#   lab_router_client CLIENT IP MAC   permanent ARP entry for IP on CLIENT (no ARP sent)
#   lab_client_first_syn_only CLIENT  from now on CLIENT sends one TCP SYN and drops every
#                                     later one (retransmissions too) until called again:
#                                     a connection that completes was answered on its
#                                     first SYN, however long the server took
#   lab_odrsd_conf NODE               print an [odrsd] section with node-private paths
#                                     (control socket, event log, state) for a config
#   lab_odrsd_start NODE CONFIG [ARGS...]
#                                     run odrsd -f -c CONFIG on the node in the background
#                                     (log: $LAB_DIR/NODE/odrsd.log); when CONFIG names a
#                                     control_socket, return once it accepts connections
#   lab_odrsd_pid NODE                pid of that odrsd
#   lab_odrsd_stop NODE [SIGNAL=TERM] signal it, wait (10 s, then SIGKILL); returns odrsd's
#                                     exit status (128+N when killed by signal N)
#   lab_odrsctl NODE ARGS...          odrsctl on the node (-s the lab_odrsd_conf socket)
#   lab_etcd_up / lab_etcd_stop [SIGNAL=TERM]
#                                     etcd at http://198.18.2.1:2379, data under $LAB_DIR
#   lab_wait TIMEOUT_S CMD...         retry CMD every 0.1 s until it succeeds

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_PREFIX=${LAB_PREFIX:-odrs}
LAB_DIR=${LAB_DIR:-/run/$LAB_PREFIX-lab}
LAB_SHARED=$LAB_DIR/shared/snap
LAB_CACHE_DIR=${LAB_CACHE_DIR:-$LAB_ROOT/build/lab}
LAB_GUEST_DIR=${LAB_GUEST_DIR:-$LAB_CACHE_DIR/guest}
LAB_ODRSD=${LAB_ODRSD:-$LAB_ROOT/build/odrsd}
LAB_ODRSCTL=${LAB_ODRSCTL:-$LAB_ROOT/build/odrsctl}

_lab_err() { echo "lab: $*" >&2; return 1; }

lab_wait() { # TIMEOUT_S CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# n1 / odrs-n1 -> n1
_lab_name() { echo "${1#"$LAB_PREFIX"-}"; }
_lab_ns() { echo "$LAB_PREFIX-$(_lab_name "$1")"; }
_lab_anchor() { # NODE: pid holding the node's mount namespace
	local n
	n=$(_lab_name "$1")
	cat "$LAB_DIR/$n/anchor.pid" 2>/dev/null ||
		_lab_err "node $n is not up"
}

lab_node_ip() { echo "198.18.1.$(_lab_name "$1" | tr -dc 0-9)"; }
lab_client_ip() { echo "198.18.3.$(_lab_name "$1" | tr -dc 0-9)"; }
lab_node_dir() { echo "$LAB_DIR/$(_lab_name "$1")"; }

lab_node_exec() { # NODE CMD...
	local a
	a=$(_lab_anchor "$1") || return
	shift
	nsenter -t "$a" -m -n -- "$@"
}

lab_client_exec() { # CLIENT CMD...
	local ns
	ns=$(_lab_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

lab_virsh() { # NODE ARGS...
	local n=$1
	shift
	lab_node_exec "$n" virsh -q -c qemu:///system "$@"
}
lab_node_virsh() { lab_virsh "$@"; }

# A namespace with IPv6 off, so frames on the wire are ARP and IPv4 only.
_lab_netns_add() { # NS
	ip netns add "$1" &&
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 &&
	ip -n "$1" link set lo up
}

# Plug IFACE (created in NS) into the switch as port PORT.
_lab_plug() { # NS IFACE PORT
	local sw=$LAB_PREFIX-sw
	ip -n "$sw" link add "$3" type veth peer name "$2" netns "$1" &&
	ip -n "$sw" link set "$3" master sw0 up
}

_lab_node_net() { # INDEX
	local ns=$LAB_PREFIX-n$1
	_lab_netns_add "$ns" &&
	ip -n "$ns" link add br0 address "$(printf 02:00:00:01:00:%02x "$1")" type bridge &&
	_lab_plug "$ns" up0 "sw-n$1" &&
	ip -n "$ns" link set up0 master br0 up &&
	ip -n "$ns" link set br0 up &&
	ip -n "$ns" addr add "198.18.1.$1/16" dev br0
}

_lab_client_net() { # INDEX
	local ns=$LAB_PREFIX-c$1
	_lab_netns_add "$ns" &&
	_lab_plug "$ns" eth0 "sw-c$1" &&
	ip -n "$ns" link set eth0 address "$(printf 02:00:00:03:00:%02x "$1")" up &&
	ip -n "$ns" addr add "198.18.3.$1/16" dev eth0
}

# The node's libvirt configuration: root runs qemu with no security driver, no
# cgroups and no per-VM /dev namespace (none of which exist or work in a
# namespace lab), and libvirt's default network stays out of the way.
_lab_node_etc() { # DIR
	cp -a /etc/libvirt "$1/etc" &&
	rm -f "$1"/etc/qemu/networks/autostart/* "$1"/etc/qemu/networks/*.xml &&
	cat >"$1/etc/qemu.conf" <<-'EOF' &&
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	cgroup_controllers = [ ]
	namespaces = [ ]
	EOF
	cat >"$1/etc/libvirtd.conf" <<-'EOF'
	unix_sock_group = "root"
	unix_sock_rw_perms = "0700"
	auth_unix_ro = "none"
	auth_unix_rw = "none"
	log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
	EOF
}

# Start the node's mount namespace (held by an anchor process), virtlogd and libvirtd.
_lab_node_daemons() { # INDEX
	local n=n$1 d=$LAB_DIR/n$1
	mkdir -p "$d/lib" "$d/cache/qemu/capabilities" "$d/log" "$d/odrs" &&
	_lab_node_etc "$d" || return
	# libvirtd re-probes qemu when the cached result no longer matches the binaries.
	cp "$LAB_CACHE_DIR"/qemu-caps/*.xml "$d/cache/qemu/capabilities/" 2>/dev/null || true
	# /run becomes a tmpfs; the lab directory, when under /run, is put back
	# through a file descriptor opened before the tmpfs hides it.
	LAB_D=$d LAB_DIR=$LAB_DIR setsid -f ip netns exec "$LAB_PREFIX-$n" \
		unshare -m --propagation private sh -c '
		set -e
		exec 3<"$LAB_DIR"
		mount -t tmpfs -o mode=755 lab-run /run
		mkdir -p /run/libvirt /run/lock /run/odrs
		case $LAB_DIR in /run/*)
			mkdir -p "$LAB_DIR"
			mount -c --bind /proc/self/fd/3 "$LAB_DIR" ;;
		esac
		exec 3<&-
		mount --bind "$LAB_D/lib" /var/lib/libvirt
		mount --bind "$LAB_D/cache" /var/cache/libvirt
		mount --bind "$LAB_D/log" /var/log/libvirt
		mount --bind "$LAB_D/etc" /etc/libvirt
		virtlogd -d -p /run/libvirt/virtlogd.pid
		libvirtd -d -p /run/libvirt/libvirtd.pid
		echo $$ >"$LAB_D/anchor.pid"
		exec sleep 2147483647' </dev/null >"$d/start.log" 2>&1
}

_lab_node_ready() { # INDEX
	local n=n$1
	lab_wait 20 test -s "$LAB_DIR/$n/anchor.pid" ||
		_lab_err "$n: namespace did not come up: $(cat "$LAB_DIR/$n/start.log")" || return
	lab_wait 30 lab_virsh "$n" version >/dev/null 2>&1 ||
		_lab_err "$n: libvirtd did not answer; see $LAB_DIR/$n/log/libvirtd.log"
}

# The lab belongs to the shell that raised it ("PID STARTTIME" in $LAB_DIR/owner):
# while that shell lives, lab_up and lab_down elsewhere leave the lab alone, so
# two tests with the same LAB_PREFIX cannot tear down each other's lab.
_lab_start_time() { # PID
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return
	s=${s##*) }
	set -- $s
	echo "${20}"
}
_lab_foreign_owner() { # prints the owner's pid when someone else's lab is up
	local pid start
	read -r pid start 2>/dev/null <"$LAB_DIR/owner" || return 1
	[ "$pid" != $$ ] && [ -n "$start" ] && [ "$(_lab_start_time "$pid")" = "$start" ] &&
		echo "$pid"
}

lab_up() { # [NODES] [CLIENTS]
	local nodes=${1:-2} clients=${2:-1} i sw=$LAB_PREFIX-sw owner
	[ "$(id -u)" = 0 ] || _lab_err "lab_up needs root" || return
	if owner=$(_lab_foreign_owner) && [ -z "${LAB_FORCE:-}" ]; then
		_lab_err "lab '$LAB_PREFIX' is in use by pid $owner ($(tr '\0' ' ' <"/proc/$owner/cmdline"));" \
			"use another LAB_PREFIX, or LAB_FORCE=1"
		return
	fi
	LAB_FORCE=1 lab_down
	mkdir -p "$LAB_SHARED" "$LAB_DIR/console" "$LAB_DIR/vms" || return
	echo "$$ $(_lab_start_time $$)" >"$LAB_DIR/owner"
	"$LAB_ROOT/tests/lab/mkguest.sh" "$LAB_GUEST_DIR" >/dev/null ||
		_lab_err "could not make the guest image" || return
	_lab_netns_add "$sw" &&
	ip -n "$sw" link add sw0 type bridge &&
	ip -n "$sw" link set sw0 up || return
	for i in $(seq 1 "$nodes"); do
		_lab_node_net "$i" && _lab_node_daemons "$i" || return
	done
	for i in $(seq 1 "$clients"); do
		_lab_client_net "$i" || return
	done
	for i in $(seq 1 "$nodes"); do
		_lab_node_ready "$i" || return
	done
	[ "$nodes" -gt 0 ] || return 0
	mkdir -p "$LAB_CACHE_DIR/qemu-caps" &&
	cp "$LAB_DIR"/n1/cache/qemu/capabilities/*.xml "$LAB_CACHE_DIR/qemu-caps/" 2>/dev/null ||
		true
}

# The lab's namespaces, and nothing else that happens to share the prefix.
_lab_namespaces() {
	ip netns list 2>/dev/null | awk -v p="$LAB_PREFIX" \
		'$1 ~ "^" p "-(sw|etcd|n[0-9]+|c[0-9]+)$" { print $1 }'
}

# Every pid in the lab's namespaces; the netns is what marks a process as ours.
# The lab's processes: those in its namespaces, and any other naming its
# directory (a follower of a node's event log, say).
_lab_pids() {
	local ns f p args
	for ns in $(_lab_namespaces); do
		ip netns pids "$ns" 2>/dev/null
	done
	for f in /proc/[0-9]*/cmdline; do
		p=${f#/proc/}
		p=${p%/cmdline}
		[ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
		mapfile -d "" -t args 2>/dev/null <"$f" || continue
		case " ${args[*]} " in *"$LAB_DIR/"*) echo "$p" ;; esac
	done
}

lab_down() {
	local - ns pids owner
	set +e
	case $LAB_DIR in "" | / | /run | /tmp | /var | /etc)
		_lab_err "refusing to remove LAB_DIR='$LAB_DIR'"; return 1 ;;
	esac
	if owner=$(_lab_foreign_owner) && [ -z "${LAB_FORCE:-}" ]; then
		_lab_err "not tearing down lab '$LAB_PREFIX' of pid $owner (LAB_FORCE=1 does)"
		return 1
	fi
	pids=$(_lab_pids)
	if [ -n "$pids" ]; then
		kill -TERM $pids 2>/dev/null
		lab_wait 5 _lab_all_gone $pids
		kill -KILL $pids 2>/dev/null
		lab_wait 5 _lab_all_gone $pids
	fi
	for ns in $(_lab_namespaces); do
		ip netns del "$ns"
	done
	rm -rf "$LAB_DIR"
	return 0
}

_lab_all_gone() { # PID...
	local p
	for p; do
		kill -0 "$p" 2>/dev/null && return 1
	done
	return 0
}

lab_status() {
	local - ns n
	set +e
	echo "lab $LAB_DIR (prefix $LAB_PREFIX)"
	for ns in $(_lab_namespaces | sort); do
		n=$(_lab_name "$ns")
		case $n in
		n*)
			echo "$n $(lab_node_ip "$n") anchor=$(cat "$LAB_DIR/$n/anchor.pid" 2>/dev/null)" \
				"odrsd=$(lab_odrsd_pid "$n" 2>/dev/null || echo -)"
			lab_virsh "$n" list --all 2>&1 | sed 's/^/    /' ;;
		c*) echo "$n $(lab_client_ip "$n")" ;;
		*) echo "$n" ;;
		esac
	done
	echo "switch fdb (learned):"
	ip netns exec "$LAB_PREFIX-sw" bridge fdb show br sw0 2>/dev/null |
		grep -v permanent | sed 's/^/    /'
	return 0
}

lab_node_link() { # NODE up|down
	ip -n "$LAB_PREFIX-sw" link set "sw-$(_lab_name "$1")" "$2"
}

lab_vm_ip() { cat "$LAB_DIR/vms/$1.ip" 2>/dev/null || _lab_err "no VM $1"; }
lab_vm_mac() { cat "$LAB_DIR/vms/$1.mac" 2>/dev/null || _lab_err "no VM $1"; }
lab_vm_console() { echo "$LAB_DIR/console/$1.log"; }

lab_vm_start() { # NODE NAME IP MAC [MEM_MIB] [BALLAST_MIB] [CACHE_MIB]
	local node=${1:-} name=${2:-} ip=${3:-} mac=${4:-} ballast=${6:-0} cache=${7:-0} mem xml disk= v6off
	[ $# -ge 4 ] || _lab_err "usage: lab_vm_start NODE NAME IP MAC [MEM_MIB] [BALLAST_MIB] [CACHE_MIB]" || return
	mem=${5:-$((96 + ballast + cache))}
	case $ip in */*) ;; *) ip=$ip/16 ;; esac
	echo "${ip%/*}" >"$LAB_DIR/vms/$name.ip" &&
	echo "$mac" >"$LAB_DIR/vms/$name.mac" &&
	: >"$(lab_vm_console "$name")" || return
	if [ "$cache" -gt 0 ]; then
		# Random, so neither QEMU's zero-page check nor compression shrinks it.
		head -c "$((cache * 1048576))" /dev/urandom >"$LAB_DIR/vms/$name.disk" || return
		disk="<disk type='file' device='disk'><driver name='qemu' type='raw'/>
	      <source file='$LAB_DIR/vms/$name.disk'/><target dev='vda' bus='virtio'/><readonly/></disk>"
	fi
	xml=$LAB_DIR/vms/$name.xml
	v6off=ipv6.disable=1
	[ -z "${LAB_VM_IPV6:-}" ] || v6off=
	cat >"$xml" <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <memory unit='MiB'>$mem</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$LAB_GUEST_DIR/vmlinuz</kernel>
	    <initrd>$LAB_GUEST_DIR/initrd.gz</initrd>
	    <cmdline>console=ttyS0 quiet panic=-1 $v6off odrs.ip=$ip odrs.name=$name odrs.ballast=$ballast odrs.cache=$cache</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <on_crash>destroy</on_crash>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <interface type='bridge'>
	      <source bridge='br0'/>
	      <mac address='$mac'/>
	      <model type='virtio'/>
	    </interface>
	    <serial type='file'>
	      <source path='$(lab_vm_console "$name")' append='on'/>
	      <target port='0'/>
	    </serial>
	    <channel type='unix'>
	      <target type='virtio' name='org.qemu.guest_agent.0'/>
	    </channel>
	    $disk
	    <memballoon model='virtio'/>
	    <controller type='usb' model='none'/>
	  </devices>
	</domain>
	EOF
	lab_virsh "$node" define "$xml" >/dev/null &&
	lab_virsh "$node" start "$name" >/dev/null
}

lab_vm_http() { # FROM NAME: FROM is a node (n*) or a client (c*)
	local ip
	ip=$(lab_vm_ip "$2") || return
	case $(_lab_name "$1") in
	n*) lab_node_exec "$1" curl -sf -m 3 "http://$ip/" ;;
	*)  lab_client_exec "$1" curl -sf -m 3 "http://$ip/" ;;
	esac
}

_lab_vm_answers() { # NODE NAME
	[ "$(lab_vm_http "$1" "$2" 2>/dev/null)" = "hello from $2" ]
}

lab_vm_wait_ready() { # NODE NAME [TIMEOUT_S]
	local node=$1 name=$2 t=${3:-60} log
	log=$(lab_vm_console "$name")
	lab_wait "$t" grep -q "^odrs-guest-ready name=$name " "$log" ||
		_lab_err "$name: no ready marker in $log after ${t}s" || return
	lab_wait "$t" _lab_vm_answers "$node" "$name" ||
		_lab_err "$name: no HTTP answer from $(lab_vm_ip "$name") on $node"
}

lab_fdb_port() { # MAC
	ip netns exec "$LAB_PREFIX-sw" bridge fdb show br sw0 |
		awk -v mac="$(echo "$1" | tr A-F a-f)" '
			$1 == mac && !/permanent/ { for (i = 2; i < NF; i++) if ($i == "dev") print $(i + 1) }'
}

lab_router_client() { # CLIENT IP MAC
	ip -n "$(_lab_ns "$1")" neigh replace "$2" lladdr "$3" dev eth0 nud permanent
}

lab_client_first_syn_only() { # CLIENT
	local ns t list
	ns=$(_lab_ns "$1")
	for t in iptables:odrs_syn ip6tables:odrs_syn6; do
		list=${t#*:} t=${t%%:*}
		if ! ip netns exec "$ns" $t -C OUTPUT -p tcp --syn -m recent --name $list --set 2>/dev/null; then
			ip netns exec "$ns" $t -A OUTPUT -p tcp --syn -m recent --name $list --rcheck --seconds 86400 -j DROP &&
			ip netns exec "$ns" $t -A OUTPUT -p tcp --syn -m recent --name $list --set || return
		fi
		ip netns exec "$ns" sh -c "echo / > /proc/net/xt_recent/$list"
	done
}

lab_odrsd_conf() { # NODE
	local n d
	n=$(_lab_name "$1")
	d=$LAB_DIR/$n/odrs
	cat <<-EOF
	[odrsd]
	node = $n
	interface = br0
	snapshot_dir = $LAB_SHARED
	libvirt_uri = qemu:///system
	control_socket = $d/odrsd.sock
	event_log = $d/events.jsonl
	state_dir = $d/state
	EOF
}

lab_odrsctl() { # NODE ARGS...
	local n
	n=$(_lab_name "$1")
	shift
	lab_node_exec "$n" "$LAB_ODRSCTL" -s "$LAB_DIR/$n/odrs/odrsd.sock" "$@"
}

lab_odrsd_pid() { # NODE
	local f
	f=$LAB_DIR/$(_lab_name "$1")/odrsd.pid
	[ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

_lab_sock_accepts() { # NODE PATH
	lab_node_exec "$1" socat -u OPEN:/dev/null "UNIX-CONNECT:$2" 2>/dev/null
}

lab_odrsd_start() { # NODE CONFIG [ARGS...]
	local n d a conf sock
	n=$(_lab_name "$1")
	conf=$2
	shift 2
	d=$LAB_DIR/$n
	a=$(_lab_anchor "$n") || return
	[ -x "$LAB_ODRSD" ] || _lab_err "$LAB_ODRSD missing (make all)" || return
	mkdir -p "$d/odrs/state" || return
	rm -f "$d/odrsd.pid" "$d/odrsd.rc"
	# A detached wrapper keeps the exit status, so lab_odrsd_stop can report it.
	LAB_D=$d setsid -f sh -c 'nsenter -t "$0" -m -n -- "$@" & echo $! >"$LAB_D/odrsd.pid"
		wait $!; echo $? >"$LAB_D/odrsd.rc"' \
		"$a" "$LAB_ODRSD" -f -c "$conf" "$@" </dev/null >>"$d/odrsd.log" 2>&1
	lab_wait 5 test -s "$d/odrsd.pid" || _lab_err "$n: odrsd did not start" || return
	sock=$(sed -n 's/^[[:space:]]*control_socket[[:space:]]*=[[:space:]]*\([^;#[:space:]]*\).*/\1/p' "$conf" | tail -n 1)
	[ -n "$sock" ] || return 0
	lab_wait 10 _lab_odrsd_serving_or_dead "$n" "$sock" || true
	lab_odrsd_pid "$n" >/dev/null ||
		_lab_err "$n: odrsd exited (status $(cat "$d/odrsd.rc" 2>/dev/null)); see $d/odrsd.log" || return
	_lab_sock_accepts "$n" "$sock" ||
		_lab_err "$n: odrsd not serving on $sock; see $d/odrsd.log"
}

_lab_odrsd_serving_or_dead() { # NODE SOCK
	! lab_odrsd_pid "$1" >/dev/null || _lab_sock_accepts "$1" "$2"
}

lab_odrsd_stop() { # NODE [SIGNAL]
	local n d pid
	n=$(_lab_name "$1")
	d=$LAB_DIR/$n
	pid=$(cat "$d/odrsd.pid" 2>/dev/null) || _lab_err "$n: no odrsd started" || return
	kill -"${2:-TERM}" "$pid" 2>/dev/null || true
	if ! lab_wait 10 test -s "$d/odrsd.rc"; then
		kill -KILL "$pid" 2>/dev/null || true
		lab_wait 5 test -s "$d/odrsd.rc" || true
	fi
	return "$(cat "$d/odrsd.rc" 2>/dev/null || echo 1)"
}

lab_etcd_up() {
	local ns=$LAB_PREFIX-etcd d=$LAB_DIR/etcd
	mkdir -p "$d" &&
	_lab_netns_add "$ns" &&
	_lab_plug "$ns" eth0 sw-etcd &&
	ip -n "$ns" link set eth0 address 02:00:00:02:00:01 up &&
	ip -n "$ns" addr add 198.18.2.1/16 dev eth0 || return
	setsid -f ip netns exec "$ns" etcd --name lab --data-dir "$d/data" \
		--listen-client-urls http://198.18.2.1:2379,http://127.0.0.1:2379 \
		--advertise-client-urls http://198.18.2.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster lab=http://127.0.0.1:2380 \
		</dev/null >"$d/etcd.log" 2>&1
	lab_wait 20 ip netns exec "$ns" curl -sf -m 1 http://198.18.2.1:2379/health >/dev/null ||
		_lab_err "etcd did not come up; see $d/etcd.log"
}

lab_etcd_stop() { # [SIGNAL]
	local pids
	pids=$(ip netns pids "$LAB_PREFIX-etcd" 2>/dev/null)
	[ -n "$pids" ] || return 0
	kill -"${1:-TERM}" $pids 2>/dev/null || true
	lab_wait 10 _lab_all_gone $pids
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	up)     shift; lab_up "$@" && lab_status ;;
	down)   LAB_FORCE=1 lab_down ;;
	status) lab_status ;;
	node)   shift; lab_node_exec "$@" ;;
	client) shift; lab_client_exec "$@" ;;
	virsh)  shift; lab_virsh "$@" ;;
	*)      echo "usage: $0 up [NODES] [CLIENTS] | down | status | node NODE CMD... |" \
			"client CLIENT CMD... | virsh NODE ARGS..." >&2
		exit 2 ;;
	esac
fi

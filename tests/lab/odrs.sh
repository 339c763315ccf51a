# Shared by the end-to-end tests of odrsd (source after lab.sh).

fail() { echo "FAIL: $*"; [ -n "${LAB_DIR:-}" ] && odrs_dump_logs; exit 1; }
step() { echo "== $*"; }

odrs_dump_logs() {
	local f
	for f in "$LAB_DIR"/n*/odrsd.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
	done
	for f in "$LAB_DIR"/n*/odrs/events.jsonl; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
	done
}

# odrs_conf NODE LINE...: write the node's config (the lab's [odrsd] section
# plus LINEs) and print its path.
odrs_conf() {
	local node=$1 f
	shift
	f=$(lab_node_dir "$node")/odrs.conf
	{ lab_odrsd_conf "$node"; printf '%s\n' "$@"; } > "$f"
	echo "$f"
}

# odrs_state NODE VM: the VM's state as odrsctl lists it.
odrs_state() { lab_odrsctl "$1" list | awk -v vm="$2" '$1 == vm { print $4 }'; }

odrs_wait_state() { # NODE VM STATE [TIMEOUT_S=30]
	lab_wait "${4:-30}" _odrs_is "$1" "$2" "$3" ||
		{ echo "$2 is $(odrs_state "$1" "$2"), want $3"; return 1; }
}
_odrs_is() { [ "$(odrs_state "$1" "$2")" = "$3" ]; }

odrs_hibernate() { # NODE VM: hibernate and check that it sleeps with an image
	local out
	out=$(lab_odrsctl "$1" hibernate "$2") || fail "hibernate $2: $out"
	[ "$(odrs_state "$1" "$2")" = hibernated ] || fail "$2 not hibernated after hibernate"
	[ -s "$LAB_SHARED/$2.odrs-save" ] || fail "no image $LAB_SHARED/$2.odrs-save"
	lab_virsh "$1" domstate "$2" | grep -q 'shut off' || fail "$2 still runs after hibernate"
}

# Log greps scoped to a step: odrs_mark NODE remembers how many lines the node's
# odrsd.log and event log have; odrs_log and odrs_evlog print only what follows
# (everything when no mark was set), and odrs_event(s) count only that.
odrs_mark() { # NODE
	local d
	d=$(lab_node_dir "$1")
	echo "$(cat "$d/odrsd.log" 2>/dev/null | wc -l) $(cat "$d/odrs/events.jsonl" 2>/dev/null | wc -l)" > "$d/mark"
}
odrs_log() { _odrs_since "$1" 1 odrsd.log; }   # NODE
odrs_evlog() { _odrs_since "$1" 2 odrs/events.jsonl; } # NODE
_odrs_since() { # NODE FIELD FILE
	local d n=0
	d=$(lab_node_dir "$1")
	[ -s "$d/mark" ] && n=$(cut -d' ' -f"$2" "$d/mark")
	tail -n +$((n + 1)) "$d/$3" 2>/dev/null
}

# odrs_event NODE EVENT VM: the event log has such a line since the mark.
odrs_event() {
	odrs_evlog "$1" | grep "\"event\":\"$2\"" | grep -q "\"vm\":\"$3\""
}

# odrs_replayed_once NODE VM: since the mark, NODE replayed one held SYN into
# VM's tap and saw the guest answer that first replay (no re-injection).
odrs_replayed_once() {
	odrs_evlog "$1" | grep '"event":"syn_replayed"' | grep "\"vm\":\"$2\"" | grep -q '"count":1' ||
		fail "$1: no syn_replayed of $2 with count 1: $(odrs_evlog "$1" | grep syn_replayed)"
	lab_wait 10 eval "odrs_log $1 | grep -Eq '$2: (replayed SYNs answered|.*not answered) after'" ||
		fail "$1: the held SYN of $2 was never released"
	odrs_log "$1" | grep -q "$2: replayed SYNs answered after 1 tries" ||
		fail "$1: the first replay to $2 was not seen answered: $(odrs_log "$1" | grep -E 're-inject|answered')"
}

# A capture on a client's eth0: start it, then count what it saw (stopping it).
# The count is exact: before stopping, the client sends a marker (an ARP
# request for ODRS_MARKER_IP, which nothing answers) and the count waits
# until the capture has written it, so every frame the client sent before
# is in the file too, however late the loaded machine schedules tcpdump (a
# SIGINT drops what it has not read yet; immediate mode alone does not
# help a tcpdump that is not running). The marker itself is never counted.
ODRS_MARKER_IP=198.18.255.254
ODRS_MARKER="arp and arp[24:4] = 0xc612fffe"
odrs_capture_start() { # CLIENT FILTER
	local f=$LAB_DIR/cap-$1
	rm -f "$f.pcap" "$f.err"
	printf '%s\n' "$2" > "$f.filter"
	# Not through a function: $! must be tcpdump itself (ip netns exec execs it).
	ip netns exec "$LAB_PREFIX-$1" tcpdump -i eth0 -U --immediate-mode -w "$f.pcap" "($2) or ($ODRS_MARKER)" 2> "$f.err" &
	echo $! > "$f.pid"
	lab_wait 10 grep -q listening "$f.err" || fail "tcpdump on $1 did not start: $(cat "$f.err")"
}

_odrs_capture_has() { tcpdump -nn -r "$1" "$2" 2> /dev/null | grep -q .; }

odrs_capture_count() { # CLIENT [FILTER, default: the capture's]
	local f=$LAB_DIR/cap-$1 pid
	if [ -s "$f.pid" ]; then
		pid=$(cat "$f.pid")
		lab_client_exec "$1" arping -q -c 1 -w 1 -i eth0 $ODRS_MARKER_IP > /dev/null 2>&1 &
		lab_wait 10 _odrs_capture_has "$f.pcap" "$ODRS_MARKER" ||
			echo "odrs_capture_count: the marker never reached the capture on $1" >&2
		wait $!
		# With the marker in the file, so is all before it: what comes after does not count.
		kill -INT "$pid" 2> /dev/null
		wait "$pid" 2> /dev/null # no child of a $(...) subshell: then tcpdump ends on its own
		rm -f "$f.pid"
	fi
	tcpdump -nn -r "$f.pcap" "(${2:-$(cat "$f.filter")}) and not ($ODRS_MARKER)" 2> /dev/null | wc -l
}

# odrs_guest_sh NODE VM CMD: run CMD in the guest through its agent, print its output.
odrs_guest_sh() {
	local pid= out
	# libvirt reports the agent "not available" until the guest's end of the
	# channel has connected: give a freshly booted guest a few seconds.
	for _ in $(seq 30); do
		pid=$(lab_virsh "$1" qemu-agent-command "$2" \
			"{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\",\"arg\":[\"-c\",\"$3\"],\"capture-output\":true}}" 2>/dev/null |
			sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
		[ -n "$pid" ] && break
		sleep 0.2
	done
	[ -n "$pid" ] || { echo "odrs_guest_sh: $2: the agent does not answer" >&2; return 1; }
	for _ in $(seq 50); do
		out=$(lab_virsh "$1" qemu-agent-command "$2" \
			"{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 1
		case $out in *'"exited":true'*) break ;; esac
		sleep 0.1
	done
	sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' <<<"$out" | base64 -d
}

# odrs_events NODE EVENT VM: how many such lines the event log has since the mark.
odrs_events() {
	odrs_evlog "$1" | grep "\"event\":\"$2\"" | grep -c "\"vm\":\"$3\""
}

# /metrics (metrics_listen): odrs_metrics_conf NODE prints the key for the
# node's address; odrs_scrape NODE FILE scrapes into FILE and runs promtool
# on it; odrs_metric FILE SERIES prints a series' value (status 1: absent);
# odrs_metric_grew_by_one BEFORE AFTER SERIES fails unless it grew by one.
ODRS_METRICS_PORT=9464
odrs_metrics_conf() { echo "metrics_listen = $(lab_node_ip "$1"):$ODRS_METRICS_PORT"; }
odrs_scrape() { # NODE FILE
	local url="http://$(lab_node_ip "$1"):$ODRS_METRICS_PORT/metrics"
	lab_node_exec "$1" curl -sS --fail --max-time 10 "$url" > "$2" || fail "scrape of $url failed"
	promtool check metrics < "$2" || fail "promtool: $(promtool check metrics < "$2" 2>&1)"
}
odrs_metric() { # FILE SERIES
	awk -v s="$2" '$1 == s { print $2; found = 1 } END { exit !found }' "$1"
}
odrs_metric_grew_by_one() { # BEFORE AFTER SERIES
	local a b
	a=$(odrs_metric "$1" "$3") && b=$(odrs_metric "$2" "$3") || fail "no $3 in $1 or $2"
	[ "$((b - a))" = 1 ] || fail "$3 went from $a to $b, want one more"
}

# odrs_vm_sections N [BASE]: N [vm sI] sections for VMs without domains, sI at
# 198.18.BASE.0 + I (BASE 16 unless given; into 198.19.x past the lab's /16),
# MAC 52:54:01 + I. With an image sI.odrs-save each (odrs_snapshot_files N),
# odrsd sees every one hibernated.
odrs_vm_sections() {
	awk -v n="$1" -v base="${2:-16}" 'BEGIN {
		for (i = 1; i <= n; i++) {
			a = base * 256 + i
			printf "[vm s%d]\nip = 198.%d.%d.%d\nmac = 52:54:01:%02x:%02x:%02x\n", i,
				18 + int(a / 65536), int(a / 256) % 256, a % 256,
				int(i / 65536) % 256, int(i / 256) % 256, i % 256
		}
	}'
}

# odrs_snapshot_files N: an empty image sI.odrs-save in snapshot_dir for each of s1..sN.
odrs_snapshot_files() {
	awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++) print "s" i ".odrs-save" }' |
		(cd "$LAB_SHARED" && xargs touch)
}

# Swap for doze: odrs_zram_up hot-adds a zram device of this test's own and
# swaps on it (for a host without swap; zram0 and other tests' devices are
# never touched); odrs_zram_down removes it (call it at exit).
odrs_has_swap() { [ "$(wc -l < /proc/swaps)" -gt 1 ]; }
_odrs_zram=
odrs_zram_up() {
	[ -e /sys/class/zram-control ] || modprobe zram 2> /dev/null || return 1
	_odrs_zram=$(cat /sys/class/zram-control/hot_add 2> /dev/null) || return 1
	echo 4G > "/sys/block/zram$_odrs_zram/disksize" && mkswap "/dev/zram$_odrs_zram" > /dev/null &&
		swapon "/dev/zram$_odrs_zram" || { odrs_zram_down; return 1; }
}
odrs_zram_down() {
	[ -n "$_odrs_zram" ] || return 0
	swapoff "/dev/zram$_odrs_zram" 2> /dev/null
	echo "$_odrs_zram" > /sys/class/zram-control/hot_remove
	_odrs_zram=
}

# odrs_qemu_kib NODE VM FIELD: QEMU's VmRSS or VmSwap, in KiB.
odrs_qemu_kib() {
	local pid
	pid=$(lab_node_exec "$1" cat "/run/libvirt/qemu/$2.pid") || return 1
	awk -v f="$3:" '$1 == f { print $2 }' "/proc/$pid/status"
}

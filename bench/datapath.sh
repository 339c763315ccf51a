#!/bin/bash
# The data path under load: how fast odrsd answers ARP for a sleeping VM, and
# how much CPU odrsd spends, while a generator sends RATES frames/s of other
# traffic across the node's bridge, with N sleeping VMs in odrsd's table.
#
# One node n1 (single-node mode: no [cluster], so it always answers ARP) and
# two clients. The N VMs need no guests: each is a [vm sI] section (ip, mac)
# with no domain on the node and an image sI.odrs-save in snapshot_dir, which odrsd
# sees as hibernated (as bench/retrain.sh does). Addresses: sI is
# 198.18.16.0 + I (into 198.19.x for large N; the lab's /16 holds the first
# 61,000 or so, the arping target s1 among them), MAC 52:54:01 + I.
# Config: idle_timeout = 0, probe = none, wake_on = syn (an ARP request is
# answered but wakes nothing: there is nothing to wake).
#
# For each N, odrsd is started and timed: until its control socket answers
# (config parsed, table built), and until `odrsctl status` shows
# `sleeping: N` (every VM inspected: one libvirt lookup and one stat each).
# Then, ROUNDS times, for each SERIES and RATE: DURATION s of flood from
# client c1, and during it (after WARMUP s) PINGS ARP requests GAP s apart
# from client c2 (arping) for sleeping s1. A reply's time is taken on c2's
# wire: tcpdump on its eth0, the kernel's timestamps of the request going out
# and of the reply coming in. arping's own time= (kept in the CSV) starts
# only when its send call returns, and on these veths that call already
# carries the request through the switch to the node and into odrsd's
# socket: under load it read a few microseconds, less than a wake-up.
#
# Series (the flood's frames):
#   ack  build/flood: 54-byte TCP ACKs to a non-VM address. odrsd's wake
#        capture's kernel filter (ARP requests; SYNs; SYN-ACKs) rejects them:
#        "unrelated" traffic, the common case.
#   arp  ARP requests for 256 non-VM addresses (198.18.8.0/24), from a
#        generator built at run time from the C below (build/flood's loop with
#        an ARP frame). They pass the filter: odrsd wakes up, decodes each and
#        looks it up in its table, and finds nothing.
# Both floods go to a unicast MAC that no host has (FAKE_MAC) and that the
# lab's switch has a static entry for on n1's port (bridge fdb ... static):
# they cross the switch to n1 only (not to c2, whose arping would otherwise
# have to sift them), n1's br0 floods them to its ports (none but the uplink)
# and, being promiscuous while odrsd captures, hands each to its own
# interface, where the capture's filter sees it. That is the path of any
# traffic crossing the node's bridge, e.g. to a VM odrs does not manage.
#
# odrsd's share of each reply, from its /metrics (metrics_listen) scraped
# before and after each flood: odrs_reply_delay_seconds (a neighbour
# request's capture, the kernel's receive time, to its reply's send),
# odrs_reply_turn_seconds (of that, the part from the start of the loop turn
# that sent the reply) and odrs_loop_turn_seconds (what each loop turn
# spent in callbacks), as the bucket deltas over the flood: how many over
# 1 ms, and the highest bucket reached. A reply slow on c2's wire (over
# 1 ms) while odrsd's delays stayed under 1 ms took its time outside odrsd;
# one slow in capture-to-send but not in its in-loop part waited before
# odrsd's loop ran (in the kernel, for a core). PERF_SCHED=1 also records
# the scheduler (perf sched record -a) over each flood and keeps, per
# flood, odrsd's, arping's and ksoftirqd's longest wait for a core (perf
# sched timehist) in datapath-sched.csv. PERF_SAMPLES=1 instead samples
# every CPU's stacks (perf record -a -g, 4000 Hz). With KEEP=DIR, each
# flood's perf data (CLOCK_MONOTONIC), c2's capture and the
# realtime-monotonic offset with odrsd's PID go to DIR, for
# bench/slow_replies.py (where each slow reply's time went).
#
# CPU, as bench/activity.sh counts it: odrsd's utime + stime (/proc/PID/stat)
# from the flood's start to TAIL s after its end, divided by the flood's
# duration, in % of one core; the machine's (every thread's exact run time,
# /proc/*/task/*/schedstat, plus the generator's own, which carries the
# kernel's work on the frames) for context. Achieved pps: frames that reached
# n1 (its uplink's rx_packets) per second; the generator's own count too.
#
# Output (RESULTS, default bench/results/):
#   datapath.csv  vms,series,rate,achieved_pps,sent_pps,odrsd_cpu_pct,
#                 system_cpu_pct,flood_cpu_pct,frames_to_userspace,
#                 frames_reached,requests,replies,p50_ms,p99_ms,max_ms,
#                 arping_p50_ms,arping_p99_ms,round,evlog_bps,pcap_drops,
#                 slow_replies,odrsd_replies,odrsd_replies_over_1ms,
#                 odrsd_reply_max_le_ms,in_turn_replies,in_turn_over_1ms,
#                 in_turn_max_le_ms,loop_turns,loop_turns_over_1ms,
#                 loop_turn_max_le_ms
#                 one row per flood (frames_to_userspace: odrsd's "frames"
#                 counter over it; frames_reached: n1's uplink rx_packets over
#                 it; in the arp series every one of those passes the filter,
#                 so the difference is what the capture lost: its ring was
#                 full; requests, replies: seen on c2's wire; slow_replies:
#                 those over 1 ms on c2's wire; odrsd_*: the replies odrsd
#                 sent over the flood, those whose capture-to-send was over
#                 1 ms, the upper bound of the highest bucket one reached
#                 ("inf" past 100 ms); in_turn_*: the same for the replies'
#                 in-loop part; loop_*: the same for loop turns)
#   datapath-sched.csv  vms,series,rate,round,odrsd_max_wait_ms,
#                 arping_max_wait_ms,ksoftirqd_max_wait_ms (PERF_SCHED=1 only;
#                 odrsd: its loop thread; ksoftirqd: any CPU's, which runs
#                 the network's softirqs once they are deferred to it)
#   datapath-detail.csv  vms,series,rate,round,reply_ms: every reply
#   datapath-start.csv   vms,socket_s,inspected_s,odrsd_cpu_s,rss_mib,conf_mib
#                 (odrsd's CPU from the socket to every VM inspected)
#   datapath.txt  per (N, series, rate): reply p50/p99/max over all rounds'
#                 replies, medians of the rest; start-up; machine; command
#   datapath.png  ARP reply p99 vs rate per N and series; odrsd CPU vs rate
#
# Knobs: N="1000 10000 100000" RATES="0 10000 50000 100000 200000"
# SERIES="ack arp" DURATION=6 PINGS=500 GAP=0.005 ROUNDS=2 START_TIMEOUT=900 TAG= PERF_SCHED=0
# PERF_SAMPLES=0 KEEP=
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit.
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

NS=${N:-"1000 10000 100000"}
RATES=${RATES:-"0 10000 50000 100000 200000"}
SERIES=${SERIES:-"ack arp"}
DURATION=${DURATION:-6}
PINGS=${PINGS:-500}
GAP=${GAP:-0.005}
ROUNDS=${ROUNDS:-2}
START_TIMEOUT=${START_TIMEOUT:-900}
RESULTS=${RESULTS:-$BENCH_DIR/results}
FLOOD=${FLOOD:-$LAB_ROOT/build/flood}
WARMUP=1
TAIL=1
MEM=-
HZ=$(getconf CLK_TCK)
FAKE_MAC=02:00:00:0e:00:01 # no host's; the switch sends it to n1
NOVM_IP=198.18.8.1         # the ACK flood's destination; ARP asks for 198.18.8.0/24
VM=s1 VM_IP=198.18.16.1    # the arping target (first of the generated VMs)

[ -x "$FLOOD" ] || { echo "no $FLOOD: make build/flood"; exit 1; }
awk -v d="$DURATION" -v w="$WARMUP" -v p="$PINGS" -v g="$GAP" 'BEGIN { exit !(w + p * g + 0.5 < d) }' ||
	{ echo "DURATION=$DURATION is too short for WARMUP + PINGS x GAP"; exit 1; }
mkdir -p "$RESULTS" || exit 1
PERF_SCHED=${PERF_SCHED:-0}
PERF_SAMPLES=${PERF_SAMPLES:-0}
KEEP=${KEEP:-}
TAG=${TAG:-} # results in datapath-TAG*.csv ..., datapath*.csv without it
SFX=${TAG:+-$TAG}
CSV=$RESULTS/datapath$SFX.csv SCSV=$RESULTS/datapath$SFX-start.csv DCSV=$RESULTS/datapath$SFX-detail.csv
TXT=$RESULTS/datapath$SFX.txt PNG=$RESULTS/datapath$SFX.png PCSV=$RESULTS/datapath$SFX-sched.csv

# arpflood: build/flood's schedule with ARP requests, their target address
# cycling through -n consecutive addresses from -D.
build_arpflood() {
	cc -O2 -Wall -o "$LAB_DIR/arpflood" -x c - <<-'EOF'
	#define _GNU_SOURCE
	#include <arpa/inet.h>
	#include <errno.h>
	#include <linux/if_ether.h>
	#include <linux/if_packet.h>
	#include <net/if.h>
	#include <stdint.h>
	#include <stdio.h>
	#include <stdlib.h>
	#include <string.h>
	#include <sys/socket.h>
	#include <time.h>
	#include <unistd.h>
	#define LEN 42
	#define MAX_BATCH 256
	static int mac(const char *s, uint8_t *m)
	{
		char e;
		return sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%c", &m[0], &m[1], &m[2], &m[3],
			      &m[4], &m[5], &e) == 6 ? 0 : -1;
	}
	static double now_s(void)
	{
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
	}
	static struct timespec at(struct timespec t0, double s)
	{
		long long ns = t0.tv_nsec + (long long)(s * 1e9);
		t0.tv_sec += (time_t)(ns / 1000000000);
		t0.tv_nsec = (long)(ns % 1000000000);
		return t0;
	}
	int main(int argc, char **argv)
	{
		const char *ifname = NULL;
		uint8_t smac[6], dmac[6], (*fr)[LEN];
		struct in_addr sip = { 0 }, dip = { 0 };
		double rate = -1, seconds = -1, t_start, elapsed;
		unsigned ntargets = 1, batch, cur = 0;
		int have = 0, c, fd, one = 1;
		unsigned long long total, sent = 0, errors = 0;
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_halen = 6 };
		static struct iovec iov[MAX_BATCH];
		static struct mmsghdr msgs[MAX_BATCH];
		struct timespec t0, next, cpu;

		while ((c = getopt(argc, argv, "i:s:d:S:D:n:r:t:")) != -1) {
			switch (c) {
			case 'i': ifname = optarg; have |= 1; break;
			case 's': if (mac(optarg, smac) < 0) return 2; have |= 2; break;
			case 'd': if (mac(optarg, dmac) < 0) return 2; have |= 4; break;
			case 'S': if (inet_pton(AF_INET, optarg, &sip) != 1) return 2; have |= 8; break;
			case 'D': if (inet_pton(AF_INET, optarg, &dip) != 1) return 2; have |= 16; break;
			case 'n': ntargets = (unsigned)strtoul(optarg, NULL, 10); break;
			case 'r': rate = strtod(optarg, NULL); break;
			case 't': seconds = strtod(optarg, NULL); break;
			default: return 2;
			}
		}
		if (have != 31 || rate < 0 || seconds <= 0 || ntargets < 1) {
			fprintf(stderr, "usage: arpflood -i IF -s SMAC -d DMAC -S SIP -D FIRST_TIP [-n N] -r PPS -t S\n");
			return 2;
		}
		if (!(fr = calloc(ntargets, LEN)))
			return 1;
		for (unsigned i = 0; i < ntargets; i++) {
			uint8_t *f = fr[i], *a = f + 14;
			uint32_t tip = htonl(ntohl(dip.s_addr) + i);
			memcpy(f, dmac, 6);
			memcpy(f + 6, smac, 6);
			f[12] = 0x08, f[13] = 0x06;           /* ARP */
			a[1] = 1, a[2] = 0x08, a[4] = 6, a[5] = 4, a[7] = 1; /* Ethernet/IPv4 request */
			memcpy(a + 8, smac, 6);
			memcpy(a + 14, &sip, 4);
			memcpy(a + 24, &tip, 4);
		}
		memcpy(to.sll_addr, dmac, 6);
		if (!(to.sll_ifindex = (int)if_nametoindex(ifname))) {
			perror(ifname);
			return 1;
		}
		if ((fd = socket(AF_PACKET, SOCK_RAW, 0)) < 0) {
			perror("socket");
			return 1;
		}
		setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
		for (int i = 0; i < MAX_BATCH; i++) {
			iov[i].iov_len = LEN;
			msgs[i].msg_hdr.msg_name = &to;
			msgs[i].msg_hdr.msg_namelen = sizeof(to);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		total = (unsigned long long)(rate * seconds + 0.5);
		batch = rate / 1000 < 1 ? 1 : rate / 1000 > MAX_BATCH ? MAX_BATCH : (unsigned)(rate / 1000);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		t_start = now_s();
		if (total == 0) {
			next = at(t0, seconds);
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
		}
		while (sent < total && now_s() - t_start < seconds) {
			unsigned n = total - sent < batch ? (unsigned)(total - sent) : batch;
			int r;

			for (unsigned i = 0; i < n; i++)
				iov[i].iov_base = fr[(cur + i) % ntargets];
			r = sendmmsg(fd, msgs, n, 0);
			if (r < 0) {
				if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
					perror("sendmmsg");
					return 1;
				}
				errors++;
				r = 0;
			}
			sent += (unsigned)r;
			cur = (cur + (unsigned)r) % ntargets;
			next = at(t0, (double)(r ? sent : sent + 1) / rate);
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
		}
		elapsed = now_s() - t_start;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
		printf("sent=%llu seconds=%.3f pps=%.0f target=%.0f errors=%llu cpu=%.3f\n", sent, elapsed,
		       (double)sent / elapsed, rate, errors, (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
		return 0;
	}
	EOF
}

ticks() { # PID: its utime + stime, in clock ticks
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "no process $1"; return 1; }
	s=${s##*) }
	set -- $s
	echo $((${12} + ${13}))
}
# runtimes FILE: "TID NS" for every thread, NS its exact run time so far.
runtimes() {
	grep -H . /proc/[0-9]*/task/[0-9]*/schedstat 2>/dev/null | awk -F'[/: ]' '{ print $5, $7 }' > "$1"
}
rx_packets() { ip netns exec "$LAB_PREFIX-n1" cat /sys/class/net/up0/statistics/rx_packets; }
status() { lab_odrsctl n1 status > "$LAB_DIR/status" 2>&1; }
counter() { awk -F': *' -v k="$1" '$1 == k { print $2 }' "$LAB_DIR/status"; } # after status
kv() { sed -n "s/.*\<$1=\([0-9.]*\).*/\1/p" <<<"$2"; } # KEY "k=v ..." -> v
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# start_odrsd N: odrsd with N sleeping VMs; times its start (START_* below).
start_odrsd() {
	local n=$1 conf sock t0 c0 c1
	conf=$(odrs_conf n1 "$(odrs_metrics_conf n1)" "[policy]" "idle_timeout = 0" "probe = none" "wake_on = syn") ||
		fail "conf"
	odrs_vm_sections "$n" >> "$conf"
	sock=$(lab_node_dir n1)/odrs/odrsd.sock
	t0=$(now)
	# It waits 10 s for the socket; a large table can take longer to load.
	lab_odrsd_start n1 "$conf" > /dev/null 2>&1 || true
	PID=$(lab_odrsd_pid n1) || fail "odrsd did not start with $n VMs; see $(lab_node_dir n1)/odrsd.log"
	c0=$(ticks "$PID")
	until lab_node_exec n1 socat -u OPEN:/dev/null "UNIX-CONNECT:$sock" 2> /dev/null; do
		kill -0 "$PID" 2> /dev/null || fail "odrsd exited; see $(lab_node_dir n1)/odrsd.log"
		[ "$(since "$t0" | cut -d. -f1)" -lt "$START_TIMEOUT" ] || fail "odrsd: no socket after $START_TIMEOUT s"
		sleep 0.1
	done
	START_SOCK=$(since "$t0")
	until status && [ "$(counter sleeping)" = "$n" ]; do
		kill -0 "$PID" 2> /dev/null || fail "odrsd exited; see $(lab_node_dir n1)/odrsd.log"
		[ "$(since "$t0" | cut -d. -f1)" -lt "$START_TIMEOUT" ] ||
			fail "after $START_TIMEOUT s only $(counter sleeping) of $n VMs seen sleeping"
		sleep 0.2
	done
	START_ALL=$(since "$t0")
	c1=$(ticks "$PID")
	START_CPU=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz }')
	START_RSS=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
	START_CONF=$(du -m "$conf" | cut -f1)
	echo "odrsd with $n VMs: socket after $START_SOCK s, all $n sleeping after $START_ALL s" \
		"(odrsd CPU after the socket: $START_CPU s; RSS $START_RSS MiB)"
	echo "$n,$START_SOCK,$START_ALL,$START_CPU,$START_RSS,$START_CONF" >> "$SCSV"
}

# flood SERIES RATE: the generator's command line for c1.
flood_cmd() {
	case $1 in
	ack) echo "$FLOOD -i eth0 -s $SRC_MAC -d $FAKE_MAC -S $SRC_IP -D $NOVM_IP -r $2 -t $DURATION" ;;
	arp) echo "$LAB_DIR/arpflood -i eth0 -s $SRC_MAC -d $FAKE_MAC -S $SRC_IP -D ${NOVM_IP%.*}.0 -n 256 -r $2 -t $DURATION" ;;
	esac
}

# pct P: the P-th percentile (nearest rank) of the numbers on standard input ("-" if none).
pct() {
	sort -g | awk -v p="$1" '{ x[NR] = $1 }
		END { k = int(p * NR); if (k < p * NR) k++; if (NR) printf "%.3f", x[k < 1 ? 1 : k]; else printf "-" }'
}

# replies PCAP: one line per reply for VM_IP seen on c2, "LATENCY_MS", from
# the kernel's timestamps of the request leaving and the reply arriving.
# Requests and replies are paired in order when every request was answered;
# otherwise each reply goes with the last request before it (exact while
# replies take less than GAP; a lost request leaves no gap in the order).
replies() {
	tcpdump -r "$1" -nn -tt 2> /dev/null | awk -v ip="$VM_IP" '
		index($0, "Request who-has " ip " ") { q[++nq] = $1 }
		index($0, "Reply " ip " is-at ") { r[++nr] = $1 }
		END {
			j = 1
			for (i = 1; i <= nr; i++) {
				if (nr == nq) {
					k = i
				} else {
					while (j < nq && q[j + 1] <= r[i]) j++
					k = j
				}
				if (k <= nq && q[k] <= r[i]) printf "%.3f\n", (r[i] - q[k]) * 1000
			}
			print nq, nr > "/dev/stderr"
		}'
}

# scrape FILE: odrsd's /metrics.
scrape() {
	lab_node_exec n1 curl -sS --fail --max-time 10 "http://$(lab_node_ip n1):$ODRS_METRICS_PORT/metrics" > "$1" ||
		fail "scrape of n1's /metrics failed"
}
# hist_delta BEFORE AFTER FAMILY: "observations over_1ms max_le_ms" of a
# histogram over the time between two scrapes; max_le_ms is the upper bound
# of the highest bucket that grew ("inf" beyond the last, "-" if none did).
hist_delta() {
	awk -v f="$3" '
		function le(l) { sub(/.*le="/, "", l); sub(/".*/, "", l); return l }
		$1 ~ "^" f "_bucket" { v[le($1)] = FNR == NR ? -$2 : v[le($1)] + $2; if (FNR == NR) order[++n] = le($1) }
		$1 == f "_count" { c += FNR == NR ? -$2 : $2 }
		END {
			# cumulative buckets: the highest le whose count grew beyond the one below
			max = "-"; below = 0
			for (i = 1; i <= n; i++) { if (v[order[i]] > below) max = order[i]; below = v[order[i]] }
			printf "%d %d %s\n", c, c - v["0.001"], max == "-" ? "-" : max == "+Inf" ? "inf" : max * 1000
		}' "$1" "$2"
}
# sched_max PERF_DATA TASK: the longest wait for a core (from its wake-up to running, the
# "sch delay" of perf sched timehist, a migration to another CPU included) of the threads
# whose name[tid] starts with TASK, in ms.
sched_max() {
	perf sched timehist -i "$1" 2> /dev/null | awk -v c="$2" '
		index($3, c) == 1 && $(NF - 1) + 0 > best { best = $(NF - 1) + 0 }
		END { printf "%.3f", best }'
}

# measure N SERIES RATE ROUND: one flood with arping during it; one CSV row
# and the reply times in the detail CSV.
measure() {
	local n=$1 s=$2 rate=$3 round=$4 p0 p1 rx0 rx1 f0 f1 out fpid tpid secs ach cpu sys fl
	local pcap=$LAB_DIR/arp.pcap reqs reps arping e0 e1 d0 d1 ppid slow share
	status; f0=$(counter frames) d0=$(counter pcap_drops_wake)
	scrape "$LAB_DIR/m0"
	e0=$(stat -c %s "$(lab_node_dir n1)/odrs/events.jsonl" 2> /dev/null || echo 0)
	rm -f "$pcap"
	ip netns exec "$LAB_PREFIX-c2" tcpdump --immediate-mode -i eth0 -nn -U -w "$pcap" "arp and host $VM_IP" \
		2> "$LAB_DIR/tcpdump.err" &
	tpid=$!
	lab_wait 10 grep -q listening "$LAB_DIR/tcpdump.err" || fail "tcpdump: $(cat "$LAB_DIR/tcpdump.err")"
	p0=$(ticks "$PID") || fail "$p0"
	rx0=$(rx_packets)
	runtimes "$LAB_DIR/rt0"
	ip netns exec "$LAB_PREFIX-c1" $(flood_cmd "$s" "$rate") > "$LAB_DIR/flood.out" 2>&1 &
	fpid=$!
	if [ "$PERF_SCHED" = 1 ]; then
		perf sched record -k CLOCK_MONOTONIC -a -o "$LAB_DIR/sched.data" -- sleep "$DURATION" > /dev/null 2>&1 &
	elif [ "$PERF_SAMPLES" = 1 ]; then
		perf record -k CLOCK_MONOTONIC -a -g -F 4000 -o "$LAB_DIR/samples.data" -- sleep "$DURATION" > /dev/null 2>&1 &
	else
		true &
	fi
	ppid=$!
	sleep "$WARMUP"
	lab_client_exec c2 arping -i eth0 -c "$PINGS" -W "$GAP" -w $((DURATION + 5)) "$VM_IP" \
		> "$LAB_DIR/arping.out" 2>&1
	wait "$fpid" || fail "flood: $(cat "$LAB_DIR/flood.out")"
	wait "$ppid"
	sleep "$TAIL"
	runtimes "$LAB_DIR/rt1"
	rx1=$(rx_packets)
	p1=$(ticks "$PID") || fail "$p1"
	kill -INT "$tpid"
	wait "$tpid"
	status; f1=$(counter frames) d1=$(counter pcap_drops_wake)
	scrape "$LAB_DIR/m1"
	e1=$(stat -c %s "$(lab_node_dir n1)/odrs/events.jsonl" 2> /dev/null || echo 0)
	out=$(cat "$LAB_DIR/flood.out")
	[ "$(kv errors "$out")" = 0 ] || echo "   (flood: $out)"
	secs=$(kv seconds "$out")
	ach=$(awk -v a="$rx0" -v b="$rx1" -v t="$secs" 'BEGIN { printf "%.0f", (b - a) / t }')
	cpu=$(awk -v a="$p0" -v b="$p1" -v t="$secs" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz / t * 100 }')
	fl=$(awk -v c="$(kv cpu "$out")" -v t="$secs" 'BEGIN { printf "%.1f", c / t * 100 }')
	sys=$(awk -v c="$(kv cpu "$out")" -v t="$secs" '
		NR == FNR { a[$1] = $2; next }
		{ ns += $2 - ($1 in a ? a[$1] : 0) }
		END { printf "%.1f", (ns / 1e9 + c) / t * 100 }' "$LAB_DIR/rt0" "$LAB_DIR/rt1")
	replies "$pcap" 2> "$LAB_DIR/counts" > "$LAB_DIR/lat"
	read -r reqs reps < "$LAB_DIR/counts"
	sed "s/^/$n,$s,$rate,$round,/" "$LAB_DIR/lat" >> "$DCSV"
	# arping's own time= (kept for comparison; see the header)
	arping=$(grep -o 'time=[0-9.]* [mu]sec' "$LAB_DIR/arping.out" |
		awk '{ v = substr($1, 6); if ($2 == "usec") v /= 1000; print v }' > "$LAB_DIR/alat"
		echo "$(pct 0.5 < "$LAB_DIR/alat"),$(pct 0.99 < "$LAB_DIR/alat")")
	slow=$(awk '$1 > 1 { n++ } END { print n + 0 }' "$LAB_DIR/lat")
	share=$(hist_delta "$LAB_DIR/m0" "$LAB_DIR/m1" odrs_reply_delay_seconds)
	share="$share $(hist_delta "$LAB_DIR/m0" "$LAB_DIR/m1" odrs_reply_turn_seconds)"
	share="$share $(hist_delta "$LAB_DIR/m0" "$LAB_DIR/m1" odrs_loop_turn_seconds)"
	set -- "$(pct 0.5 < "$LAB_DIR/lat")" "$(pct 0.99 < "$LAB_DIR/lat")" "$(pct 1 < "$LAB_DIR/lat")"
	echo "$n,$s,$rate,$ach,$(kv pps "$out"),$cpu,$sys,$fl,$((f1 - f0)),$((rx1 - rx0)),$reqs,$reps,$1,$2,$3,$arping,$round,$(awk -v a="$e0" -v b="$e1" -v t="$secs" 'BEGIN { printf "%.0f", (b - a) / t }'),$((${d1:-0} - ${d0:-0})),$slow,${share// /,}" >> "$CSV"
	printf 'N %6s %s %6s pps: reached %6s, odrsd %5s %%, machine %5s %% (flood %s %%), %8s to user; ARP %s/%s answered, p50 %s p99 %s max %s ms (arping: %s)\n' \
		"$n" "$s" "$rate" "$ach" "$cpu" "$sys" "$fl" "$((f1 - f0))" "$reps" "$reqs" "$1" "$2" "$3" "$arping"
	set -- $share
	printf '   over 1 ms: %s replies on the wire; odrsd: %s of %s capture-to-send (highest bucket %s ms), %s in-loop (%s ms), %s of %s loop turns (%s ms)\n' \
		"$slow" "$2" "$1" "$3" "$5" "$6" "$8" "$7" "$9"
	if [ "$PERF_SCHED" = 1 ]; then
		echo "$n,$s,$rate,$round,$(sched_max "$LAB_DIR/sched.data" "odrsd[$PID]"),$(sched_max "$LAB_DIR/sched.data" arping[),$(sched_max "$LAB_DIR/sched.data" ksoftirqd/)" >> "$PCSV"
		tail -n 1 "$PCSV" | awk -F, '{ printf "   perf sched, longest wait for a core: odrsd %s ms, arping %s ms, ksoftirqd %s ms\n", $5, $6, $7 }'
		[ -n "$KEEP" ] && mkdir -p "$KEEP" && cp "$LAB_DIR/sched.data" "$KEEP/$n-$s-$rate-$round.sched"
	fi
	if [ "$PERF_SAMPLES" = 1 ] && [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp "$LAB_DIR/samples.data" "$KEEP/$n-$s-$rate-$round.samples"
	fi
	if [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp "$pcap" "$KEEP/$n-$s-$rate-$round.pcap" &&
			python3 -c 'import time; print(time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_MONOTONIC), '"$PID"')' \
				> "$KEEP/$n-$s-$rate-$round.offset"
	fi
}

# Per (N, series, rate): "n series rate achieved cpu p50 p99 max answered/asked to_user machine lost_pct",
# reached, CPU, frames to user space and machine the medians of the rounds;
# the reply times are those of all rounds together.
medians() {
	local n s rate c
	for n in $NS; do
		for s in $SERIES; do
			for rate in $RATES; do
				printf '%s %s %s' "$n" "$s" "$rate"
				for c in 4 6; do
					printf ' %s' "$(awk -F, -v n="$n" -v s="$s" -v r="$rate" -v c="$c" \
						'NR > 1 && $1 == n && $2 == s && $3 == r { print $c }' "$CSV" | median)"
				done
				awk -F, -v n="$n" -v s="$s" -v r="$rate" 'NR > 1 && $1 == n && $2 == s && $3 == r { print $5 }' \
					"$DCSV" > "$LAB_DIR/pool"
				printf ' %s %s %s' "$(pct 0.5 < "$LAB_DIR/pool")" "$(pct 0.99 < "$LAB_DIR/pool")" \
					"$(pct 1 < "$LAB_DIR/pool")"
				printf ' %s' "$(awk -F, -v n="$n" -v s="$s" -v r="$rate" \
					'NR > 1 && $1 == n && $2 == s && $3 == r { a += $12; q += $11 } END { print a "/" q }' "$CSV")"
				for c in 9 7; do
					printf ' %s' "$(awk -F, -v n="$n" -v s="$s" -v r="$rate" -v c="$c" \
						'NR > 1 && $1 == n && $2 == s && $3 == r { print $c }' "$CSV" | median)"
				done
				# frames the capture lost, % of those that reached n1 (arp series only)
				printf ' %s' "$(awk -F, -v n="$n" -v s="$s" -v r="$rate" \
					'NR > 1 && $1 == n && $2 == s && $3 == r && s == "arp" && $10 > 0 {
						l = ($10 - $9) / $10 * 100; print l < 0 ? 0 : l }' "$CSV" | median)"
				echo
			done
		done
	done
}

# Per (N, series, rate), all rounds: "n series rate wire_slow/requests odrsd_slow/replies reply_max_le
# in_turn_slow in_turn_max_le turns_slow/turns turn_max_le" (CSV columns 21-30).
share_table() {
	local n s rate
	for n in $NS; do
		for s in $SERIES; do
			for rate in $RATES; do
				awk -F, -v n="$n" -v s="$s" -v r="$rate" '
					function top(a, b) { return a == "inf" || b == "inf" ? "inf" : b == "-" ? a : a == "-" || b + 0 > a + 0 ? b : a }
					BEGIN { rm = im = tm = "-" }
					NR > 1 && $1 == n && $2 == s && $3 == r {
						w += $21; q += $11; ro += $23; rr += $22; rm = top(rm, $24); io += $26; im = top(im, $27)
						to += $29; tt += $28; tm = top(tm, $30)
					}
					END { printf "%7s %-6s %7s %10s %12s %12s %10s %10s %14s %11s\n", n, s, r, w "/" q, ro "/" rr, rm, io, im,
						to "/" tt, tm }' "$CSV"
			done
		done
	done
}

summarize() {
	local med
	med=$(medians)
	{
		echo "odrs data path under load ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS round(s), $DURATION s per rate," \
			"$PINGS ARP requests $GAP s apart per rate)"
		echo "$(machine | sed 's/; guest.*//'); no guests: sleeping VMs are snapshot files"
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "flood: from c1 through the lab switch to n1's br0 (unicast to a MAC no host has):"
		echo "  ack = 54-byte TCP ACKs to a non-VM address (the wake filter drops them in the kernel),"
		echo "  arp = 42-byte ARP requests for 256 non-VM addresses (they reach odrsd's table lookup);"
		echo "ARP latency: arping from c2 for sleeping $VM ($VM_IP), answered by odrsd on n1;" \
			"times from tcpdump on c2's eth0"
		echo
		echo "start-up (odrsd launched -> control socket answers -> odrsctl status shows every VM sleeping):"
		printf '%8s %9s %12s %13s %9s %9s\n' vms socket_s all_asleep_s odrsd_cpu_s rss_MiB conf_MiB
		awk -F, 'NR > 1 { printf "%8s %9s %12s %13s %9s %9s\n", $1, $2, $3, $4, $5, $6 }' "$SCSV"
		echo
		printf '%7s %-6s %7s %8s %7s %8s %8s %8s %9s %10s %7s %9s\n' vms series rate reached \
			odrsd_% p50_ms p99_ms max_ms answered to_user/s lost_% machine_%
		awk -v d="$DURATION" '{
			printf "%7s %-6s %7s %8.0f %7s %8s %8s %8s %9s %10.0f %7s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8,
				$9, $10 / d, $12, $11 }' <<<"$med"
		echo "(rate = target frames/s; reached = frames/s that arrived at n1; odrsd_% = odrsd's CPU"
		echo " over the flood, % of one core; p50/p99/max = ARP reply times for $VM seen on c2's wire"
		echo " (request out to reply in), over the requests of all rounds; answered = replies/requests;"
		echo " to_user/s = frames odrsd's capture handed it, per second of flood; lost_% = of the frames"
		echo " that reached n1, those the capture did not hand over (arp series only); machine_% = every"
		echo " thread's run time incl. the generator's, % of one core (2 cores = 200 %); reached,"
		echo " odrsd_%, to_user/s, lost_% and machine_% are medians of the rounds; machine_% counts every"
		echo " process on the machine, other users' too: read it for trends only)"
		echo
		echo "over 1 ms, all rounds: replies on c2's wire; odrsd's capture-to-send of its replies, loop turns"
		printf '%7s %-6s %7s %10s %12s %12s %10s %10s %14s %11s\n' vms series rate wire_slow odrsd_slow reply_max_le \
			in_loop in_loop_max turns_slow turn_max_le
		share_table
		echo "(odrsd_slow = replies whose capture-to-send was over 1 ms, of all it sent; in_loop = those whose"
		echo " part from the loop turn's start to the send was over 1 ms; *_max = the upper bound of the"
		echo " highest histogram bucket reached, ms; turns_slow = loop turns over 1 ms, of all)"
		echo
		echo "command: N=\"$NS\" RATES=\"$RATES\" SERIES=\"$SERIES\" DURATION=$DURATION PINGS=$PINGS" \
			"GAP=$GAP ROUNDS=$ROUNDS${TAG:+ TAG=$TAG} PERF_SCHED=$PERF_SCHED LAB_PREFIX=$LAB_PREFIX bench/datapath.sh"
		echo "run time: $SECONDS s"
	} > "$TXT"
	cat "$TXT"
}

plot() {
	local d=$LAB_DIR/plot n s
	mkdir -p "$d"
	medians > "$d/all"
	for n in $NS; do
		for s in $SERIES; do
			# x: reached kframes/s; p99; odrsd cpu
			awk -v n="$n" -v s="$s" '$1 == n && $2 == s && $7 != "-" { print $4 / 1000, $7, $5 }' \
				"$d/all" > "$d/$s-$n.dat"
		done
	done
	gnuplot <<-EOF || echo "warning: gnuplot failed; no $PNG" >&2
	set terminal pngcairo size 1100,500 noenhanced font ",10"
	set output "$PNG"
	set multiplot layout 1,2 title "odrsd's data path under a flood ($ROUNDS round(s))"
	set xlabel "flood reaching the node, kframes/s"
	set grid
	set key top left
	set yrange [0:*]
	NS = "$NS"
	SER = "$SERIES"
	set ylabel "ARP reply time for a sleeping VM, p99 (ms)"
	plot for [j=1:words(SER)] for [i=1:words(NS)] "$d/".word(SER, j)."-".word(NS, i).".dat" \
		using 1:2 with linespoints pt (j == 1 ? 7 : 4) dt j lw 1.5 lc i title word(SER, j)." flood, N = ".word(NS, i)
	set ylabel "odrsd CPU, % of one core"
	plot for [j=1:words(SER)] for [i=1:words(NS)] "$d/".word(SER, j)."-".word(NS, i).".dat" \
		using 1:3 with linespoints pt (j == 1 ? 7 : 4) dt j lw 1.5 lc i title word(SER, j)." flood, N = ".word(NS, i)
	unset multiplot
	EOF
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
MAXN=$(printf '%s\n' $NS | sort -n | tail -n 1)
trap lab_down EXIT
step "raising lab '$LAB_PREFIX' (1 node, 2 clients), $MAXN snapshot files"
lab_up 1 2 > /dev/null || fail "lab_up"
build_arpflood || fail "could not build the ARP generator"
ip netns exec "$LAB_PREFIX-sw" bridge fdb add "$FAKE_MAC" dev sw-n1 master static || fail "static fdb entry"
odrs_snapshot_files "$MAXN" || fail "snapshot files"
SRC_MAC=$(ip -n "$LAB_PREFIX-c1" -br link show eth0 | awk '{ print $3 }')
SRC_IP=$(lab_client_ip c1)
echo "vms,series,rate,achieved_pps,sent_pps,odrsd_cpu_pct,system_cpu_pct,flood_cpu_pct,frames_to_userspace,frames_reached,requests,replies,p50_ms,p99_ms,max_ms,arping_p50_ms,arping_p99_ms,round,evlog_bps,pcap_drops,slow_replies,odrsd_replies,odrsd_replies_over_1ms,odrsd_reply_max_le_ms,in_turn_replies,in_turn_over_1ms,in_turn_max_le_ms,loop_turns,loop_turns_over_1ms,loop_turn_max_le_ms" > "$CSV"
echo "vms,series,rate,round,reply_ms" > "$DCSV"
echo "vms,socket_s,inspected_s,odrsd_cpu_s,rss_mib,conf_mib" > "$SCSV"
[ "$PERF_SCHED" = 1 ] && echo "vms,series,rate,round,odrsd_max_wait_ms,arping_max_wait_ms,ksoftirqd_max_wait_ms" > "$PCSV"

for n in $NS; do
	step "N = $n sleeping VMs"
	start_odrsd "$n"
	sleep 1
	for r in $(seq 1 "$ROUNDS"); do
		for s in $SERIES; do
			for rate in $RATES; do
				measure "$n" "$s" "$rate" "$r"
			done
		done
	done
	lab_odrsd_stop n1 || fail "odrsd exited with status $?"
done

step "summary"
summarize
plot
echo "results in $RESULTS: datapath$SFX.csv datapath$SFX-detail.csv datapath$SFX-start.csv datapath$SFX.txt datapath$SFX.png"

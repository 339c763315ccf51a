#!/bin/bash
# Burst wake: N hibernated VMs woken at once, on one node, for several
# [odrsd] wake_concurrency (restores running at once) and wake_spacing
# (minimum time between two restore starts) settings.
#
# NMAX = the largest of NS guests (TCG, 96 MiB each, b01.., 198.18.0.101..)
# are booted once, in batches of BATCH, and each batch is hibernated as soon
# as it is up (so booted guests do not slow the next batch down). Then, per N
# in NS and per configuration, ROUNDS times:
#
#   1. sync, SETTLE seconds of quiet (all NMAX guests asleep)
#   2. the burst, all started at once from one shell:
#      TRIGGER=ctl   a wake request per VM for b01..bN on odrsd's control
#                    socket (as `odrsctl wake` sends; odrsd's trigger:
#                    manual), sent back to back on connections opened before
#      TRIGGER=http  one curl --parallel to http://IP/ of each VM from the
#                    client c1, whose ARP cache is empty (trigger: arp; the
#                    SYN is held and replayed); each must get "hello from NAME"
#   3. read odrsd's event log: per VM, wake_done's ms (trigger to running),
#      restore_ms (the libvirt restore call alone), and the times of its
#      wake_start and wake_done relative to the burst's first wake_start
#   4. hibernate b01..bN again (in parallel, hibernate_concurrency HIB_CONC)
#
# "Ready" is odrsd's wake_done: the restore call has returned and the VM
# runs. With TRIGGER=http, the client's time to its answer (curl's
# time_total: ARP, held SYN, restore, replay, the guest's HTTP reply) is
# recorded as well. first / mean / last are over the N VMs of one burst
# (then averaged over the ROUNDS bursts).
#
# The grid, per N: wake_concurrency in CONCS at wake_spacing = 0 (odrsd is
# restarted for each: the limit applies at start), then wake_spacing in
# SPACINGS (odrsctl reload) at each concurrency in SPACE_AT. In CONCS and
# SPACE_AT, "N" means N (all at once); in SPACE_AT, "best" means the
# concurrency above 1 with the lowest mean at spacing 0 for this N (spacing
# changes nothing at concurrency 1: one restore takes far longer than any
# spacing). Duplicates are measured once. wake_timeout is raised to 5m
# (the default, 60 s, counts queueing too and would fail the last VMs of a
# serial burst of 32 on a loaded 2-core machine).
#
# Output (RESULTS, default bench/results/):
#   burst.csv   n,concurrency,spacing_ms,round,vm,rank,trigger_ms,ms,restore_ms,ready_ms,http_ms
#               one row per VM and burst; rank = order of wake_done (1 = first
#               ready); trigger_ms = its wake_start after the burst's first one;
#               ms = wake_done's ms (trigger to running); restore_ms = the libvirt
#               restore call; ready_ms = its wake_done after the burst's first
#               wake_start (event-log timestamps, 1 ms resolution); http_ms =
#               curl's time_total (TRIGGER=http only)
#   burst.txt   per N and configuration: first / mean / last ms, the mean restore
#               call, the trigger spread, and each against all at once
#   burst.png   per N, VMs running against time since the trigger, one curve
#               per configuration
#
# Knobs: TRIGGER (http), NS ("8 16 32"), CONCS ("1 2 4 N"), SPACINGS ("10 20", ms),
# SPACE_AT ("best N"), ROUNDS (1), BATCH (8 guests booted at once),
# HIB_CONC (4, hibernate_concurrency), SETTLE (1 s), RESULTS, LAB_PREFIX.
# Run with more than ~4 guests only under the machine-wide lock:
#   flock /tmp/odrs-bench.lock bench/burst.sh
#
# Needs root and the lab (tests/lab/lab.sh); raises its own lab under
# LAB_PREFIX (default odrsbench) and tears it down on exit. The odrsd and
# odrsctl binaries are copied into the lab at start, so a rebuild during the
# run does not change what is measured.
# Exit 0: measured; 1: a step failed.
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/lib.sh"

TRIGGER=${TRIGGER:-http}
NS=${NS:-8 16 32}
CONCS=${CONCS:-1 2 4 N}
SPACINGS=${SPACINGS:-10 20}
SPACE_AT=${SPACE_AT:-best N}
ROUNDS=${ROUNDS:-1}
BATCH=${BATCH:-8}
HIB_CONC=${HIB_CONC:-4}
SETTLE=${SETTLE:-1}
RESULTS=${RESULTS:-$BENCH_DIR/results}
MEM=96
NMAX=$(tr ' ' '\n' <<<"$NS" | sort -n | tail -n 1)
[ "$NMAX" -ge 1 ] && [ "$NMAX" -le 99 ] || { echo "NS: 1 to 99 VMs"; exit 1; }
case $TRIGGER in ctl | http) ;; *) echo "TRIGGER: ctl or http"; exit 1 ;; esac

mkdir -p "$RESULTS" || exit 1
CSV=$RESULTS/burst.csv
TXT=$RESULTS/burst.txt
PNG=$RESULTS/burst.png
T_START=$SECONDS

vm_name() { printf 'b%02d\n' "$1"; }
vm_ip() { echo "198.18.0.$((100 + $1))"; }
vm_mac() { printf '52:54:00:12:01:%02x' "$1"; }
vms() { # FROM TO: the names
	local i
	for i in $(seq "$1" "$2"); do vm_name "$i"; done
}

# write_conf CONC SPACING_MS K: odrsd's configuration managing b01..bK.
write_conf() {
	local i lines=()
	for i in $(seq 1 "$3"); do
		lines+=("[vm $(vm_name "$i")]" "ip = $(vm_ip "$i")")
	done
	CONF=$(odrs_conf n1 "wake_concurrency = $1" "hibernate_concurrency = $HIB_CONC" \
		"wake_spacing = $([ "$2" = 0 ] && echo 0 || echo "${2}ms")" "wake_timeout = 5m" \
		"[policy]" "idle_timeout = 0" "${lines[@]}")
}

# states K: "STATE COUNT" lines over b01..bK, from one odrsctl list.
states() {
	lab_odrsctl n1 list | awk -v k="$1" '$1 ~ /^b[0-9][0-9]$/ && substr($1, 2) + 0 <= k { n[$4]++ }
		END { for (s in n) print s, n[s] }'
}
count_state() { states "$2" | awk -v s="$1" '$1 == s { print $2 }' | grep . || echo 0; }
# all_in STATE K [FROM=1]: every VM FROM..K is in STATE.
all_in() {
	local from=${3:-1} n
	n=$(lab_odrsctl n1 list | awk -v a="$from" -v k="$2" -v s="$1" \
		'$1 ~ /^b[0-9][0-9]$/ && substr($1, 2) + 0 >= a && substr($1, 2) + 0 <= k && $4 == s { c++ }
		END { print c + 0 }')
	[ "$n" -eq $(($2 - from + 1)) ]
}
wait_all() { # STATE K [FROM] [TIMEOUT]
	lab_wait "${4:-120}" all_in "$1" "$2" "${3:-1}" ||
		fail "not all of $(vm_name "${3:-1}")..$(vm_name "$2") are $1: $(states "$2" | tr '\n' ' ')"
}

RUN_CONC= RUN_SPACING=
start_odrsd() { # CONC SPACING_MS
	[ -n "$(lab_odrsd_pid n1)" ] && { lab_odrsd_stop n1 || fail "odrsd exited with status $?"; }
	write_conf "$1" "$2" "$NMAX"
	lab_odrsd_start n1 "$CONF" || fail "odrsd did not start with $CONF"
	wait_all hibernated "$NMAX"
	RUN_CONC=$1 RUN_SPACING=$2
}
set_spacing() { # SPACING_MS: through odrsctl reload
	write_conf "$RUN_CONC" "$1" "$NMAX"
	lab_odrsctl n1 reload > /dev/null || fail "odrsctl reload"
	RUN_SPACING=$1
}

# on_node VERB VM...: ask odrsd to VERB (wake, hibernate) each VM, all at
# once: one process (perl, from Debian's perl-base) opens one control
# connection per VM first, then sends all the requests back to back, so they
# reach odrsd within a fraction of a millisecond (an odrsctl process per VM
# would spread them over tens of ms per VM on a busy machine, more than the
# spacings measured). Fails unless every answer is ok.
CTL_ALL='
	use IO::Socket::UNIX;
	my ($path, $verb, @vms) = @ARGV;
	my @c = map { IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path)
		or die "connect $path: $!\n" } @vms;
	syswrite($c[$_], "{\"cmd\":\"$verb\",\"vm\":\"$vms[$_]\"}\n") for 0 .. $#vms;
	my $rc = 0;
	for my $i (0 .. $#vms) {
		my $fh = $c[$i];
		my $ok;
		while (my $l = <$fh>) { if ($l =~ /"ok":(true|false)/) { $ok = $1 eq "true"; print "$vms[$i]: $l" unless $ok; last } }
		if (!defined $ok) { print "$vms[$i]: no answer\n" }
		$rc = 1 unless $ok;
	}
	exit $rc;'
on_node() {
	local verb=$1 out
	shift
	out=$(lab_node_exec n1 perl -e "$CTL_ALL" "$SOCK" "$verb" "$@" 2>&1) ||
		fail "$verb: $(head -n 5 <<<"$out")"
}

# http_all N: from c1, one curl for the VMs b01..bN, all at once (one
# process, --parallel: the connections start together); prints "NAME
# time_total_ms" lines; fails unless every VM answered with its name. The
# client's ARP cache is emptied first, so each access starts with ARP.
http_all() {
	local i args=()
	lab_client_exec c1 ip neigh flush all
	for i in $(seq 1 "$1"); do
		args+=("http://$(vm_ip "$i")/" -o "$LAB_DIR/http-$(vm_name "$i").body")
	done
	lab_client_exec c1 curl -sS --parallel --parallel-immediate --parallel-max "$1" --max-time 280 \
		-w '%{url} %{time_total}\n' "${args[@]}" > "$LAB_DIR/http.out" 2> "$LAB_DIR/http.err" ||
		fail "curl: $(head -n 5 "$LAB_DIR/http.err")"
	for i in $(seq 1 "$1"); do
		[ "$(cat "$LAB_DIR/http-$(vm_name "$i").body")" = "hello from $(vm_name "$i")" ] ||
			fail "$(vm_name "$i") answered '$(cat "$LAB_DIR/http-$(vm_name "$i").body")'"
		echo "$(vm_name "$i") $(ms "$(awk -v u="http://$(vm_ip "$i")/" '$1 == u { print $2 }' "$LAB_DIR/http.out")")"
	done
}

boot_all() {
	local i k
	for ((i = 1; i <= NMAX; i += BATCH)); do
		k=$((i + BATCH - 1))
		[ "$k" -le "$NMAX" ] || k=$NMAX
		step "booting $(vm_name "$i")..$(vm_name "$k") ($MEM MiB, TCG), then hibernating them"
		for j in $(seq "$i" "$k"); do
			lab_vm_start n1 "$(vm_name "$j")" "$(vm_ip "$j")" "$(vm_mac "$j")" "$MEM" > /dev/null ||
				fail "lab_vm_start $(vm_name "$j")"
		done
		for j in $(seq "$i" "$k"); do
			lab_vm_wait_ready n1 "$(vm_name "$j")" 300 || fail "$(vm_name "$j") did not come up"
		done
		write_conf "${CONCS%% *}" 0 "$k"
		if [ -z "$(lab_odrsd_pid n1)" ]; then
			lab_odrsd_start n1 "$CONF" || fail "odrsd did not start with $CONF"
		else
			lab_odrsctl n1 reload > /dev/null || fail "odrsctl reload"
		fi
		wait_all running "$k" "$i"
		on_node hibernate $(vms "$i" "$k")
		wait_all hibernated "$k" "$i"
	done
	echo "   booted and hibernated $NMAX guests in $((SECONDS - T_START)) s"
}

# burst N ROUND: wake b01..bN at once and record one row per VM.
burst() {
	local n=$1 round=$2 mark t0 t1 rows
	sync
	sleep "$SETTLE"
	all_in hibernated "$NMAX" || fail "not all asleep before the burst: $(states "$NMAX" | tr '\n' ' ')"
	mark=$(wc -l < "$EVENTS")
	t0=$SECONDS
	rm -f "$LAB_DIR"/http-*
	if [ "$TRIGGER" = http ]; then
		http_all "$n" > "$LAB_DIR/http.ms"
		wait_all running "$n" 1 30
		# The client's neighbour entries would send ARP probes a few seconds
		# on, which wake a VM hibernated meanwhile: drop them once the
		# connections have closed.
		sleep 0.5
		lab_client_exec c1 ip neigh flush all
	else
		on_node wake $(vms 1 "$n")
		: > "$LAB_DIR/http.ms"
		all_in running "$n" || fail "not all running after the burst: $(states "$n" | tr '\n' ' ')"
	fi
	lab_wait 10 test "$(tail -n +"$((mark + 1))" "$EVENTS" | grep -c '"event":"wake_done"')" -ge "$n" ||
		fail "fewer than $n wake_done events"
	! tail -n +"$((mark + 1))" "$EVENTS" | grep -q '"event":"wake_failed"' || fail "a wake failed"
	rows=$(tail -n +"$((mark + 1))" "$EVENTS" | jq -r -s --arg pfx "$n,$RUN_CONC,$RUN_SPACING,$round" \
		--rawfile http "$LAB_DIR/http.ms" '
		def t: (.ts[0:19] + "Z" | fromdateiso8601) * 1000 + (.ts[20:23] | tonumber);
		($http | split("\n") | map(select(length > 0) | split(" ") | {key: .[0], value: .[1]})
			| from_entries) as $h |
		(map(select(.event == "wake_start")) | map({key: .vm, value: t}) | from_entries) as $st |
		($st | [.[]] | min) as $t0 |
		map(select(.event == "wake_done")) | sort_by(t, .ms) | to_entries[] |
		"\($pfx),\(.value.vm),\(.key + 1),\($st[.value.vm] - $t0),\(.value.ms),\(.value.restore_ms),\((.value | t) - $t0),\($h[.value.vm] // "")"')
	[ "$(wc -l <<<"$rows")" -eq "$n" ] || fail "burst rows: $rows"
	echo "$rows" >> "$CSV"
	t1=$SECONDS
	on_node hibernate $(vms 1 "$n")
	wait_all hibernated "$n"
	awk -F, -v w="$((t1 - t0))" -v h="$((SECONDS - t1))" '
		{ s += $8; if (NR == 1 || $8 < lo) lo = $8; if ($8 > hi) hi = $8; r += $9
		  hs += $11; if (NR == 1 || $11 < hlo) hlo = $11; if ($11 > hhi) hhi = $11 }
		END { printf "   N=%d concurrency=%d spacing=%dms round %d: first %d, mean %.0f, last %d ms" \
			" (restore call %.0f ms mean%s; wake %d s, hibernate %d s)\n", $1, $2, $3, $4, lo, s / NR, hi, r / NR,
			$11 == "" ? "" : sprintf("; HTTP answer first %.0f, mean %.0f, last %.0f ms", hlo, hs / NR, hhi), w, h }' <<<"$rows"
}

# conc_of SPEC N: "N" -> N, "best" -> the best measured above 1 (mean ms at
# spacing 0), a number -> itself, but at most N (more is the same as N).
conc_of() {
	case $1 in
	N) echo "$2" ;;
	best)
		awk -F, -v n="$2" 'NR > 1 && $1 == n && $3 == 0 && $2 > 1 { s[$2] += $8; c[$2]++ }
			END { for (k in s) if (best == "" || s[k] / c[k] < m) { m = s[k] / c[k]; best = k }
				print best }' "$CSV" ;;
	*) echo $(($1 < $2 ? $1 : $2)) ;;
	esac
}

# The summary table: per N and configuration (in the order measured), the
# round means of first / mean / last ms, and each over all at once.
summarize() {
	{
		echo "odrs burst-wake benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS round(s) per configuration)"
		machine
		echo "load average at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
		if [ "$TRIGGER" = http ]; then
			echo "trigger: one curl --parallel, a connection per VM, from a client with an empty ARP cache;" \
				"ready = odrsd's wake_done (ms = trigger to running, from the event log); also curl's time_total"
		else
			echo "trigger: a wake request per VM on odrsd's control socket, sent back to back;" \
				"ready = odrsd's wake_done" \
				"(ms = trigger to running, from the event log)"
		fi
		echo
		awk -F, '
			NR == 1 { next }
			{
				k = $1 SUBSEP $2 SUBSEP $3
				if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
				r = k SUBSEP $4
				if (!(r in rn)) { rn[r] = 0; rounds[k]++ }
				rn[r]++; rs[r] += $8; rr[r] += $9; hs[r] += $11
				if ($11 != "") { http = 1; if (rn[r] == 1 || $11 < hlo[r]) hlo[r] = $11; if ($11 > hhi[r]) hhi[r] = $11 }
				if (rn[r] == 1 || $8 < rlo[r]) rlo[r] = $8
				if ($8 > rhi[r]) rhi[r] = $8
				if ($7 > rsp[r]) rsp[r] = $7
				rk[k, rounds[k]] = r
			}
			END {
				printf "%4s %11s %8s %9s %9s %9s %11s %8s %s  %s\n", "N", "concurrency", "spacing",
					"first_ms", "mean_ms", "last_ms", "restore_ms", "spread",
					http ? sprintf("%10s %10s %10s ", "http_first", "http_mean", "http_last") : "",
					"first / mean / last vs all at once"
				for (i = 1; i <= nk; i++) {
					k = order[i]; split(k, f, SUBSEP)
					F = M = L = R = S = HF = HM = HL = 0
					for (j = 1; j <= rounds[k]; j++) {
						r = rk[k, j]
						F += rlo[r]; M += rs[r] / rn[r]; L += rhi[r]; R += rr[r] / rn[r]; S += rsp[r]
						HF += hlo[r]; HM += hs[r] / rn[r]; HL += hhi[r]
					}
					nr = rounds[k]
					F /= nr; M /= nr; L /= nr; R /= nr; S /= nr; HF /= nr; HM /= nr; HL /= nr
					fF[k] = F; fM[k] = M; fL[k] = L; fR[k] = R; fS[k] = S
					fHF[k] = HF; fHM[k] = HM; fHL[k] = HL
				}
				for (i = 1; i <= nk; i++) {
					k = order[i]; split(k, f, SUBSEP)
					all = f[1] SUBSEP f[1] SUBSEP 0
					c = f[2] == f[1] ? f[2] " (N)" : f[2]
					rel = (all in fF) ? sprintf("%.2f / %.2f / %.2f", fF[k] / fF[all], fM[k] / fM[all], fL[k] / fL[all]) : "-"
					if (i > 1 && f[1] != prev) print ""
					prev = f[1]
					printf "%4d %11s %6dms %9.0f %9.0f %9.0f %11.0f %8.0f %s  %s\n", f[1], c, f[3],
						fF[k], fM[k], fL[k], fR[k], fS[k],
						http ? sprintf("%10.0f %10.0f %10.0f ", fHF[k], fHM[k], fHL[k]) : "", rel
				}
			}' "$CSV"
		echo "(ms; first / mean / last = wake_done ms (trigger to running) of the first," \
			"average and last VM ready, per burst, averaged over the rounds;" \
			"restore_ms = mean libvirt restore call alone; spread = last wake_start after the first;" \
			"$([ "$TRIGGER" = http ] && echo "http_* = the client's curl time_total, the same way; ")ratios over" \
			"concurrency N, spacing 0 = all at once)"
		echo
		for n in $NS; do
			awk -F, -v n="$n" 'NR > 1 && $1 == n { k = $2 "," $3; s[k] += $8; c[k]++ }
				END { for (k in s) if (b == "" || s[k] / c[k] < m) { m = s[k] / c[k]; b = k }
					split(b, f, ","); printf "N=%d: lowest mean: concurrency %d, spacing %d ms (%.0f ms)\n", n, f[1], f[2], m }' "$CSV"
		done
		echo
		echo "command: TRIGGER=$TRIGGER NS=\"$NS\" CONCS=\"$CONCS\" SPACINGS=\"$SPACINGS\" SPACE_AT=\"$SPACE_AT\"" \
			"ROUNDS=$ROUNDS BATCH=$BATCH HIB_CONC=$HIB_CONC SETTLE=$SETTLE LAB_PREFIX=$LAB_PREFIX" \
			"bench/burst.sh ($((SECONDS - T_START)) s)"
	} > "$TXT"
	cat "$TXT"
}

# One panel per N: VMs running (averaged over the rounds) against ms since
# the trigger, a step curve per configuration.
plot() {
	local dat=$LAB_DIR/plot n i d c s cs ss ncols plots
	mkdir -p "$dat"
	ncols=$(wc -w <<<"$NS")
	{
		echo "set terminal pngcairo size $((ncols > 1 ? 460 * ncols : 640)),600 font ',10'"
		echo "set output '$PNG'"
		echo "set multiplot layout 1,$ncols title 'N hibernated $MEM MiB TCG guests woken at once, one node, 2 cores ($ROUNDS round(s))'"
		echo "set key below Left reverse maxrows 4 font ',9'"
		echo "set grid"
		echo "set xlabel 'seconds since the trigger (wake\\_done ms)'"
		echo "set ylabel 'VMs running'"
	} > "$dat/gp"
	for n in $NS; do
		plots=()
		cs=" $(awk -F, -v n="$n" 'NR > 1 && $1 == n { print $2 }' "$CSV" | sort -nu | tr '\n' ' ')"
		ss=" $(awk -F, -v n="$n" 'NR > 1 && $1 == n { print $3 }' "$CSV" | sort -nu | tr '\n' ' ')"
		while IFS=, read -r c s; do
			# colour by concurrency, dash pattern by spacing
			i=$(($(wc -w <<<"${cs%% $c *}") + 1))
			d=$(($(wc -w <<<"${ss%% $s *}") + 1))
			awk -F, -v n="$n" -v c="$c" -v s="$s" -v r="$ROUNDS" 'NR > 1 && $1 == n && $2 == c && $3 == s { print $8 }' "$CSV" |
				sort -g | awk -v r="$ROUNDS" 'BEGIN { print 0, 0 } { printf "%.3f %.3f\n", $1 / 1000, NR / r }' > "$dat/$n-$c-$s"
			plots+=("'$dat/$n-$c-$s' using 1:2 with steps lw 2 dt $d lc $i title 'concurrency $c$([ "$c" = "$n" ] && echo ' (N)'), spacing ${s} ms'")
		done < <(awk -F, -v n="$n" 'NR > 1 && $1 == n && !seen[$2 "," $3]++ { print $2 "," $3 }' "$CSV")
		echo "set title 'N = $n'; set yrange [0:$((n + n / 8 + 1))]; set xrange [0:*]" >> "$dat/gp"
		echo "plot $(IFS=,; echo "${plots[*]}")" >> "$dat/gp"
	done
	echo "unset multiplot" >> "$dat/gp"
	gnuplot "$dat/gp" || echo "warning: gnuplot failed; no $PNG" >&2
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
trap lab_down EXIT
step "raising lab '$LAB_PREFIX' (1 node) for $NMAX guests; N = $NS; concurrency $CONCS;" \
	"spacing $SPACINGS ms at $SPACE_AT; $ROUNDS round(s)"
lab_up 1 1 > /dev/null || fail "lab_up"
# The last VM of a serial burst of 32 can take over 2 minutes: the client's
# connect() must not give up first (6 SYN retries: 127 s).
lab_client_exec c1 sysctl -qw net.ipv4.tcp_syn_retries=8 || fail "sysctl"
mkdir -p "$LAB_DIR/bin" && cp "$LAB_ODRSD" "$LAB_ODRSCTL" "$LAB_DIR/bin/" || fail "copying the binaries"
LAB_ODRSD=$LAB_DIR/bin/odrsd LAB_ODRSCTL=$LAB_DIR/bin/odrsctl
EVENTS=$(lab_node_dir n1)/odrs/events.jsonl
SOCK=$(lab_node_dir n1)/odrs/odrsd.sock
echo "n,concurrency,spacing_ms,round,vm,rank,trigger_ms,ms,restore_ms,ready_ms,http_ms" > "$CSV"

boot_all

for n in $NS; do
	done_cs=" "
	step "N = $n: wake_concurrency $CONCS at wake_spacing 0"
	for spec in $CONCS; do
		c=$(conc_of "$spec" "$n")
		case $done_cs in *" $c,0 "*) continue ;; esac
		start_odrsd "$c" 0
		for r in $(seq 1 "$ROUNDS"); do burst "$n" "$r"; done
		done_cs="$done_cs$c,0 "
	done
	step "N = $n: wake_spacing $SPACINGS ms at concurrency $SPACE_AT"
	for spec in $SPACE_AT; do
		c=$(conc_of "$spec" "$n")
		[ -n "$c" ] || { echo "   no concurrency above 1 measured: no spacing sweep"; continue; }
		case $done_cs in *" $c,s "*) continue ;; esac
		[ "$RUN_CONC" = "$c" ] || start_odrsd "$c" 0
		for s in $SPACINGS; do
			case $done_cs in *" $c,$s "*) continue ;; esac
			set_spacing "$s"
			for r in $(seq 1 "$ROUNDS"); do burst "$n" "$r"; done
			done_cs="$done_cs$c,$s "
		done
		done_cs="$done_cs$c,s "
	done
done
lab_odrsd_stop n1 || fail "odrsd exited with status $?"

step "summary"
summarize
plot
echo "results in $RESULTS: $(cd "$RESULTS" && echo burst.csv burst.txt burst.png)"

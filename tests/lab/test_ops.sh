#!/bin/bash
# Running odrsd as an operator does, without guests (a snapshot file and no
# domain is what odrsd sees for a hibernated VM; no file, a VM in error):
#  1. the control socket with N=$NVMS VMs: a client that reads slowly gets a
#     complete `list` answer of several MB; clients that hang up in the middle
#     of one do not kill odrsd; pipelined requests on one connection each get
#     their own answer, two `wake` of one VM included;
#  2. one odrsd per node: a second one, with or without -f, exits 1 naming the
#     first one's pid and lock, and the first one's socket still answers;
#  3. a start that fails (no such interface) exits non-zero without -f;
#  4. SIGHUP: two VMs swap IPs, one gains a MAC, one goes: status counts the
#     reload, list shows the new addresses, and ARP for each IP is answered
#     with the MAC of the VM that has it now (and not for the removed one);
#  5. the event log has start, stop, pin and unpin with who asked; show gives
#     a VM's error, since when and its next recheck, and a recheck finds the
#     image put back without a restart; show names the last trigger refused;
#  6. odrsctl reload prints the daemon's verdict (a key that needs a restart
#     listed), a refused reload is an event too;
#  7. wake_on_stop: a stop wakes every hibernated VM first.
# Exit 0 pass, 1 fail, 77 skip (not root, no python3 or jq).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
command -v python3 >/dev/null && command -v jq >/dev/null || { echo "needs python3 and jq"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

NVMS=${NVMS:-20000}
SOCK=$LAB_DIR/n1/odrs/odrsd.sock
OUT=$LAB_DIR/out
ctl() { "$LAB_ODRSCTL" -s "$SOCK" "$@"; }
counter() { ctl status | awk -v k="$1:" '$1 == k { print $2 }'; }
# arp_mac IP: the MAC that answers an ARP request for IP on c1.
arp_mac() {
	lab_client_exec c1 ip neigh flush all
	lab_client_exec c1 arping -i eth0 -c 1 -w 2 "$1" 2>/dev/null |
		grep -io '\([0-9a-f]\{2\}:\)\{5\}[0-9a-f]\{2\}' | head -n 1 | tr A-F a-f
}
# The capture filter follows a change within a loop turn or so: ask until it has.
arp_is() { [ "$(arp_mac "$1")" = "$2" ]; }

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"

step "1: $NVMS VMs (no domains); start-up time"
conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "wake_on = none")
python3 - "$NVMS" >>"$conf" <<'EOF'
import sys
for i in range(int(sys.argv[1])):
    print('[vm vm%05d]\nip = 198.18.%d.%d' % (i, 100 + (i >> 8), i & 255))
EOF
t0=$(date +%s%N)
lab_odrsd_start n1 "$conf" || fail "odrsd did not start with $NVMS VMs"
echo "serving $NVMS VMs after $((($(date +%s%N) - t0) / 1000000)) ms"
[ "$(counter vms)" = "$NVMS" ] || fail "vms: $(counter vms)"

step "1: a slow reader gets the whole list; clients hanging up mid-answer do not kill odrsd"
python3 - "$SOCK" "$NVMS" <<'EOF' || fail "control socket client failed"
import json, socket, sys, time
path, nvms = sys.argv[1], int(sys.argv[2])
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)  # a cut answer never ends: fail, do not hang
    s.connect(path)
    return s
def answers(s, want):
    data = b''
    while data.count(b'\n') < want:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
    return [json.loads(l) for l in data.decode().splitlines()]
# Slow: 16 KiB every 5 ms, so the daemon meets a full socket many times.
s = conn()
s.sendall(b'{"cmd":"list"}\n')
time.sleep(0.5)
data, t = b'', time.time()
while not data.endswith(b'\n'):
    try:
        d = s.recv(16384)
    except socket.timeout:
        sys.exit('no more of the list after %d bytes: the answer was cut' % len(data))
    if not d:
        sys.exit('connection closed after %d bytes of the list' % len(data))
    data += d
    time.sleep(0.005)
o = json.loads(data)
assert o['ok'] and len(o['vms']) == nvms, (o['ok'], len(o['vms']))
assert o['vms'][-1]['name'] == 'vm%05d' % (nvms - 1), o['vms'][-1]
print('slow reader: %d bytes, %d VMs, in %.1f s' % (len(data), len(o['vms']), time.time() - t))
assert len(data) > 2 << 20, len(data)
# Hang up after a few bytes, with answers still queued.
for _ in range(20):
    s = conn()
    s.sendall(b'{"cmd":"list"}\n{"cmd":"list"}\n')
    s.recv(100)
    s.close()
# Pipelined: every request its own answer, in order.
s = conn()
s.sendall(b'{"cmd":"status"}\n{"cmd":"pin","vm":"vm00001"}\n{"cmd":"list"}\n'
          b'{"cmd":"unpin","vm":"vm00001"}\n{"cmd":"wake","vm":"nosuch"}\n{"cmd":"status"}\n')
a = answers(s, 6)
assert len(a) == 6, len(a)
assert 'status' in a[0] and a[1] == {'ok': True} and len(a[2]['vms']) == nvms and a[3] == {'ok': True}
assert a[4]['ok'] is False and 'nosuch' in a[4]['error'] and 'status' in a[5], a[4]
print('pipelined: 6 requests, 6 answers in order')
# The longest request there may be (4095 bytes, newline included) is served;
# one byte more is refused and the connection closed after the answer.
s = conn()
s.sendall(b'{"cmd":"status"' + b' ' * (4095 - 17) + b'}\n')
a = answers(s, 1)
assert len(a) == 1 and 'status' in a[0], a
s.sendall(b'{"cmd":"status"' + b' ' * (4096 - 17) + b'}\n')
a = answers(s, 2)
assert len(a) == 1 and a[0] == {'ok': False, 'error': 'request too long'}, a
print('4095-byte request served, 4096-byte one refused and its connection closed')
EOF
lab_odrsd_pid n1 >/dev/null || fail "odrsd died (a client hung up?): rc $(cat "$LAB_DIR/n1/odrsd.rc")"
[ "$(counter vms)" = "$NVMS" ] || fail "odrsd does not answer after the hang-ups"

step "5: start, pin, unpin and stop in the event log, with who asked"
# evlast EVENT JQ-CONDITION: the last EVENT since the mark meets the condition.
evlast() { odrs_evlog n1 | jq -e -s "map(select(.event == \"$1\")) | last | $2" >/dev/null; }
evlast start ".vms == $NVMS and (.pid | type) == \"number\" and .version != null" ||
	fail "start event: $(odrs_evlog n1 | grep '"start"')"
evlast pin '.vm == "vm00001" and .by == "control" and .uid == 0 and (.pid | type) == "number"' ||
	fail "pin event: $(odrs_evlog n1 | grep '"pin"')"
evlast unpin '.vm == "vm00001" and .by == "control" and .uid == 0' ||
	fail "unpin event: $(odrs_evlog n1 | grep '"unpin"')"
lab_odrsd_stop n1 || fail "odrsd stop: exit $?"
evlast stop '.signal == "SIGTERM" and (has("woken") | not)' || fail "stop event: $(odrs_evlog n1 | grep '"stop"')"

# Ghosts: a and b hibernated (an image, no domain), c in error (nothing at all).
mkdir -p "$LAB_SHARED" && echo x >"$LAB_SHARED/ga.odrs-save" && echo x >"$LAB_SHARED/gb.odrs-save"
IPA=198.18.0.41 IPB=198.18.0.42 IPC=198.18.0.43
MACA=52:54:00:12:00:41 MACB=52:54:00:12:00:42 MACC=52:54:00:12:00:43
conf=$(odrs_conf n1 "[policy]" "idle_timeout = 0" "wake_on = none" \
	"[vm ga]" "ip = $IPA" "mac = $MACA" "[vm gb]" "ip = $IPB" "[vm gc]" "ip = $IPC" "mac = $MACC")
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 ga hibernated 20 && odrs_wait_state n1 gb hibernated 20 || fail "ghosts not hibernated"
pid=$(lab_odrsd_pid n1)

step "1: two pipelined wake requests for one VM get two answers"
python3 - "$SOCK" <<'EOF' || fail "pipelined wakes"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(60)
s.sendall(b'{"cmd":"wake","vm":"gc"}\n{"cmd":"wake","vm":"gc"}\n{"cmd":"status"}\n')
data = b''
while data.count(b'\n') < 3:
    d = s.recv(65536)
    if not d:
        break
    data += d
a = [json.loads(l) for l in data.decode().splitlines()]
assert len(a) == 3 and 'ok' in a[0] and 'ok' in a[1] and 'status' in a[2], a
print('two wakes of gc:', a[0], a[1])
EOF

step "2: a second odrsd is refused and leaves the first one's socket alone"
for f in -f ""; do
	# timeout: a second odrsd that is not refused would serve on.
	lab_node_exec n1 timeout 20 "$LAB_ODRSD" $f -c "$conf" >"$OUT.2nd" 2>&1
	rc=$?
	[ "$rc" = 1 ] || fail "second odrsd $f: exit $rc: $(cat "$OUT.2nd")"
	grep -q "another odrsd (pid $pid) holds $LAB_DIR/n1/odrs/state/odrsd.lock" "$OUT.2nd" ||
		fail "second odrsd $f said: $(cat "$OUT.2nd")"
done
[ -S "$SOCK" ] && [ "$(counter vms)" = 3 ] || fail "the first odrsd's socket no longer answers"
[ "$(lab_odrsd_pid n1)" = "$pid" ] || fail "the first odrsd is gone"

step "3: a start that fails exits non-zero without -f"
bad=$LAB_DIR/n1/bad.conf
sed -e 's/^interface = .*/interface = nosuch0/' -e "s|$LAB_DIR/n1/odrs/|$LAB_DIR/n1/bad-|" "$conf" >"$bad"
lab_node_exec n1 timeout 20 "$LAB_ODRSD" -c "$bad" >"$OUT.bad" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "start on a missing interface: exit $rc: $(cat "$OUT.bad")"
grep -q "interface nosuch0" "$OUT.bad" || fail "start on a missing interface said: $(cat "$OUT.bad")"
[ ! -e "$LAB_DIR/n1/bad-odrsd.sock" ] || fail "a failed start left a socket"

step "5: show: gc in error, why and since when; a recheck finds its image put back"
# recheck_in_s is left out while the recheck's inspect runs: ask again then.
show_gc_error() {
	ctl show gc >"$OUT.show" && grep -qx "state: error" "$OUT.show" &&
		grep -qx "error: no such domain and no snapshot" "$OUT.show" &&
		grep -Eqx "since: 20[0-9-]{8}T[0-9:.]{12}Z" "$OUT.show" && grep -Eqx "recheck_in_s: [0-9]+" "$OUT.show"
}
lab_wait 5 show_gc_error || fail "show gc: $(cat "$OUT.show")"
cat "$OUT.show"
ctl show --json gc | jq -e '.state == "error" and .error == "no such domain and no snapshot"' >/dev/null ||
	fail "show --json gc: $(ctl show --json gc)"
ctl show nosuch >/dev/null 2>&1 && fail "show of an unknown VM succeeded"
echo x >"$LAB_SHARED/gc.odrs-save"
odrs_wait_state n1 gc hibernated 70 || fail "gc not rechecked: $(ctl show gc)"
grep -q "gc: in error (no such domain and no snapshot); checking again in" "$LAB_DIR/n1/odrsd.log" ||
	fail "no recheck logged"
[ "$(lab_odrsd_pid n1)" = "$pid" ] || fail "odrsd restarted"

step "4: SIGHUP: ga and gb swap IPs, gb gains a MAC, gc goes"
odrs_mark n1
lab_wait 10 arp_is $IPA "$MACA" || fail "before: ARP for $IPA: '$(arp_mac $IPA)', want $MACA"
[ -z "$(arp_mac $IPB)" ] || fail "before: gb has no MAC yet, but $IPB is answered"
reloads=$(counter reloads)
odrs_conf n1 "[policy]" "idle_timeout = 0" "wake_on = none" \
	"[vm ga]" "ip = $IPB" "mac = $MACA" "[vm gb]" "ip = $IPA" "mac = $MACB" >/dev/null
kill -HUP "$pid"
reloaded() { [ "$(counter reloads)" = $((reloads + 1)) ]; }
lab_wait 10 reloaded || fail "SIGHUP not applied: reloads $(counter reloads), was $reloads"
ctl list >"$OUT.ls"
cat "$OUT.ls"
[ "$(counter vms)" = 2 ] || fail "vms after the reload: $(counter vms)"
grep -Eq "^ga +$IPB +$MACA +hibernated " "$OUT.ls" || fail "ga's row"
grep -Eq "^gb +$IPA +$MACB +hibernated " "$OUT.ls" || fail "gb's row (MAC added?)"
grep -q '^gc ' "$OUT.ls" && fail "gc still listed"
lab_wait 10 arp_is $IPA "$MACB" || fail "ARP for $IPA (gb's now): '$(arp_mac $IPA)', want $MACB"
lab_wait 10 arp_is $IPB "$MACA" || fail "ARP for $IPB (ga's now): '$(arp_mac $IPB)', want $MACA"
[ -z "$(arp_mac $IPC)" ] || fail "ARP for the removed gc's $IPC answered"
[ "$(lab_odrsd_pid n1)" = "$pid" ] || fail "odrsd restarted"
evlast reload '.ok and .by == "SIGHUP" and .removed == ["gc"] and .added == [] and .restart_needed == []' ||
	fail "reload event: $(odrs_evlog n1 | grep '"reload"')"
ctl show --json ga | jq -e --arg c "$(lab_client_ip c1)" \
	'.refused.trigger == "arp" and .refused.why == "wake_on" and .refused.from == $c' >/dev/null ||
	fail "show ga: the ARP refused by wake_on = none: $(ctl show --json ga)"

step "6: odrsctl reload: the daemon's verdict, a key that needs a restart listed"
odrs_mark n1
good=( "wake_concurrency = 7" "wake_on_stop = yes" "[policy]" "idle_timeout = 0" "wake_on = none"
	"[vm ga]" "ip = $IPB" "mac = $MACA" "[vm gb]" "ip = $IPA" "mac = $MACB" )
odrs_conf n1 "${good[@]}" >/dev/null
out=$(ctl reload) || fail "reload: $out"
echo "$out"
printf '%s\n' "$out" | grep -qx "reloaded: 2 VMs" &&
	printf '%s\n' "$out" | grep -qx "not applied until a restart: wake_concurrency" || fail "reload said: $out"
evlast reload '.ok and .by == "control" and .uid == 0 and .restart_needed == ["wake_concurrency"]' ||
	fail "reload event: $(odrs_evlog n1 | grep '"reload"')"
odrs_conf n1 "${good[@]}" "nosuch_key = 1" >/dev/null
ctl reload >"$OUT.bad" 2>&1 && fail "a bad file reloaded"
evlast reload '(.ok | not) and .by == "control" and (.error | test("nosuch_key"))' ||
	fail "refused reload event: $(odrs_evlog n1 | grep '"reload"')"
odrs_conf n1 "${good[@]}" >/dev/null
ctl reload >/dev/null || fail "reload back"

step "7: wake_on_stop: the stop wakes the hibernated VMs first"
odrs_mark n1
lab_odrsd_stop n1 || fail "odrsd stop: exit $?"
[ "$(odrs_evlog n1 | jq -s -c '[.[] | select(.event == "wake_start" and .trigger == "manual") | .vm] | sort')" = \
	'["ga","gb"]' ] || fail "wakes at the stop: $(odrs_evlog n1 | grep wake_start)"
evlast stop '.signal == "SIGTERM" and .woken == 2' || fail "stop event: $(odrs_evlog n1 | grep '"stop"')"
grep -q "waking 2 VMs before stopping (wake_on_stop)" "$LAB_DIR/n1/odrsd.log" || fail "not logged"

echo "PASS"

#!/bin/bash
# Open TCP connections survive sleep, and UDP wakes (issue 16), with a real
# guest and real clients (permanent neighbour entries: no ARP, which would
# wake the VM by itself; wake_on = syn established):
#  1. a python client holds a TCP connection to the guest's echo port and
#     gets a line back; web1 is hibernated while the connection is quiet;
#  2. a stranger's ACKs to web1 (flows it never had) wake nothing and are
#     counted (flows_unknown); a real SYN afterwards wakes it, so it could
#     have woken; it is hibernated again, the connection still quiet;
#  3. the client sends another line on the same connection: it comes back
#     within 15 s, the wake's trigger is established (flow_held logged);
#     then web1 is dozed (its own zram swap device is hot-added when the host
#     has no swap; skipped without zram) and the next line resumes it;
#  4. idle_connections = keep: web1 with that quiet connection stays up past
#     idle_timeout (idle_skip connections); once the client closes it, web1
#     hibernates on its own;
#  5. wake_udp_ports = 7: one UDP query to sleeping web1 (the guest's
#     udpecho) gets its answer, from the first datagram: the client sends
#     it once;
#  6. activity_udp = yes: web1 busy with UDP alone stays up past
#     idle_timeout; once quiet, it sleeps.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

IP=198.18.0.10 MAC=52:54:00:12:00:10 IDLE=4
trap 'exec 3>&- 2>/dev/null; lab_down; odrs_zram_down' EXIT
lab_up 1 2 || fail "lab_up"
lab_vm_start n1 web1 $IP $MAC || fail "web1 start"
lab_vm_wait_ready n1 web1 || fail "guest not ready"
# idle_timeout = 0 until step 4: until then only odrsctl puts web1 to sleep.
web1_conf() { # IDLE_TIMEOUT
	odrs_conf n1 "check_interval = 1s" "[vm web1]" "ip = $IP" "wake_on = syn established" \
		"idle_timeout = $1" "probe = none" "idle_connections = keep" "wake_udp_ports = 7" \
		"activity_udp = yes"
}
lab_odrsd_start n1 "$(web1_conf 0)" || fail "odrsd did not start"
odrs_wait_state n1 web1 running || fail "web1 not seen running"
lab_router_client c1 $IP $MAC
lab_router_client c2 $IP $MAC
counter() { lab_odrsctl n1 status | awk -v k="$1:" '$1 == k { print $2 }'; }

# The client: one connection, driven line by line through a fifo ("send WORD",
# "close"); it prints "got WORD in SECONDS" for each echo, or dies.
cat > "$LAB_DIR/client.py" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7), timeout=20)
print("connected from port %d" % s.getsockname()[1], flush=True)
for cmd in sys.stdin:
    word = cmd.split()[-1].encode()
    if cmd.startswith("close"):
        s.close()
        print("closed", flush=True)
        break
    t0, buf = time.time(), b""
    s.settimeout(15)
    s.sendall(word + b"\n")
    while not buf.endswith(b"\n"):
        d = s.recv(100)
        if not d:
            sys.exit("connection closed by the guest")
        buf += d
    if buf != word + b"\n":
        sys.exit("echo %r for %r" % (buf, word))
    print("got %s in %.2f" % (word.decode(), time.time() - t0), flush=True)
EOF
mkfifo "$LAB_DIR/client.in"
lab_client_exec c1 python3 -u "$LAB_DIR/client.py" $IP < "$LAB_DIR/client.in" > "$LAB_DIR/client.out" 2>&1 &
exec 3> "$LAB_DIR/client.in"
said() { lab_wait "${2:-20}" grep -q "$1" "$LAB_DIR/client.out" || fail "client: $(cat "$LAB_DIR/client.out")"; }

step "1: a held connection echoes; hibernated while quiet"
echo "send one" >&3
said "got one"
odrs_hibernate n1 web1

step "2: a stranger's ACKs wake nothing, and are counted; a real SYN does wake"
odrs_mark n1
before=$(counter flows_unknown)
cat > "$LAB_DIR/acks.py" <<'EOF'
import random, socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst, n = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(n):
    sport = random.randint(20000, 60000)
    tcp = struct.pack("!HHIIBBHHH", sport, 7, random.getrandbits(32), random.getrandbits(32), 5 << 4,
                      0x18 if i % 2 else 0x10, 64240, 0, 0) + (b"x\n" if i % 2 else b"")
    tcp += b"\0" * (len(tcp) % 2)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    s.sendto(tcp[:16] + struct.pack("!H", c) + tcp[18:], (sys.argv[2], 0))
EOF
lab_client_exec c2 python3 "$LAB_DIR/acks.py" 198.18.3.2 $IP 50 || fail "the stranger's ACKs not sent"
lab_wait 10 eval '[ "$(counter flows_unknown)" -ge $((before + 50)) ]' ||
	fail "flows_unknown $(counter flows_unknown), want $before + 50"
[ "$(odrs_state n1 web1)" = hibernated ] || fail "a stranger's ACK woke web1: $(odrs_state n1 web1)"
[ "$(odrs_events n1 wake_start web1)" = 0 ] || fail "a wake started: $(odrs_evlog n1 | grep wake_start)"
out=$(echo syn-wakes | lab_client_exec c2 nc -q 2 -w 20 $IP 7) || fail "nc failed"
[ "$out" = syn-wakes ] || fail "echo after the SYN answered '$out'"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"syn"' || fail "no wake by the SYN"
odrs_hibernate n1 web1

step "3: the quiet connection's next line wakes web1 and comes back within 15 s"
odrs_mark n1
echo "send two" >&3
said "got two" 20
echo "$(grep 'got two' "$LAB_DIR/client.out")"
odrs_wait_state n1 web1 running 5 || fail "web1 not running after the echo"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"established"' ||
	fail "wake not triggered by the flow: $(odrs_evlog n1 | grep wake_start)"
odrs_event n1 flow_held web1 || fail "no flow_held event"
[ "$(counter flows_held)" -ge 1 ] || fail "flows_held $(counter flows_held)"
echo "send three" >&3
said "got three"
if odrs_has_swap || odrs_zram_up; then
	odrs_mark n1
	out=$(lab_odrsctl n1 doze web1) || fail "doze web1: $out"
	[ "$(odrs_state n1 web1)" = dozing ] || fail "web1 is $(odrs_state n1 web1) after doze"
	echo "send four" >&3
	said "got four"
	echo "dozed: $(grep 'got four' "$LAB_DIR/client.out")"
	odrs_wait_state n1 web1 running 5 || fail "web1 not running after the echo"
	odrs_evlog n1 | grep '"event":"wake_done"' | grep '"trigger":"established"' | grep -q '"from":"doze"' ||
		fail "no wake_done from doze by the flow: $(odrs_evlog n1 | grep wake_done)"
else
	[ "${CI:-}" != true ] || fail "no swap and no zram for the doze step"
	echo "no swap and no zram: the doze is skipped"
fi

step "4: idle_connections = keep: the quiet connection keeps web1 up; closed, it sleeps"
odrs_mark n1
web1_conf ${IDLE}s > /dev/null
lab_odrsctl n1 reload > /dev/null || fail "reload refused"
lab_wait $((IDLE + 10)) odrs_event n1 idle_skip web1 || fail "no idle_skip for the open connection"
odrs_evlog n1 | grep '"event":"idle_skip"' | grep -q '"reason":"connections"' ||
	fail "idle_skip: $(odrs_evlog n1 | grep idle_skip)"
[ "$(odrs_state n1 web1)" = running ] || fail "web1 is $(odrs_state n1 web1) with an open connection"
echo "close" >&3
said "closed"
odrs_wait_state n1 web1 hibernated $((IDLE + 30)) || fail "web1 did not sleep once the connection closed"

step "5: a UDP query to sleeping web1 gets its answer from the first datagram"
odrs_mark n1
cat > "$LAB_DIR/udp.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
t0 = time.time()
s.sendto(b"udp-query\n", (sys.argv[1], 7))
print(s.recv(100).decode().strip(), "%.2f" % (time.time() - t0))
EOF
out=$(lab_client_exec c2 python3 "$LAB_DIR/udp.py" $IP) || fail "no UDP answer: $out"
echo "UDP answer: $out"
[ "${out%% *}" = udp-query ] || fail "UDP answer '$out'"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"udp"' || fail "wake not triggered by the datagram"
odrs_event n1 udp_held web1 || fail "no udp_held event"

step "6: activity_udp: UDP alone keeps web1 up past idle_timeout; quiet, it sleeps"
odrs_mark n1
cat > "$LAB_DIR/udp-busy.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
got, end = 0, time.time() + float(sys.argv[2])
while time.time() < end:
    s.sendto(b"busy\n", (sys.argv[1], 7))
    try:
        got += s.recv(100) == b"busy\n"
        time.sleep(0.5)
    except socket.timeout:
        pass
print(got)
EOF
got=$(lab_client_exec c2 python3 "$LAB_DIR/udp-busy.py" $IP $((IDLE * 2 + 2))) || fail "UDP client failed"
echo "$got UDP answers in $((IDLE * 2 + 2)) s"
[ "$(odrs_events n1 hibernate_start web1)" = 0 ] || fail "web1 was hibernated while busy with UDP"
odrs_wait_state n1 web1 hibernated $((IDLE + 30)) || fail "web1 did not sleep once UDP stopped"

echo "PASS"

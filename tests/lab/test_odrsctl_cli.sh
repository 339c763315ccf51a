#!/bin/bash
# odrsctl against a fake daemon (socat and a canned responder): exit codes
# 0/1/2/3, the request lines it sends, and what status, list, show, hibernate,
# wake (one VM, several, --all), pin, accept and reload print, through a
# pipe and on a terminal.
# Needs no root and no VM. ODRSCTL overrides the binary (default build/odrsctl).
# Exit 0 pass, 1 fail, 77 skip.
cd "$(dirname "$0")/../.." || exit 1
ODRSCTL=${ODRSCTL:-$PWD/build/odrsctl}
[ -x "$ODRSCTL" ] || { echo "skip: no $ODRSCTL (make all)"; exit 77; }
command -v socat >/dev/null || { echo "skip: socat is not installed"; exit 77; }

DIR=$(mktemp -d) || exit 1
SOCK=$DIR/odrsd.sock
SOCAT_PID=
cleanup() {
	[ -n "$SOCAT_PID" ] && kill "$SOCAT_PID" 2>/dev/null && wait "$SOCAT_PID" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

fails=0
check() { # NAME CONDITION...
	local name=$1; shift
	if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
expect_rc() { # NAME WANT CMD...: run CMD, output in $DIR/out and $DIR/err
	local name=$1 want=$2 rc; shift 2
	"$@" >"$DIR/out" 2>"$DIR/err"; rc=$?
	if [ "$rc" = "$want" ]; then
		echo "ok: $name (exit $rc)"
	else
		echo "FAIL: $name: exit $rc, want $want"; sed 's/^/  stderr: /' "$DIR/err"
		fails=$((fails + 1))
	fi
}
same() { # FILE EXPECTED-TEXT
	if [ "$(cat "$1")" = "$2" ]; then return 0; fi
	echo "  got:"; sed 's/^/    /' "$1"; echo "  want:"; printf '%s\n' "$2" | sed 's/^/    /'
	return 1
}

# The responder: one request line in, canned answer lines out, every request logged.
cat >"$DIR/respond.sh" <<'EOF'
#!/bin/sh
read -r req || exit 0
printf '%s\n' "$req" >>"$FAKE_DIR/requests"
case $req in
*'"cmd":"status"'*)
	echo '{"ok":true,"status":{"node":"n1","accept":"n2","vms":3,"sleeping":1,"uptime":123,"version":"0.1.0","counters":{"frames":10,"malformed":0,"arp_replies":2,"restores":1}}}' ;;
*'"cmd":"list"'*)
	echo '{"ok":true,"vms":[{"name":"web1","ip":"198.18.0.10","mac":"52:54:00:12:00:10","state":"hibernated","node":"n1","idle_s":12,"snapshot_bytes":68000000,"last_wake_ms":312,"pinned":false},{"name":"database-server","ip":"198.18.0.11","mac":"52:54:00:12:00:11","state":"running","node":"n1","idle_s":0,"snapshot_bytes":null,"last_wake_ms":null,"pinned":true,"since":"2026-11-23T09:00:00.000Z","error":null,"recheck_in_s":null,"stayed_up":{"reason":"load","detail":"1.5","at":"2026-11-23T09:01:00.000Z"},"refused":{"trigger":"arp","why":"routers","from":"198.18.0.1","at":"2026-11-23T09:02:00.000Z"},"sleep":"hibernate","hibernate_reason":null,"dozing_since":null,"newer":7}]}' ;;
*'"vm":"missing"'*)
	echo '{"ok":false,"error":"no such VM: missing"}' ;;
*'"vm":"dropped"'*)
	echo '{"progress":{"done":1000000,"total":2000000}}' ;;
*'"vm":"garbled"'*)
	echo 'this is not JSON' ;;
*'"cmd":"hibernate"'*)
	echo '{"progress":{"done":34000000,"total":68000000}}'
	echo '{"progress":{"done":68000000,"total":68000000}}'
	echo '{"ok":true,"vm":"web1","state":"hibernated","bytes":68000000,"ms":2103}' ;;
*'"vm":"slow"'*)
	# Answers only once a request for "partner" has come: wake slow partner
	# passes only when odrsctl sends every request before reading an answer.
	for _ in $(seq 50); do grep -q '"vm":"partner"' "$FAKE_DIR/requests" && break; sleep 0.1; done
	if grep -q '"vm":"partner"' "$FAKE_DIR/requests"; then
		echo '{"ok":true,"vm":"slow","state":"running","ms":900}'
	else
		echo '{"ok":false,"error":"partner was never asked"}'
	fi ;;
*'"cmd":"wake"'*)
	vm=$(printf '%s\n' "$req" | sed -n 's/.*"vm":"\([^"]*\)".*/\1/p')
	echo "{\"ok\":true,\"vm\":\"$vm\",\"state\":\"running\",\"ms\":312}" ;;
*'"cmd":"accept","move"'*)
	echo '{"ok":true}' ;;
*'"cmd":"accept"'*)
	echo '{"ok":true,"accept":"n2","term":7}' ;;
*'"cmd":"reload"'*)
	echo '{"ok":true,"vms":3,"added":["web3"],"removed":[],"restart_needed":["node","etcd"]}' ;;
*'"cmd":"pin"'*|*'"cmd":"unpin"'*)
	echo '{"ok":true}' ;;
*)
	echo '{"ok":false,"error":"unknown command"}' ;;
esac
EOF
chmod +x "$DIR/respond.sh"
FAKE_DIR=$DIR socat UNIX-LISTEN:"$SOCK",fork EXEC:"$DIR/respond.sh" 2>"$DIR/socat.err" &
SOCAT_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "FAIL: socat did not listen"; cat "$DIR/socat.err"; exit 1; }

C=("$ODRSCTL" -s "$SOCK")

# Usage errors: 2, before any connection.
: >"$DIR/requests"
expect_rc "no command" 2 "$ODRSCTL"
expect_rc "unknown command" 2 "${C[@]}" frobnicate
expect_rc "hibernate without VM" 2 "${C[@]}" hibernate
expect_rc "wake without VM" 2 "${C[@]}" wake
expect_rc "wake --all with a VM" 2 "${C[@]}" wake --all web1
expect_rc "wake with a bad option" 2 "${C[@]}" wake --every
expect_rc "status with bad option" 2 "${C[@]}" status --yaml
expect_rc "accept with bad operand" 2 "${C[@]}" accept give n2
expect_rc "-c with a missing file" 2 "$ODRSCTL" -c "$DIR/no.conf" status
check "usage errors sent nothing" [ ! -s "$DIR/requests" ]

# An invalid configuration is reported, then passed over for the default
# socket: odrsctl needs only that path (none listens there in this test).
printf '[odrsd]\nwake_concurrency = many\ncontrol_socket = %s\n' "$SOCK" >"$DIR/bad.conf"
expect_rc "-c with an invalid file: the default socket" 3 "$ODRSCTL" -c "$DIR/bad.conf" status
check "config error as FILE:LINE" grep -q "^$DIR/bad.conf:2: " "$DIR/err"
check "warning names the default socket" \
	grep -qx "odrsctl: warning: $DIR/bad.conf cannot be used; using the default socket /run/odrs/odrsd.sock" "$DIR/err"
check "the default socket tried" grep -q "cannot connect to /run/odrs/odrsd.sock" "$DIR/err"
expect_rc "-c with an invalid file and -s" 0 "$ODRSCTL" -c "$DIR/bad.conf" -s "$SOCK" status
check "-s: the configuration not even read" [ ! -s "$DIR/err" ]

# Unreachable: 3.
expect_rc "no socket" 3 "$ODRSCTL" -s "$DIR/nobody.sock" status
expect_rc "connection dropped mid-answer" 3 "${C[@]}" hibernate dropped

# Failed operation: 1, the daemon's reason on stderr.
expect_rc "ok:false" 1 "${C[@]}" wake missing
check "ok:false error printed" same "$DIR/err" "odrsctl: no such VM: missing"
expect_rc "answer not JSON" 1 "${C[@]}" wake garbled

# status
expect_rc "status" 0 "${C[@]}" status
check "status lines" same "$DIR/out" "node: n1
accept: n2
vms: 3
sleeping: 1
uptime: 123
version: 0.1.0
frames: 10
malformed: 0
arp_replies: 2
restores: 1"
expect_rc "status --json" 0 "${C[@]}" status --json
check "status --json is the status object" \
	bash -c "tr -d ' \n' <'$DIR/out' | grep -qx '{\"node\":\"n1\",\"accept\":\"n2\",.*\"counters\":{.*\"restores\":1}}'"

# list, through a pipe: rows only, aligned.
expect_rc "list" 0 "${C[@]}" list
check "list rows" same "$DIR/out" \
"web1            198.18.0.10 52:54:00:12:00:10 hibernated n1 12 68000000 312
database-server 198.18.0.11 52:54:00:12:00:11 running    n1 0  -        -"
expect_rc "list --json" 0 "${C[@]}" list --json
check "list --json is the array" bash -c "head -c1 '$DIR/out' | grep -q '\['"

# show: one VM's list entry, why it is as it is first, what does not apply left out.
expect_rc "show" 0 "${C[@]}" show database-server
check "show lines" same "$DIR/out" "name: database-server
state: running
since: 2026-11-23T09:00:00.000Z
node: n1
ip: 198.18.0.11
mac: 52:54:00:12:00:11
pinned: true
idle_s: 0
stayed_up: load: 1.5, at 2026-11-23T09:01:00.000Z
refused: arp from 198.18.0.1 by routers, at 2026-11-23T09:02:00.000Z
sleep: hibernate
snapshot_bytes: -
last_wake_ms: -
newer: 7"
expect_rc "show, an older daemon's entry" 0 "${C[@]}" show web1
check "show: unknown as -" grep -qx "stayed_up: -" "$DIR/out"
expect_rc "show --json" 0 "${C[@]}" show --json database-server
check "show --json is the object" bash -c "tr -d ' \n' <'$DIR/out' | grep -q '^{\"name\":\"database-server\".*\"why\":\"routers\"'"
expect_rc "show of an unknown VM" 1 "${C[@]}" show nosuch
check "show: unknown VM named" same "$DIR/err" "odrsctl: unknown VM: nosuch"
expect_rc "show without VM" 2 "${C[@]}" show

# hibernate and wake through a pipe: no progress asked, the outcome only.
: >"$DIR/requests"
expect_rc "hibernate" 0 "${C[@]}" hibernate web1
check "hibernate outcome" same "$DIR/out" "web1: hibernated (68000000 bytes, 2103 ms)"
check "hibernate request" same "$DIR/requests" '{"cmd":"hibernate","vm":"web1","progress":false}'
expect_rc "wake" 0 "${C[@]}" wake web1
check "wake outcome" same "$DIR/out" "web1: running (312 ms)"

# wake VM...: every request out before an answer is read, each outcome in
# the order given, each failure named, exit 1 when any failed.
: >"$DIR/requests"
expect_rc "wake several" 0 "${C[@]}" wake slow partner
check "wake several: outcomes in order" same "$DIR/out" "slow: running (900 ms)
partner: running (312 ms)"
: >"$DIR/requests"
expect_rc "wake several, one unknown" 1 "${C[@]}" wake web1 missing db1
check "wake several: the others woken" same "$DIR/out" "web1: running (312 ms)
db1: running (312 ms)"
check "wake several: the failure named" same "$DIR/err" "odrsctl: missing: no such VM: missing"
check "wake several: one request each" same <(sort "$DIR/requests") \
'{"cmd":"wake","vm":"db1","progress":false}
{"cmd":"wake","vm":"missing","progress":false}
{"cmd":"wake","vm":"web1","progress":false}'
expect_rc "wake several, daemon unreachable" 3 "$ODRSCTL" -s "$DIR/nobody.sock" wake web1 db1

# wake --all: the VMs list says are not running (web1 here), nothing else.
: >"$DIR/requests"
expect_rc "wake --all" 0 "${C[@]}" wake --all
check "wake --all outcome" same "$DIR/out" "web1: running (312 ms)"
check "wake --all requests" same "$DIR/requests" '{"cmd":"list"}
{"cmd":"wake","vm":"web1","progress":false}'

: >"$DIR/requests"
expect_rc "pin" 0 "${C[@]}" pin web1
expect_rc "unpin" 0 "${C[@]}" unpin web1
expect_rc "reload" 0 "${C[@]}" reload
check "reload: the daemon's verdict" same "$DIR/out" "reloaded: 3 VMs
added: web3
not applied until a restart: node etcd"
expect_rc "accept" 0 "${C[@]}" accept
check "accept shows the holder" same "$DIR/out" "accept: n2
term: 7"
expect_rc "accept move" 0 "${C[@]}" accept move n3
check "requests" same "$DIR/requests" '{"cmd":"pin","vm":"web1"}
{"cmd":"unpin","vm":"web1"}
{"cmd":"reload"}
{"cmd":"accept"}
{"cmd":"accept","move":"n3"}'

# The socket named by the configuration, when no -s.
printf '[odrsd]\ncontrol_socket = %s\n' "$SOCK" >"$DIR/odrs.conf"
expect_rc "socket from -c" 0 "$ODRSCTL" -c "$DIR/odrs.conf" wake web1

# On a terminal: a header over the list, progress while hibernating.
if command -v script >/dev/null; then
	script -qec "'$ODRSCTL' -s '$SOCK' list" /dev/null >"$DIR/tty" </dev/null
	check "list header on a terminal" grep -q '^NAME  *IP  *MAC  *STATE  *NODE  *IDLE_S  *SNAPSHOT_BYTES  *LAST_WAKE_MS' "$DIR/tty"
	: >"$DIR/requests"
	script -qec "'$ODRSCTL' -s '$SOCK' hibernate web1" /dev/null >"$DIR/tty" </dev/null
	check "progress asked on a terminal" grep -q '"progress":true' "$DIR/requests"
	check "progress shown" grep -q 'saving web1: 34.0/68.0 MB' "$DIR/tty"
	check "outcome after progress" grep -q 'web1: hibernated (68000000 bytes, 2103 ms)' "$DIR/tty"
else
	echo "note: no script(1), terminal output not checked"
fi

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]

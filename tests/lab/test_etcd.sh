#!/bin/bash
# odrsd/etcd.c against a real single-member etcd, no VMs: put and get,
# transaction races, leases, watches, callbacks that re-enter the client,
# endpoint failover, timeouts, a compacted watch, answers etcd gives only
# in trouble (from a canned gateway in the driver: a watch stream cut at
# every byte, 503, 400, not JSON), a prefix read in pages at one revision,
# and etcd killed and started again under
# an open watch. etcd runs in a network namespace of its
# own on 127.0.0.1:2379, so it meets no other etcd; the driver
# (build/etcd_drive, built with ASan and UBSan) runs there too and checks
# each result itself. ETCD_DRIVE overrides the driver.
# Exit 0 pass, 1 fail, 77 skip (not root, no etcd).
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
NS=odrs-etcdtest-$$
EP=http://127.0.0.1:2379
REFUSED=http://127.0.0.1:1

[ "$(id -u)" = 0 ] || { echo "skip: needs root (a network namespace)"; exit 77; }
for t in etcd etcdctl ip; do
	command -v $t >/dev/null || { echo "skip: needs $t"; exit 77; }
done

if [ -n "${ETCD_DRIVE:-}" ]; then
	DRIVE=$ETCD_DRIVE
else
	make -s -C "$ROOT" build/etcd_drive >/dev/null || { echo "FAIL: cannot build build/etcd_drive"; exit 1; }
	DRIVE=$ROOT/build/etcd_drive
fi

DIR=$(mktemp -d /tmp/odrs-etcdtest.XXXXXX) || exit 1
ETCD_PID=
cleanup() {
	# Whatever still runs in our namespace is ours: etcd, a driver.
	for p in $(ip netns pids $NS 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	# Reaped here, or bash reports etcd "Killed".
	[ -n "${ETCD_PID:-}" ] && { wait "$ETCD_PID"; } 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
step() { echo "== $*"; }
in_ns() { ip netns exec $NS "$@"; }
ctl() { in_ns etcdctl --endpoints $EP "$@"; }

etcd_start() {
	# ip netns exec execs etcd: $! is etcd itself (through a function it would be a subshell).
	ip netns exec $NS etcd --name t --data-dir "$DIR/data" \
		--listen-client-urls $EP --advertise-client-urls $EP \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster t=http://127.0.0.1:2380 >>"$DIR/etcd.log" 2>&1 &
	ETCD_PID=$!
	for _ in $(seq 100); do
		ctl endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "etcd did not start:"; tail -n 20 "$DIR/etcd.log"
	exit 1
}

# drive NAME ENDPOINTS SCENARIO [ARG]: the driver's checks, indented.
drive() {
	local name=$1 rc
	shift
	step "$name"
	in_ns timeout 120 "$DRIVE" "$@" >"$DIR/$name.out" 2>&1
	rc=$?
	sed 's/^/  /' "$DIR/$name.out"
	[ $rc = 0 ] || fail "$name: exit $rc"
}

wait_line() { # FILE LINE TIMEOUT_S
	for _ in $(seq $(($3 * 10))); do
		grep -qx "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

ip netns add $NS || exit 1
ip -n $NS link set lo up
etcd_start

drive putget $EP putget
drive race $EP race
drive lease $EP lease
drive watch $EP watch
drive reentry $EP reentry
drive failover "$REFUSED,$EP" failover
drive unreachable "$REFUSED,http://127.0.0.1:3" unreachable
drive gateway "$REFUSED,$EP" gateway
drive pages $EP pages

# History before a compaction is gone: a watch from there must end.
ctl put /c/k v >/dev/null
rev=$(ctl get /c/k -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
ctl compact "$rev" >/dev/null || fail "etcdctl compact $rev"
drive compacted $EP compacted

drive stall $EP stall "$ETCD_PID"

step outage
in_ns timeout 120 "$DRIVE" $EP outage >"$DIR/outage.out" 2>&1 &
OUTAGE=$!
if wait_line "$DIR/outage.out" watching 20; then
	{ kill -9 "$ETCD_PID"; wait "$ETCD_PID"; } 2>/dev/null
	if wait_line "$DIR/outage.out" down 20; then
		etcd_start
	else
		fail "outage: the driver never saw etcd down"
	fi
else
	fail "outage: the driver's watch never ran"
fi
wait $OUTAGE
rc=$?
sed 's/^/  /' "$DIR/outage.out"
[ $rc = 0 ] || fail "outage: exit $rc"

if [ $fails = 0 ]; then echo "all passed"; else echo "$fails failed"; fi
[ $fails = 0 ]

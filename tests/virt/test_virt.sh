#!/bin/sh
# odrsd/virt.c against a real libvirtd and a real (TCG) QEMU guest.
#
# Runs in a network namespace of its own with private copies of libvirt's
# directories mounted over the host's, so its libvirtd never meets another
# one. Exit: 0 pass, 1 fail, 77 cannot run here (not root, no libvirtd,
# no kernel to boot).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS=odrs-vt-$$
DOM=odrsvt
MAC=52:54:00:12:00:77
URI=qemu:///system

inner() {
	W=$1 DRIVE=$2
	SNAP=$W/snap SMALL=$W/small
	mkdir -p "$SNAP" "$SMALL"

	# libvirt's state, private to this mount namespace.
	for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
		mkdir -p "$d" "$W/root$d"
		mount --bind "$W/root$d" "$d"
	done
	cp -a /etc/libvirt "$W/root/etc-libvirt"
	rm -f "$W"/root/etc-libvirt/qemu/networks/autostart/*
	cat >>"$W/root/etc-libvirt/qemu.conf" <<-EOF
	security_driver = "none"
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	namespaces = []
	cgroup_controllers = []
	stdio_handler = "file"
	EOF
	echo "log_outputs = \"3:file:$W/libvirtd.log\"" >>"$W/root/etc-libvirt/libvirtd.conf"
	mount --bind "$W/root/etc-libvirt" /etc/libvirt

	ip link set lo up
	ip link add odrsvt-br0 type bridge
	ip link set odrsvt-br0 up

	libvirtd -d -p "$W/libvirtd.pid"
	i=0
	until virsh -q -c $URI version >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "libvirtd did not start"; cat "$W/libvirtd.log"; return 1; }
		sleep 0.1
	done

	cat >"$W/dom.xml" <<-EOF
	<domain type='qemu'>
	  <name>$DOM</name>
	  <memory unit='MiB'>96</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$W/initrd.gz</initrd>
	    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
	  </os>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <interface type='bridge'>
	      <source bridge='odrsvt-br0'/>
	      <mac address='$MAC'/>
	      <model type='virtio'/>
	    </interface>
	    <serial type='file'><source path='$W/console.log'/></serial>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
	virsh -q -c $URI define "$W/dom.xml" >/dev/null
	virsh -q -c $URI start $DOM >/dev/null

	run_tests
}

# drive OP [SNAPDIR]: one job; its JSON in $OUT, its exit status in $RC.
drive() {
	RC=0
	OUT=$(timeout 60 "$DRIVE" $URI "${2:-$SNAP}" n1 "$1" $DOM) || RC=$?
	echo "  $1: $OUT"
}
field() { printf '%s' "$OUT" | jq -r ".$1"; }
domstate() { virsh -q -c $URI domstate $DOM | head -n1; }
FAILS=0
check() { # DESCRIPTION COMMAND...
	d=$1; shift
	if "$@"; then echo "ok: $d"; else echo "NOT OK: $d"; FAILS=$((FAILS + 1)); fi
}
link_exists() { ip link show "$1" >/dev/null 2>&1; }
eq() { [ "$1" = "$2" ] || { echo "    expected '$2', got '$1'"; return 1; }; }
none() { # no file matches any of the patterns
	for f in "$@"; do [ ! -e "$f" ] || { echo "    left over: $f"; return 1; }; done
}

run_tests() {
	I=$SNAP/$DOM.img

	echo "inspect a running domain, with a stale image beside it"
	echo stale >"$I"
	echo stale >"$I.restoring.n2"
	drive inspect
	check "inspect ok" eq "$RC" 0
	check "running" eq "$(field state)" running
	check "tap reported" eq "$(field tap | cut -c1-4)" vnet
	check "mac reported" eq "$(field mac)" $MAC
	check "stale files removed" none "$I" "$I.restoring.n2"
	check "done() on the loop thread" eq "$(field loop_thread)" true

	echo "save"
	drive save
	check "save ok" eq "$RC" 0
	check "state hibernated" eq "$(field state)" hibernated
	check "image exists" test -s "$I"
	check "no .part" none "$I.part"
	check "bytes = image size" eq "$(field bytes)" "$(stat -c %s "$I")"
	check "image complete" eq "$(head -c 16 "$I")" LibvirtQemudSave
	check "domain inactive" eq "$(domstate)" "shut off"
	check "mac reported" eq "$(field mac)" $MAC
	check "progress seen by the loop" test "$(field progress_seen)" -gt 0

	echo "inspect a hibernated domain"
	drive inspect
	check "hibernated" eq "$(field state)" hibernated
	check "mac from the persistent XML" eq "$(field mac)" $MAC

	echo "inspect after a crash during a restore"
	mv "$I" "$I.restoring.n1"
	drive inspect
	check "inspect ok" eq "$RC" 0
	check "hibernated" eq "$(field state)" hibernated
	check "claim renamed back" test -s "$I"
	check "no claim left" none "$I.restoring.n1"

	echo "inspect after a crash between save and rename"
	mv "$I" "$I.part"
	drive inspect
	check "hibernated" eq "$(field state)" hibernated
	check ".part promoted" test -s "$I"
	check "no .part left" none "$I.part"

	echo "inspect after a crash during a save (incomplete .part)"
	mv "$I" "$W/aside.img"
	printf 'LibvirtQemudPart and then nothing' >"$I.part"
	drive inspect
	check "stopped" eq "$(field state)" stopped
	check "incomplete .part removed" none "$I.part" "$I"
	mv "$W/aside.img" "$I"

	echo "restore"
	drive restore
	check "restore ok" eq "$RC" 0
	check "running" eq "$(field state)" running
	check "domain running" eq "$(domstate)" running
	check "tap reported" eq "$(field tap | cut -c1-4)" vnet
	check "tap exists" link_exists "$(field tap)"
	check "progress complete" eq "$(field progress_done)" "$(field bytes)"
	check "image consumed" none "$I" "$I.restoring.n1"

	echo "restore again"
	drive restore
	check "fails" eq "$RC" 1
	check "ENOENT" eq "$(field errno)" ENOENT
	check "still running" eq "$(domstate)" running

	echo "restore over a running domain"
	echo stale >"$I"
	drive restore
	check "fails" eq "$(field errno)" EEXIST
	check "tap of the running domain" eq "$(field tap | cut -c1-4)" vnet
	check "image back in place" test -s "$I"
	check "no claim left" none "$I.restoring.n1"
	check "still running" eq "$(domstate)" running
	rm -f "$I"

	echo "save into a full filesystem"
	mount -t tmpfs -o size=5m odrs-vt "$SMALL"
	drive save "$SMALL"
	check "fails" eq "$RC" 1
	check "ENOSPC" eq "$(field errno)" ENOSPC
	check "libvirt's message" eval 'field error | grep -q "No space left"'
	check "state running" eq "$(field state)" running
	check "domain still running" eq "$(domstate)" running
	check "nothing left" none "$SMALL/$DOM.img" "$SMALL/$DOM.img.part"
	umount "$SMALL"
	drive inspect
	check "inspect after the failed save: running" eq "$(field state)" running

	echo "virt_close while a save runs"
	drive save-close
	check "close returned" eq "$RC" 0
	check "done() not called" eq "$(field done_called)" false
	check "the save finished first" test -s "$I"
	check "no .part" none "$I.part"
	check "domain inactive" eq "$(domstate)" "shut off"

	echo "inspect while a save (from a crashed odrsd) still runs in libvirtd"
	drive restore
	check "restored" eq "$(field state)" running
	virsh -q -c $URI save $DOM "$I.part" --running >/dev/null 2>&1 &
	SAVER=$!
	i=0
	while [ ! -e "$I.part" ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
	drive inspect
	wait $SAVER || true
	check "inspect waited for the save" eq "$(field state)" hibernated
	check ".part promoted" test -s "$I"
	check "no .part left" none "$I.part"
	check "domain inactive" eq "$(domstate)" "shut off"

	echo "save with no such domain"
	OUT=$("$DRIVE" $URI "$SNAP" n1 save nosuchdomain) && RC=0 || RC=$?
	check "ENOENT" eq "$(field errno)" ENOENT
	check "missing" eq "$(field state)" missing

	[ $FAILS = 0 ]
}

cleanup_inner() {
	virsh -q -c $URI destroy $DOM >/dev/null 2>&1 || true
	if [ -s "$W/libvirtd.pid" ]; then kill "$(cat "$W/libvirtd.pid")" 2>/dev/null || true; fi
	umount "$W/small" 2>/dev/null || true
}

if [ "${ODRS_VT_INNER:-}" = 1 ]; then
	W=$1
	KERNEL=$3
	trap cleanup_inner EXIT
	inner "$1" "$2"
	exit
fi

[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
for t in libvirtd virsh qemu-system-x86_64 busybox cpio jq unshare; do
	command -v $t >/dev/null || { echo "needs $t"; exit 77; }
done
KERNEL=
for k in /boot/vmlinuz-*; do [ -r "$k" ] && KERNEL=$k; done
[ -n "$KERNEL" ] || { echo "needs a kernel in /boot"; exit 77; }

if [ -n "${VIRT_DRIVE:-}" ]; then
	DRIVE=$VIRT_DRIVE
else
	make -s -C "$ROOT" build/virt_drive >/dev/null
	DRIVE=$ROOT/build/virt_drive
fi

W=$(mktemp -d /tmp/odrs-vt.XXXXXX)
cleanup() {
	# Whatever is still running in our namespace is ours: qemu, libvirtd.
	for p in $(ip netns pids $NS 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	ip netns del $NS 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The guest: a kernel and an /init that only sleeps.
mkdir -p "$W/initrd/bin"
cp "$(command -v busybox)" "$W/initrd/bin/busybox"
printf '#!/bin/busybox sh\nwhile :; do /bin/busybox sleep 3600; done\n' >"$W/initrd/init"
chmod +x "$W/initrd/init"
(cd "$W/initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.gz"

ip netns add $NS
ip netns exec $NS unshare -m --propagation private \
	env ODRS_VT_INNER=1 sh "$0" "$W" "$DRIVE" "$KERNEL"

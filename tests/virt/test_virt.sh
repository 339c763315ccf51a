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
	I=$SNAP/$DOM.odrs-save P=$SNAP/$DOM.odrs-save.part.n1 C=$SNAP/$DOM.odrs-save.restoring.n1
	PEER_CLAIM=$SNAP/$DOM.odrs-save.restoring.n2 PEER_PART=$SNAP/$DOM.odrs-save.part.n2
	# A raw disk of the domain's name (older virt-install): never odrs's to touch.
	DISK=$SNAP/$DOM.img
	echo "raw disk sectors" >"$DISK"

	echo "inspect a running domain, a raw disk of its name beside it"
	drive inspect
	check "inspect ok" eq "$RC" 0
	check "running" eq "$(field state)" running
	check "tap reported" eq "$(field tap | cut -c1-4)" vnet
	check "mac reported" eq "$(field mac)" $MAC
	check "raw disk untouched" eq "$(cat "$DISK")" "raw disk sectors"
	check "done() on the loop thread" eq "$(field loop_thread)" true

	echo "save"
	drive save
	check "save ok" eq "$RC" 0
	check "state hibernated" eq "$(field state)" hibernated
	check "image exists" test -s "$I"
	check "no part file" none "$P"
	check "bytes = image size" eq "$(field bytes)" "$(stat -c %s "$I")"
	check "image complete" eq "$(head -c 16 "$I")" LibvirtQemudSave
	check "domain inactive" eq "$(domstate)" "shut off"
	check "mac reported" eq "$(field mac)" $MAC
	check "progress seen by the loop" test "$(field progress_seen)" -gt 0
	cp "$I" "$W/stale.save"

	echo "inspect a hibernated domain"
	drive inspect
	check "hibernated" eq "$(field state)" hibernated
	check "mac from the persistent XML" eq "$(field mac)" $MAC

	echo "inspect after a crash during a restore"
	mv "$I" "$C"
	drive inspect
	check "inspect ok" eq "$RC" 0
	check "hibernated" eq "$(field state)" hibernated
	check "claim renamed back" test -s "$I"
	check "no claim left" none "$C"

	echo "inspect with another node's claim: left to that node, and said"
	mv "$I" "$PEER_CLAIM"
	drive inspect
	check "inspect ok" eq "$RC" 0
	check "stopped" eq "$(field state)" stopped
	check "names the node" eval 'field error | grep -q "claimed by a restore on node n2"'
	check "peer's claim untouched" test -s "$PEER_CLAIM"
	check "not made restorable" none "$I"
	mv "$PEER_CLAIM" "$I"

	echo "inspect after a crash between save and rename"
	mv "$I" "$P"
	drive inspect
	check "hibernated" eq "$(field state)" hibernated
	check "part file committed" test -s "$I"
	check "no part file left" none "$P"

	echo "inspect after a crash during a save (incomplete part file), another node's beside it"
	mv "$I" "$W/aside.save"
	printf 'LibvirtQemudPart and then nothing' >"$P"
	printf 'LibvirtQemudPart and then nothing' >"$PEER_PART"
	drive inspect
	check "stopped" eq "$(field state)" stopped
	check "own incomplete part removed" none "$P" "$I"
	check "peer's part untouched" test -s "$PEER_PART"
	rm -f "$PEER_PART"
	mv "$W/aside.save" "$I"

	echo "restore"
	drive restore
	check "restore ok" eq "$RC" 0
	check "running" eq "$(field state)" running
	check "domain running" eq "$(domstate)" running
	check "tap reported" eq "$(field tap | cut -c1-4)" vnet
	check "tap exists" link_exists "$(field tap)"
	check "progress complete" eq "$(field progress_done)" "$(field bytes)"
	check "image consumed" none "$I" "$C"

	echo "restore again"
	drive restore
	check "fails" eq "$RC" 1
	check "ENOENT" eq "$(field errno)" ENOENT
	check "still running" eq "$(domstate)" running

	echo "inspect a running domain with stale images: its own go, another node's claim stays"
	cp "$W/stale.save" "$I"
	cp "$W/stale.save" "$C"
	cp "$W/stale.save" "$PEER_CLAIM"
	drive inspect
	check "running" eq "$(field state)" running
	check "stale image and own claim removed" none "$I" "$C"
	check "peer's claim untouched" test -s "$PEER_CLAIM"
	rm -f "$PEER_CLAIM"

	echo "restore over a running domain: the stale image is removed, never restorable"
	cp "$W/stale.save" "$I"
	drive restore
	check "fails" eq "$(field errno)" EEXIST
	check "tap of the running domain" eq "$(field tap | cut -c1-4)" vnet
	check "stale image removed" none "$I" "$C"
	check "still running" eq "$(domstate)" running

	echo "restore of a file that is no save image of the domain"
	echo stale >"$I"
	drive restore
	check "fails" eq "$(field errno)" EBADMSG
	check "file back in place" eq "$(cat "$I")" stale
	check "no claim left" none "$C"
	rm -f "$I"

	echo "save into a full filesystem"
	mount -t tmpfs -o size=5m odrs-vt "$SMALL"
	drive save "$SMALL"
	check "fails" eq "$RC" 1
	check "ENOSPC" eq "$(field errno)" ENOSPC
	check "libvirt's message" eval 'field error | grep -q "No space left"'
	check "state running" eq "$(field state)" running
	check "domain still running" eq "$(domstate)" running
	check "nothing left" none "$SMALL/$DOM.odrs-save" "$SMALL/$DOM.odrs-save.part.n1"
	umount "$SMALL"
	drive inspect
	check "inspect after the failed save: running" eq "$(field state)" running

	echo "virt_close while a save runs"
	drive save-close
	check "close returned" eq "$RC" 0
	check "done() not called" eq "$(field done_called)" false
	check "the save finished first" test -s "$I"
	check "no part file" none "$P"
	check "domain inactive" eq "$(domstate)" "shut off"

	echo "inspect while a save (from a crashed odrsd) still runs in libvirtd"
	drive restore
	check "restored" eq "$(field state)" running
	virsh -q -c $URI save $DOM "$P" --running >/dev/null 2>&1 &
	SAVER=$!
	i=0
	while [ ! -e "$P" ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
	drive inspect
	wait $SAVER || true
	check "inspect waited for the save" eq "$(field state)" hibernated
	check "part file committed" test -s "$I"
	check "no part file left" none "$P"
	check "domain inactive" eq "$(domstate)" "shut off"

	echo "save with no such domain"
	OUT=$("$DRIVE" $URI "$SNAP" n1 save nosuchdomain) && RC=0 || RC=$?
	check "ENOENT" eq "$(field errno)" ENOENT
	check "missing" eq "$(field state)" missing

	check "raw disk untouched at the end" eq "$(cat "$DISK")" "raw disk sectors"
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

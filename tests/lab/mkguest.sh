#!/bin/bash
# mkguest.sh OUTDIR: make the lab's guest image from installed Debian packages.
#
# OUTDIR receives
#   vmlinuz      the distro kernel (linux-image-amd64), copied as is
#   initrd.gz    a busybox initramfs (cpio newc, gzip) that is the whole guest
#   inputs       what the image was made from; the image is rebuilt only when
#                this changes (new kernel, busybox, qemu-ga, or this script)
# and prints OUTDIR on success.
#
# The guest reads its settings from the kernel command line:
#   odrs.ip=ADDR/PREFIX  static address of eth0 (without it eth0 stays down)
#   odrs.gw=ADDR         default route (optional)
#   odrs.name=NAME       hostname, and the body of http://IP/ ("hello from NAME")
#   odrs.ballast=MIB     fill a tmpfs with MIB MiB of random data (default 0), so
#                        snapshots are that much larger and do not compress
#   odrs.cache=MIB       read MIB MiB of the disk vda at boot, into the page
#                        cache: memory a snapshot holds unless the cache is
#                        dropped first (default 0)
# It serves HTTP on 80 (busybox httpd), echo on TCP 7 (busybox nc -ll -e cat) and
# UDP 7 (udpecho.c, built static with the host's cc), runs
# qemu-ga on the virtio-serial port org.qemu.guest_agent.0 when present, and
# prints "odrs-guest-ready name=NAME ip=ADDR" on the console (ttyS0) once the
# servers listen.
#
# Environment: KVER picks the kernel version (default: newest in /boot that has
# modules in /lib/modules).
set -eu

out=${1:?usage: mkguest.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${KVER:-}" ]; then
	for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V); do
		v=${k#/boot/vmlinuz-}
		[ -d "/lib/modules/$v/kernel" ] && KVER=$v
	done
fi
[ -n "${KVER:-}" ] || { echo "mkguest: no kernel with modules (install linux-image-amd64)" >&2; exit 1; }
kernel=/boot/vmlinuz-$KVER
moddir=/lib/modules/$KVER/kernel
busybox=$(command -v busybox) || { echo "mkguest: busybox missing (install busybox-static)" >&2; exit 1; }
qga=/usr/sbin/qemu-ga
[ -x "$qga" ] || { echo "mkguest: $qga missing (install qemu-guest-agent)" >&2; exit 1; }

# Load order matters: busybox insmod does not resolve dependencies.
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
failover net_failover virtio_net virtio_balloon virtio_console virtio_blk"

modfiles=
for m in $modules; do
	f=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
	[ -n "$f" ] || { echo "mkguest: module $m not found under $moddir" >&2; exit 1; }
	modfiles="$modfiles $f"
done
# qemu-ga's shared libraries and the dynamic loader, as ldd names them.
libs=$(ldd "$qga" | awk '/=> \//{print $3} /^\t\//{print $1}')

# Anything that changes the image is listed here; a match means the cache is good.
inputs=$( {
	sha256sum "$0" "$(dirname "$0")/udpecho.c" | cut -d' ' -f1
	echo "KVER=$KVER"
	stat -L -c '%n %s %Y' "$kernel" "$busybox" "$qga" $modfiles $libs
} )
if [ -f "$out/inputs" ] && [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ] &&
   [ "$(cat "$out/inputs")" = "$inputs" ]; then
	echo "$out"
	exit 0
fi

# Concurrent builders: one builds, the others find its result.
exec 9>"$out/.lock"
flock 9
if [ -f "$out/inputs" ] && [ "$(cat "$out/inputs")" = "$inputs" ]; then
	echo "$out"
	exit 0
fi

root=$(mktemp -d "$out/.root.XXXXXX")
trap 'rm -rf "$root" "$out/.initrd.tmp" "$out/.vmlinuz.tmp"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,www,modules,lib64,lib/x86_64-linux-gnu}
cp "$busybox" "$root/bin/busybox"
cc -static -O2 -o "$root/usr/bin/udpecho" "$(dirname "$0")/udpecho.c"

for f in $modfiles; do
	m=${f##*/}
	m=${m%%.ko*}
	case $f in
	*.ko.xz)  xz -dc "$f" >"$root/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$root/modules/$m.ko" ;;
	*.ko.gz)  gzip -dc "$f" >"$root/modules/$m.ko" ;;
	*)        cp "$f" "$root/modules/$m.ko" ;;
	esac
done

cp "$qga" "$root/usr/sbin/qemu-ga"
for l in $libs; do
	case $l in
	*/ld-linux*) cp -L "$l" "$root/lib64/${l##*/}" ;;
	*)           cp -L "$l" "$root/lib/x86_64-linux-gnu/${l##*/}" ;;
	esac
done

echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

cat >"$root/init" <<EOF
#!/bin/busybox sh
# odrs lab guest: the whole system is this script plus busybox init.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
exec </dev/console >/dev/console 2>&1

for m in $(echo $modules); do
	insmod /modules/\$m.ko || echo "odrs-guest: insmod \$m failed"
done

IP= GW= NAME=guest BALLAST=0 CACHE=0
for w in \$(cat /proc/cmdline); do
	case \$w in
	odrs.ip=*)      IP=\${w#odrs.ip=} ;;
	odrs.gw=*)      GW=\${w#odrs.gw=} ;;
	odrs.name=*)    NAME=\${w#odrs.name=} ;;
	odrs.ballast=*) BALLAST=\${w#odrs.ballast=} ;;
	odrs.cache=*)   CACHE=\${w#odrs.cache=} ;;
	esac
done
hostname "\$NAME"
echo "NAME=\$NAME IP=\$IP" >/etc/odrs-guest.env
echo "hello from \$NAME" >/www/index.html

ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i + 1)); done
if [ -n "\$IP" ]; then
	ip addr add "\$IP" dev eth0
	ip link set eth0 up
	[ -n "\$GW" ] && ip route add default via "\$GW"
fi

if [ "\$BALLAST" -gt 0 ] 2>/dev/null; then
	mkdir -p /ballast
	mount -t tmpfs -o size=\$((BALLAST + 1))m ballast /ballast
	dd if=/dev/urandom of=/ballast/fill bs=1M count="\$BALLAST" 2>/dev/null
	echo "odrs-guest: ballast \$BALLAST MiB"
fi
if [ "\$CACHE" -gt 0 ] 2>/dev/null; then
	i=0
	while [ ! -b /dev/vda ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i + 1)); done
	# A block device's cache is dropped when its last opener closes it: hold it open.
	sleep 2147483647 </dev/vda &
	dd if=/dev/vda of=/dev/null bs=1M count="\$CACHE" 2>/dev/null
	echo "odrs-guest: page cache \$CACHE MiB"
fi

# Port names arrive from the host shortly after the driver binds.
AGENT=
if ls /sys/bus/virtio/drivers/virtio_console/ 2>/dev/null | grep -q virtio; then
	i=0
	while [ -z "\$AGENT" ] && [ \$i -lt 30 ]; do
		for p in /sys/class/virtio-ports/*; do
			[ "\$(cat \$p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && AGENT=/dev/\${p##*/}
		done
		[ -n "\$AGENT" ] || sleep 0.1
		i=\$((i + 1))
	done
fi
echo "AGENT=\$AGENT" >>/etc/odrs-guest.env
echo "odrs-guest: agent port \${AGENT:-none}"

exec /bin/busybox init
EOF
chmod 755 "$root/init"

# busybox init reaps orphans and restarts the servers should one die. The
# servers start through their applet links so that their process names
# (/proc/PID/comm) are "httpd" and "nc", as a protect list would name them.
cat >"$root/etc/inittab" <<'EOF'
::respawn:/usr/sbin/httpd -f -p 80 -h /www
::respawn:/usr/bin/nc -ll -p 7 -e /bin/cat
::respawn:/usr/bin/udpecho 7
::respawn:/etc/agent
::once:/etc/ready
EOF

cat >"$root/etc/agent" <<'EOF'
#!/bin/sh
. /etc/odrs-guest.env
[ -n "$AGENT" ] || exec sleep 2147483647
mkdir -p /run/qemu-ga
exec /usr/sbin/qemu-ga -m virtio-serial -p "$AGENT" -t /run/qemu-ga
EOF

cat >"$root/etc/ready" <<'EOF'
#!/bin/sh
. /etc/odrs-guest.env
while :; do
	l=$(netstat -ltn 2>/dev/null)
	case $l in *:80\ *) case $l in *:7\ *) break ;; esac ;; esac
	sleep 0.1
done
until netstat -lun 2>/dev/null | grep -q ':7 '; do sleep 0.1; done
# Ready means the agent answers too, when the domain has its channel.
while [ -n "$AGENT" ] && [ ! -e /run/qemu-ga/qga.state ]; do sleep 0.1; done
echo "odrs-guest-ready name=$NAME ip=${IP%/*}"
EOF
chmod 755 "$root/etc/agent" "$root/etc/ready"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$out/.initrd.tmp"
cp "$kernel" "$out/.vmlinuz.tmp"
mv "$out/.initrd.tmp" "$out/initrd.gz"
mv "$out/.vmlinuz.tmp" "$out/vmlinuz"
echo "$inputs" >"$out/inputs"
echo "$out"

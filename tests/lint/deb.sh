#!/bin/bash
# make deb, then the packages as an operator gets them: lintian reports no
# error or warning; dpkg installs them; the installed odrsd accepts the
# installed /etc/odrs/odrs.conf; every file is where odrsd(8), odrs.conf(5),
# libwake(3) and the unit say; systemd-analyze verify passes on the
# installed unit; an upgrade keeps an edited conffile, the state and the log;
# remove keeps the conffile, purge leaves nothing (a listing
# of /etc, /usr and /var compared) and never touches the snapshot directory.
# dpkg runs in a mount namespace of its own, over overlays of /etc, /usr,
# /var and /srv: the machine's packages, and its dpkg lock, are not touched.
# The packages are built under a temporary B: the tree's build/ stays as it
# is. Needs root. Exit 0 pass, 1 fail.
cd "$(dirname "$0")/../.." || exit 1
set -u
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (for dpkg in a mount namespace): run it as make check does"

version=$(sed -n 's/^VERSION *:= *//p' Makefile)
changelog=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ "$version" = "$changelog" ] || fail "Makefile's VERSION $version, debian/changelog's $changelog"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
tree_bins=$(ls -l --time-style=+%s.%N build/odrsd build/odrsctl build/libwake.a 2>/dev/null)
make -s B="$tmp/b" deb >"$tmp/make.log" 2>&1 || fail "make deb: $(tail -n 30 "$tmp/make.log")"
[ "$(ls -l --time-style=+%s.%N build/odrsd build/odrsctl build/libwake.a 2>/dev/null)" = "$tree_bins" ] ||
	fail "make deb changed the tree's build/"
debs=("$tmp/b/odrs_${version}_amd64.deb" "$tmp/b/libwake-dev_${version}_amd64.deb")
for d in "${debs[@]}"; do [ -f "$d" ] || fail "make deb made no ${d##*/}: $(ls "$tmp/b")"; done

# Errors and warnings both: each warning is fixed, or overridden in debian/ with its reason.
lintian "${debs[@]}" >"$tmp/lintian.log" 2>&1
grep -E '^[EW]: ' "$tmp/lintian.log" && fail "lintian"

# Inside the namespace: install, check, remove, purge. Its output is the verdict.
cat >"$tmp/inside.sh" <<'EOF'
set -u
fail() { echo "FAIL: $*"; exit 1; }
tmp=$1 version=$2
for d in etc usr var srv; do
	mkdir -p "$tmp/ov/$d/up" "$tmp/ov/$d/work" "/$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/ov/$d/up,workdir=$tmp/ov/$d/work" "/$d" ||
		fail "overlay on /$d"
done
# What install and purge may change besides odrs's files: dpkg's and the
# caches' own records, and addgroup's backups (the odrs group stays, as
# Debian leaves system groups).
listing() {
	find /etc /usr /var /srv -xdev \( -path /var/lib/dpkg -o -path /var/cache -o -path /var/log/dpkg.log \
		-o -path /var/log/apt -o -path /etc/group- -o -path /etc/gshadow- -o -path /var/lib/systemd/deb-systemd-helper-enabled \) \
		-prune -o -print | sort
}
# A machine without odrs (this one may have run odrsd from the tree).
rm -rf /etc/odrs /var/lib/odrs /var/log/odrs /srv/odrs
listing >"$tmp/before"
mkdir -p /srv/odrs/snap && echo image >/srv/odrs/snap/web1.odrs-save

dpkg -i "$tmp/b/odrs_${version}_amd64.deb" "$tmp/b/libwake-dev_${version}_amd64.deb" >"$tmp/dpkg.log" 2>&1 ||
	fail "dpkg -i: $(cat "$tmp/dpkg.log")"
for f in /usr/sbin/odrsd /usr/bin/odrsctl /etc/odrs/odrs.conf /etc/logrotate.d/odrs \
	/lib/systemd/system/odrsd.service /usr/share/doc/odrs/examples/odrsd-probe-ssh.conf \
	/usr/include/wake.h /usr/include/wake/config.h; do
	[ -f "$f" ] || fail "not installed: $f"
done
for d in /var/lib/odrs /var/log/odrs; do [ -d "$d" ] || fail "no directory $d"; done
for p in odrsd.8 odrsctl.8 odrs.conf.5 libwake.3; do
	man -w "${p%.*}" "${p##*.}" 2>/dev/null | grep -q "/usr/share/man/man${p##*.}/$p" || fail "man ${p##*.} ${p%.*}: not installed"
done
dpkg-query -W -f='${Conffiles}\n' odrs | grep -q '^ /etc/odrs/odrs.conf ' || fail "/etc/odrs/odrs.conf is not a conffile"
dpkg-query -W -f='${Conffiles}\n' odrs | grep -q '^ /etc/logrotate.d/odrs ' || fail "/etc/logrotate.d/odrs is not a conffile"
getent group odrs >/dev/null || fail "no group odrs (the control socket's)"
# The paths the configuration's defaults, the unit and the man pages name are those installed.
grep -q '^ExecStart=/usr/sbin/odrsd ' /lib/systemd/system/odrsd.service || fail "the unit's ExecStart is not /usr/sbin/odrsd"
grep -q '^ExecReload=/usr/bin/odrsctl ' /lib/systemd/system/odrsd.service || fail "the unit's ExecReload is not /usr/bin/odrsctl"
! grep -n /usr/local/ /lib/systemd/system/odrsd.service || fail "the installed unit names /usr/local"
out=$(/usr/sbin/odrsd -t 2>&1) || fail "odrsd -t on the installed /etc/odrs/odrs.conf: $out"
echo "odrsd -t: $out"
/usr/bin/odrsctl -V | grep -q "^odrsctl $version" || fail "odrsctl -V: $(/usr/bin/odrsctl -V 2>&1)"
[ "$(pkg-config --modversion libwake)" = "$version" ] || fail "pkg-config libwake: $(pkg-config --modversion libwake 2>&1)"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify /lib/systemd/system/odrsd.service 2>&1)
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
fi
out=$(logrotate -d -s "$tmp/logrotate.state" /etc/logrotate.d/odrs 2>&1 | grep -iE 'error|unknown|bad ')
[ -z "$out" ] || fail "logrotate -d: $out"
# Installed disabled: nothing starts before the operator configures and enables it.
[ -z "$(find /etc/systemd/system -name odrsd.service 2>/dev/null)" ] || fail "odrsd.service enabled on install"

# What a running odrsd leaves (its lock and pins, the event log), and an operator's edit.
echo 4242 >/var/lib/odrs/odrsd.lock && echo '{}' >/var/lib/odrs/web1.json
echo '{"event":"wake_done"}' >/var/log/odrs/events.jsonl
echo '# edited' >>/etc/odrs/odrs.conf
# An upgrade (the same version again): the edit and odrsd's files are kept, without a question.
dpkg -i "$tmp/b/odrs_${version}_amd64.deb" </dev/null >>"$tmp/dpkg.log" 2>&1 || fail "dpkg -i again: $(tail -n 20 "$tmp/dpkg.log")"
tail -n 1 /etc/odrs/odrs.conf | grep -qx '# edited' || fail "the upgrade replaced the edited conffile"
[ -s /var/log/odrs/events.jsonl ] && [ -s /var/lib/odrs/web1.json ] || fail "the upgrade lost the event log or the state"
dpkg -r odrs libwake-dev >>"$tmp/dpkg.log" 2>&1 || fail "dpkg -r: $(tail -n 20 "$tmp/dpkg.log")"
[ ! -e /usr/sbin/odrsd ] && [ ! -e /usr/include/wake.h ] || fail "dpkg -r left the programs or headers"
tail -n 1 /etc/odrs/odrs.conf | grep -qx '# edited' || fail "dpkg -r did not keep the edited conffile"
dpkg -P odrs libwake-dev >>"$tmp/dpkg.log" 2>&1 || fail "dpkg -P: $(tail -n 20 "$tmp/dpkg.log")"
[ "$(cat /srv/odrs/snap/web1.odrs-save)" = image ] || fail "purge touched the snapshot directory"
rm -r /srv/odrs
listing >"$tmp/after"
left=$(diff "$tmp/before" "$tmp/after")
[ -z "$left" ] || fail "install and purge changed the file system: $left"
echo inside-ok
EOF
out=$(unshare -m --propagation private bash "$tmp/inside.sh" "$tmp" "$version" 2>&1)
printf '%s\n' "$out"
[ "$(tail -n 1 <<<"$out")" = inside-ok ] || fail "in the namespace (above)"
echo "ok"

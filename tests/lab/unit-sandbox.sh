#!/bin/bash
# odrsd (or SANDBOX_CMD) run the way examples/odrsd.service confines it, for
# the lab, which has no systemd as PID 1: LAB_ODRSD=tests/lab/unit-sandbox.sh.
# Each directive below is applied when the unit has it, as systemd does:
#   CapabilityBoundingSet=   setpriv --bounding-set: all uid 0 gets
#   NoNewPrivileges=yes      setpriv --no-new-privs
#   ProtectSystem=strict     every mount read-only but /dev, /proc, /sys and
#                            SANDBOX_RW, the lab's stand-ins for ReadWritePaths=
#                            (its snapshot_dir, event log, state and socket)
#   ProtectHome=yes          /root, /home and /run/user empty and inaccessible
#   PrivateTmp=yes           /tmp and /var/tmp fresh
#   ProtectKernelTunables=, ProtectControlGroups=   /proc/sys and /sys read-only
#   ProtectKernelLogs=yes    /proc/kmsg and /dev/kmsg inaccessible
#   ProtectHostname=yes      a UTS namespace of its own
#   RestrictAddressFamilies= build/restrict_af: a seccomp filter on socket(2)
# Not reproduced: the other seccomp filters (RestrictRealtime=, RestrictSUIDSGID=,
# LockPersonality=, and those of ProtectKernelLogs= and ProtectHostname= against
# syslog(2) and sethostname(2): odrsd makes none of the calls they refuse) and
# ProtectKernelModules= (CAP_SYS_MODULE is out of the bounding set anyway).
# SANDBOX_CAPS and SANDBOX_AF replace the unit's bounding set and address
# families (a test's negative controls);
# SANDBOX_GROUP is bound over /etc/group (a group odrs for the socket's chown).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
unit=${SANDBOX_UNIT:-$root/examples/odrsd.service}
directive() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
die() { echo "unit-sandbox: $*" >&2; exit 1; }

if [ "${1:-}" != --inside ]; then
	uts=()
	[ "$(directive ProtectHostname)" = yes ] && uts=(--uts)
	exec unshare -m --propagation private "${uts[@]}" "$0" --inside "$@"
fi
shift
rw=(${SANDBOX_RW:-})
is_rw() { local p; for p in "${rw[@]}"; do [ "$1" = "$p" ] && return 0; done; return 1; }

if [ "$(directive PrivateTmp)" = yes ]; then
	# A tree checked out under /tmp (a CI clone) stays in reach, as the installed
	# binary in /usr would: held outside, bound back into the fresh /tmp.
	hold=
	case $root in /tmp/* | /var/tmp/*)
		hold=$(mktemp -d /run/odrs-sandbox.XXXXXX) && mount --bind "$root" "$hold" || die "PrivateTmp: hold $root" ;;
	esac
	for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$d" || die "PrivateTmp: $d"; rw+=("$d"); done
	if [ -n "$hold" ]; then
		mkdir -p "$root" && mount --bind "$hold" "$root" && umount "$hold" && rmdir "$hold" ||
			die "PrivateTmp: bind $root back"
	fi
fi
if [ "$(directive ProtectHome)" = yes ]; then
	for d in /root /home /run/user; do
		[ -d "$d" ] && { mount -t tmpfs -o mode=000 tmpfs "$d" || die "ProtectHome: $d"; }
	done
fi
if [ "$(directive ProtectKernelLogs)" = yes ]; then
	# Bound over them, a mode 000 file (its name removed at once): nothing but
	# CAP_DAC_OVERRIDE, which the bounding set leaves out, opens it.
	blank=$(mktemp) && chmod 000 "$blank" || die "ProtectKernelLogs"
	for f in /proc/kmsg /dev/kmsg; do
		[ -e "$f" ] || continue
		mount --bind "$blank" "$f" || { rm -f "$blank"; die "ProtectKernelLogs: $f"; }
	done
	rm -f "$blank"
fi
[ -n "${SANDBOX_GROUP:-}" ] && { mount --bind "$SANDBOX_GROUP" /etc/group || die "SANDBOX_GROUP"; }
# Recursive: a tree bound back into /tmp (PrivateTmp above) stays under it.
for p in "${rw[@]}"; do mount --rbind "$p" "$p" || die "bind $p"; done
ro_under() { # PREFIX...: remount read-only every mount at or below them, but the writable ones
	local t
	while read -r t; do
		[ -e "$t" ] || continue # mounted over: out of reach already
		for p in "$@"; do
			[ "$p" = / ] || [ "$t" = "$p" ] || [[ $t == "$p"/* ]] || continue
			case $t in /proc | /proc/* | /dev | /dev/* | /sys | /sys/*) [ "$p" = / ] && continue ;; esac
			is_rw "$t" || mount -o remount,bind,ro "$t" || die "read-only $t"
			break
		done
	done < <(findmnt -rn -o TARGET)
}
[ "$(directive ProtectSystem)" = strict ] && ro_under /
if [ "$(directive ProtectKernelTunables)" = yes ]; then
	mount --bind /proc/sys /proc/sys || die "ProtectKernelTunables"
	ro_under /proc/sys /sys
fi
[ "$(directive ProtectControlGroups)" = yes ] && ro_under /sys/fs/cgroup

caps=${SANDBOX_CAPS-$(directive CapabilityBoundingSet)}
bounding=-all
for c in $caps; do c=${c#CAP_}; bounding+=,+${c,,}; done
opts=(--bounding-set="$bounding")
[ "$(directive NoNewPrivileges)" = yes ] && opts+=(--no-new-privs)
seccomp=()
af=${SANDBOX_AF-$(directive RestrictAddressFamilies)}
if [ -n "$af" ]; then
	[ -x "$root/build/restrict_af" ] || die "no build/restrict_af (make build/restrict_af)"
	seccomp=("$root/build/restrict_af" "${af// /,}")
fi
# shellcheck disable=SC2206 # a command line, split like the unit's ExecStart=
cmd=(${SANDBOX_CMD:-$root/build/odrsd})
exec "${seccomp[@]}" setpriv "${opts[@]}" -- "${cmd[@]}" "$@"

#!/bin/bash
# examples/odrsd.service passes systemd-analyze verify, alone and with the
# drop-in examples/odrsd-probe-ssh.conf, reloads through
# odrsctl and waits for the snapshot_dir's mount; examples/odrs.logrotate
# passes logrotate's own check and has a maxsize. Exit 0 clean, 1 not.
cd "$(dirname "$0")/../.." || exit 1
fail=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart to exist and Documentation= pages to be
	# installed: check a copy that runs an existing binary, with our man
	# pages on MANPATH.
	for p in man/*.[1-8]; do
		mkdir -p "$tmp/man/man${p##*.}"
		cp "$p" "$tmp/man/man${p##*.}/"
	done
	sed -e 's|^ExecStart=/usr/local/sbin/odrsd |ExecStart=/bin/true |' \
		-e 's|^ExecReload=/usr/local/bin/odrsctl |ExecReload=/bin/true |' examples/odrsd.service >"$tmp/odrsd.service"
	grep -q '^ExecStart=/bin/true ' "$tmp/odrsd.service" || { echo "lint-unit: no ExecStart=/usr/local/sbin/odrsd"; fail=1; }
	grep -q '^ExecReload=/bin/true ' "$tmp/odrsd.service" || { echo "lint-unit: no ExecReload=/usr/local/bin/odrsctl"; fail=1; }
	grep -q '^RequiresMountsFor=' examples/odrsd.service || { echo "lint-unit: no RequiresMountsFor= (the snapshot_dir)"; fail=1; }
	out=$(MANPATH=$tmp/man systemd-analyze verify "$tmp/odrsd.service" 2>&1)
	[ -z "$out" ] || { printf 'examples/odrsd.service: %s\n' "$out"; fail=1; }
	# The drop-in odrs.conf(5) gives for probe = ssh, over the same unit.
	mkdir -p "$tmp/units/odrsd.service.d"
	cp "$tmp/odrsd.service" "$tmp/units/"
	cp examples/odrsd-probe-ssh.conf "$tmp/units/odrsd.service.d/"
	out=$(MANPATH=$tmp/man SYSTEMD_UNIT_PATH=$tmp/units: systemd-analyze verify "$tmp/units/odrsd.service" 2>&1)
	[ -z "$out" ] || { printf 'examples/odrsd-probe-ssh.conf: %s\n' "$out"; fail=1; }
else
	echo "lint-unit: systemd-analyze is missing"; fail=1
fi

if command -v logrotate >/dev/null; then
	out=$(logrotate -d -s "$tmp/state" examples/odrs.logrotate 2>&1 | grep -iE 'error|unknown|bad ')
	[ -z "$out" ] || { printf 'examples/odrs.logrotate: %s\n' "$out"; fail=1; }
	grep -Eq '^[[:space:]]*maxsize ' examples/odrs.logrotate || { echo "lint-unit: examples/odrs.logrotate has no maxsize"; fail=1; }
else
	echo "lint-unit: logrotate is missing"; fail=1
fi
exit $fail

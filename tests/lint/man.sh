#!/bin/bash
# The man pages lint clean with groff and mandoc, their references to odrs
# pages resolve within man/, and they document every odrsctl verb and every
# event odrsctl knows. Exit 0 clean, 1 not.
cd "$(dirname "$0")/../.." || exit 1
fail=0
pages=(man/*.[1-8])

for p in "${pages[@]}"; do
	out=$(groff -mandoc -ww -z "$p" 2>&1)
	[ -z "$out" ] || { printf '%s\n' "$out"; fail=1; }
done

if ! command -v mandoc >/dev/null; then
	echo "lint-man: mandoc is not installed (make deps)"; exit 1
fi
# mandoc looks references up among the installed pages: ours are not
# installed, and pages of other packages depend on what docs the machine
# has, so a missing reference is an error only for an odrs page absent from man/.
while IFS= read -r msg; do
	if [[ $msg =~ referenced\ manual\ not\ found:\ Xr\ ([^ ]+)\ ([0-9]) ]]; then
		name=${BASH_REMATCH[1]} sec=${BASH_REMATCH[2]}
		case $name in
		odrs*|libwake) [ -f "man/$name.$sec" ] && continue
			msg="$msg (no man/$name.$sec)" ;;
		*) continue ;;
		esac
	fi
	printf '%s\n' "$msg"; fail=1
done < <(mandoc -T lint -W style "${pages[@]}" 2>&1 | grep -v 'outdated mandoc.db')

# Every verb of odrsctl and every event it formats are documented.
for verb in $(sed -n 's/^[[:space:]]*{ "\([a-z]*\)", *cmd_.*/\1/p' tools/odrsctl/main.c); do
	grep -Eq "^\.(It )?Cm $verb( |$)" man/odrsctl.8 || { echo "man/odrsctl.8: verb $verb undocumented"; fail=1; }
done
for event in $(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)", *{.*/\1/p' tools/odrsctl/events.c); do
	grep -q "^\.It Cm $event Ta" man/odrsd.8 || { echo "man/odrsd.8: event $event not in the events table"; fail=1; }
done
exit $fail

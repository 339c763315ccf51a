#!/bin/bash
# odrsd and odrsctl: -h and --help print the usage on stdout and exit 0,
# an unknown option prints it on stderr and exits 2, and every option the
# man page lists (.It Fl X) is in the usage. Exit 0 clean, 1 not.
cd "$(dirname "$0")/../.." || exit 1
fail=0
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
for prog in odrsd odrsctl; do
	bin=build/$prog
	[ -x "$bin" ] || { echo "lint-help: no $bin (make all)"; exit 1; }
	for opt in -h --help; do
		out=$("$bin" "$opt" 2>"$tmp"); rc=$?
		err=$(cat "$tmp")
		[ "$rc" = 0 ] || { echo "lint-help: $prog $opt: exit $rc, want 0"; fail=1; }
		[ -z "$err" ] || { echo "lint-help: $prog $opt wrote to stderr: $err"; fail=1; }
		grep -q "^usage: $prog " <<<"$out" || { echo "lint-help: $prog $opt: no usage on stdout"; fail=1; }
	done
	out=$("$bin" --no-such-option 2>&1 >/dev/null); rc=$?
	[ "$rc" = 2 ] || { echo "lint-help: $prog --no-such-option: exit $rc, want 2"; fail=1; }
	grep -q "usage: $prog " <<<"$out" || { echo "lint-help: $prog --no-such-option: no usage on stderr"; fail=1; }
	# The options of the man page's option list, before its first command or section.
	usage=$("$bin" --help 2>/dev/null)
	for o in $(sed -n '/^The options are:/,/^\.El/s/^\.It Fl \([A-Za-z]\).*/\1/p' "man/$prog.8"); do
		grep -q -- "-$o\b" <<<"$usage" || { echo "lint-help: $prog --help lacks -$o of man/$prog.8"; fail=1; }
	done
done
exit $fail

#!/bin/bash
# Run each libFuzzer target for SECONDS over its committed seed corpus
# (tests/fuzz/corpus/NAME), and first over every regression input
# (tests/fuzz/regress/NAME): inputs that once crashed stay tested.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
secs=$1; shift
for f in "$@"; do
	name=${f##*/}
	seeds=tests/fuzz/corpus/$name regress=tests/fuzz/regress/$name
	work=build/fuzz/work-$name
	rm -rf "$work"; mkdir -p "$work"
	rc=0
	if [ -d "$regress" ] && [ -n "$(ls "$regress")" ]; then
		"$f" -runs=0 "$regress"/* > "$work.log" 2>&1 || rc=$?
	fi
	if [ $rc = 0 ]; then
		"$f" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
			-artifact_prefix="$work/" "$work" "$seeds" >> "$work.log" 2>&1 || rc=$?
	fi
	grep -E 'stat::number_of_executed_units|^Done' "$work.log" | tail -1 | sed "s/^/$name: /"
	[ $rc = 0 ] || tail -40 "$work.log"
	t_result "fuzz/$name" $rc
done
t_summary

#!/bin/bash
# make check: unit tests (ASan/UBSan), fuzzers, lints, then the lab's
# end-to-end tests with real VMs. One line per test, a summary at the end;
# under CI=true a skipped test is a failure.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
LOGS=build/check-logs
mkdir -p "$LOGS"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
SECTIONS=${*:-unit fuzz lint lab}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

run() { # NAME CMD...: run, keep the log, show its tail on failure
	local name=$1 log=$LOGS/${1//\//_}.log rc start=$SECONDS
	shift
	"$@" > "$log" 2>&1
	rc=$?
	grep -E '^\[  (PASSED|FAILED)  \]|stat::number_of_executed_units' "$log" | sed 's/^/    /'
	[ $rc = 0 ] || [ $rc = 77 ] || tail -n 40 "$log" | sed 's/^/    | /'
	t_result "$name ($((SECONDS - start))s)" $rc
}

if want unit; then
echo "== unit tests"
make -s $(ls tests/unit/test_*.c | sed 's|tests/unit/\(.*\)\.c|build/tests/\1|') || exit 1
for t in build/tests/test_*; do run "unit/${t##*/}" "$t"; done
fi

if want fuzz; then
echo "== fuzzers (${FUZZ_SECONDS}s each)"
make -s $(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/\(.*\)\.c|build/fuzz/\1|') || exit 1
for f in build/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	run "fuzz/${f##*/}" tests/run-fuzz.sh "$FUZZ_SECONDS" "$f"
done
fi

if want lint; then
echo "== lint"
for t in tests/lint/*.sh; do run "lint/$(basename "$t" .sh)" "$t"; done
fi

if want lab; then
echo "== lab (real VMs)"
for t in tests/virt/test_*.sh tests/lab/test_*.sh; do
	[ -x "$t" ] || continue
	run "lab/$(basename "$t" .sh)" "$t"
done
fi

t_summary

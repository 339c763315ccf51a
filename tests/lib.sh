# Shared by the test runners: one result line per test, a closing summary.
# A test that cannot run (missing prerequisite) is a skip; under CI=true a
# skip counts as a failure.
T_PASS=0 T_FAIL=0 T_SKIP=0 T_FAILED=
t_result() { # NAME RC  (rc 0 pass, 77 skip, else fail)
	case $2 in
	0)  T_PASS=$((T_PASS + 1)); echo "PASS: $1" ;;
	77) if [ "${CI:-}" = true ]; then
		T_FAIL=$((T_FAIL + 1)); T_FAILED="$T_FAILED $1"; echo "FAIL: $1 (skipped, and CI=true forbids skips)"
	    else
		T_SKIP=$((T_SKIP + 1)); echo "SKIP: $1"
	    fi ;;
	*)  T_FAIL=$((T_FAIL + 1)); T_FAILED="$T_FAILED $1"; echo "FAIL: $1 (exit $2)" ;;
	esac
}
t_summary() { # prints the closing line; returns non-zero on any failure
	[ -n "$T_FAILED" ] && echo "failed:$T_FAILED"
	echo "$T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" = 0 ]
}

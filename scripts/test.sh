#!/bin/sh
# Install what is missing, build, and run the whole test suite:
#   1. make check on a normal build (unit, fixture and real-process tests),
#   2. the unit and fixture tests under valgrind,
#   3. make check again on an ASan+UBSan build,
#   4. every libFuzzer target (fuzz/) for a short time on a clang build
#      (HVPEER_FUZZ_SECONDS each, default 20; 0 skips the stage).
# Warnings are errors in every build.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"

# Print the logs of the tests that failed in one build (the tail of each).
failed_logs() {
	for t in "$1"/tests/*/*.trs; do
		[ -f "$t" ] || continue
		grep -q '^:test-result: \(FAIL\|ERROR\)' "$t" || continue
		echo "==== ${t%.trs}.log (last 150 lines)"
		tail -n 150 "${t%.trs}.log"
	done
}

# Add up the test cases of one build's logs: cmocka's summary lines and the
# real-process tests' "N passed, M failed" lines.
count() {
	for f in "$1"/tests/*/*.log; do
		[ -f "$f" ] || continue
		case "$f" in *.valgrind.log) continue ;; esac
		grep -E '^\[  (PASSED|FAILED)  \] [0-9]+ test|^[0-9]+ passed, [0-9]+ failed' "$f" |
			sed -n '$p'
	done | awk '
		/PASSED/ { p += $4 } /FAILED/ { f += $4 }
		/passed,/ { p += $1; f += $3 }
		END { printf "%d %d\n", p, f }'
}

echo "== clang-format (.clang-format)"
(cd "$top" && clang-format --dry-run --Werror consensus/*.[ch] node/*.[ch] migrate/*.[ch] patchfsm/*.[ch] bmc/*.[ch] \
	lib/*.[ch] bench/*.c tests/unit/*.c tests/sim/*.c fuzz/*.[ch]) || {
	echo "clang-format: run 'clang-format -i' on the files above"
	exit 1
}

echo "== build and test (normal build)"
"$top/scripts/build.sh" "$top/build"
make -C "$top/build" check || { failed_logs "$top/build"; exit 1; }

echo "== unit and fixture tests under valgrind"
for t in tests/unit/test_codec tests/unit/test_state tests/unit/test_placement tests/unit/test_maint tests/unit/test_inventory tests/unit/test_cycle tests/unit/test_bundle tests/unit/test_bootbank tests/unit/test_rollout tests/unit/test_window tests/unit/test_hcl tests/unit/test_bmc_creds tests/unit/test_redfish tests/unit/test_transport tests/unit/test_metrics tests/sim/test_fixture; do
	"$top/build/libtool" --mode=execute valgrind -q --leak-check=full \
		--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=1 "$top/build/$t" >"$top/build/$t.valgrind.log" 2>&1 ||
		{ tail -n 60 "$top/build/$t.valgrind.log"; echo "valgrind: $t failed"; exit 1; }
	echo "valgrind: $t clean"
done

echo "== build and test (AddressSanitizer + UndefinedBehaviorSanitizer)"
"$top/scripts/build.sh" "$top/build-asan" --enable-sanitize
# The simulation runs seeds 1-10000 in the normal build (about 90 s on two
# cores); under ASan a seed costs 6 times as much: the first 2500 there.
HV_SIM_SEEDS=${HV_SIM_SEEDS_ASAN:-1-2500} make -C "$top/build-asan" check ||
	{ failed_logs "$top/build-asan"; exit 1; }

fuzz_secs=${HVPEER_FUZZ_SECONDS:-20}
if [ "$fuzz_secs" -gt 0 ]; then
	echo "== fuzzing (libFuzzer + ASan + UBSan, clang; ${fuzz_secs} s per target)"
	fuzz_start=$(date +%s)
	CC=clang "$top/scripts/build.sh" "$top/build-fuzz" --enable-fuzzing
	"$top/fuzz/run.sh" "$top/build-fuzz" "$fuzz_secs" || {
		echo "fuzz: a target failed: keep its input in fuzz/regressions/NAME once fixed (docs/architecture.md, Fuzzing)"
		exit 1
	}
	echo "fuzz: stage took $(($(date +%s) - fuzz_start)) s"
fi

set -- $(count "$top/build") $(count "$top/build-asan")
echo "== test cases: normal build $1 passed, $2 failed; ASan+UBSan build $3 passed, $4 failed"
echo "$(($1 + $3)) passed, $(($2 + $4)) failed"

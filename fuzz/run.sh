#!/bin/sh
# Run every libFuzzer target of a build made with --enable-fuzzing for a
# bounded time each:
#   fuzz/run.sh BUILDDIR SECONDS [TARGET...]
# Each target starts from fuzz/corpus/NAME and fuzz/regressions/NAME; what it
# learns goes to BUILDDIR/fuzz-run/NAME (the source tree is not written).
# One line per target says ok or FAILED; the inputs of a failure are copied
# to BUILDDIR/fuzz-crashes/NAME (printed). Exits 1 if any target failed.
# FUZZ_JOBS targets run at once (default: the number of CPUs).
set -eu
[ $# -ge 2 ] || { echo "usage: fuzz/run.sh BUILDDIR SECONDS [TARGET...]" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
secs=$2
shift 2
[ $# -gt 0 ] || set -- codec snapshot rpc config manifest redfish ipmi_sdr bmc_creds
jobs=${FUZZ_JOBS:-$(nproc)}

# The largest input worth trying: what the decoder's caller lets through
# (or a few times a big valid input where the limit is far larger).
max_len() {
	case $1 in
	codec) echo 16392 ;;    # HV_CMD_MAX and padding
	snapshot) echo 65536 ;; # a busy cluster's state is a few KiB
	rpc) echo 16384 ;;
	config) echo 8192 ;;
	manifest) echo 32768 ;;
	redfish) echo 16384 ;;
	ipmi_sdr) echo 261 ;; # IPMI_SDR_MAX_RECORD_LENGTH
	bmc_creds) echo 4096 ;;
	*) echo 4096 ;;
	esac
}

# Run one target; writes its verdict to $run/verdict.
fuzz_one() {
	t=$1
	bin=$build/fuzz/fuzz_$t
	run=$build/fuzz-run/$t
	crashes=$build/fuzz-crashes/$t
	mkdir -p "$run/corpus" "$run/artifacts"
	rm -f "$run/artifacts/"* "$run/verdict"
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: FAILED: $bin missing (configure with --enable-fuzzing)" >"$run/verdict"
		return
	fi
	dirs="$run/corpus $top/fuzz/corpus/$t"
	[ -d "$top/fuzz/regressions/$t" ] && dirs="$dirs $top/fuzz/regressions/$t"
	rc=0
	# shellcheck disable=SC2086
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		timeout -k 10 "$((secs + 60))" "$bin" -max_total_time="$secs" \
		-max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$run/artifacts/" $dirs \
		>"$run/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -n 1)
	if [ "$rc" = 0 ]; then
		echo "fuzz $t: ok (${execs:-?} runs in ${secs} s, corpus $(ls "$run/corpus" | wc -l) new)" >"$run/verdict"
		return
	fi
	mkdir -p "$crashes"
	cp "$run/artifacts/"* "$crashes/" 2>/dev/null || true
	cp "$run/log" "$crashes/log"
	why=$(grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed|.*runtime error)' "$run/log" || true)
	[ "$rc" = 124 ] && why="hung past ${secs} s + 60 s"
	echo "fuzz $t: FAILED (exit $rc): ${why:-see the log}; inputs and log in $crashes" >"$run/verdict"
}

pids=
n=0
for t in "$@"; do
	fuzz_one "$t" &
	pids="$pids $!"
	n=$((n + 1))
	if [ "$n" -ge "$jobs" ]; then
		wait $pids
		pids=
		n=0
	fi
done
wait $pids

status=0
for t in "$@"; do
	cat "$build/fuzz-run/$t/verdict"
	grep -q ': ok ' "$build/fuzz-run/$t/verdict" || status=1
done
exit $status

# Shared by tests/bmc/ipmi-sim.sh and tests/bmc/redfish.sh (sourced): TAP-like
# checks and a bounded poll. After sourcing: n/passed/failed, check, wait_for,
# tap_done (prints "N passed, M failed"; its status is the test's).

n=0 passed=0 failed=0
check() { # description, then a command
	local what=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $what"
		passed=$((passed + 1))
	else
		echo "not ok $n - $what"
		failed=$((failed + 1))
	fi
}

# Poll a command every 0.1 s for at most $1 tenths of a second.
wait_for() {
	local tenths=$1 i=0
	shift
	while [ $i -lt "$tenths" ]; do
		"$@" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

tap_done() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}

# Shared by the tests/e2e scripts that start daemons (sourced first, after
# set -u): the build's binaries, TAP helpers, the daemons' bookkeeping and
# cleanup, and free ports. After sourcing: BUILDDIR, HVPEERD, HVPEER (the
# CLI), check, wait_for (tenths of a second) and tap_done (tests/bmc/tap.sh),
# ok, nok, PID and PORT (arrays by node name), e2e_dir PREFIX (sets T and
# the EXIT trap), e2e_ports NAME... Exit 99 without the binaries, 77
# without python3.

BUILDDIR=${HVPEER_BUILDDIR:-.}
HVPEERD=$BUILDDIR/hvpeerd
HVPEER=$BUILDDIR/hvpeer
[ -x "$HVPEERD" ] && [ -x "$HVPEER" ] || { echo "Bail out! no hvpeerd/hvpeer in '$BUILDDIR'"; exit 99; }
command -v python3 >/dev/null || { echo "1..0 # SKIP no python3"; exit 77; }
. "$(dirname "${BASH_SOURCE[0]}")/../bmc/tap.sh"

ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && printf '#   %s\n' "${@:2}"; return 0; }

declare -A PID=() PORT=()

# Stop every daemon still in PID (TERM, at most 5 s, then KILL); on a
# failure print the tail of each log; report sanitizer findings; keep the
# logs in $HVPEER_E2E_KEEP when set; remove $T.
e2e_cleanup() {
	local p
	for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 50); do
		p=0
		for x in "${PID[@]}"; do kill -0 "$x" 2>/dev/null && p=1; done
		[ $p = 0 ] && break
		sleep 0.1
	done
	for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null; done
	if [ "$failed" -gt 0 ]; then
		for f in "$T"/*.log; do echo "# --- $f"; tail -n 25 "$f" | sed 's/^/#   /'; done
	fi
	if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log >/dev/null 2>&1; then
		nok "no sanitizer report in any daemon log"
		grep -hE -A30 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log | head -80 | sed 's/^/#   /'
	fi
	[ -n "${HVPEER_E2E_KEEP:-}" ] && cp "$T"/*.log "$HVPEER_E2E_KEEP"/ 2>/dev/null
	rm -rf "$T"
}

# e2e_dir PREFIX: a fresh temp dir in T, cleaned up at exit; the exit status
# is tap_done's.
e2e_dir() {
	T=$(mktemp -d "/tmp/$1.XXXXXX")
	trap 'e2e_cleanup; tap_done; exit $?' EXIT
}

# e2e_ports NAME...: PORT[NAME] for each, consecutive ports that nothing
# listens on, below the ephemeral range (at most 50 tries).
e2e_ports() {
	local base busy k name
	for _ in $(seq 50); do
		base=$((20000 + RANDOM % 20000))
		busy=0
		for ((k = 0; k < $#; k++)); do
			ss -Htan 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$((base + k))\$" && busy=1
		done
		[ $busy = 0 ] && break
	done
	k=0
	for name in "$@"; do
		PORT[$name]=$((base + k))
		k=$((k + 1))
	done
}

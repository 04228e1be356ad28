#!/usr/bin/env bash
# Standbys at the default max-voters: eight real hvpeerds on 127.0.0.1 (one
# bootstraps, seven join it at once, with no --max-voters: the default 5).
# The cluster has five voters and three standbys; a standby's status is
# the leader's (forwarded: quorum, the same leader and member list); a
# lease grant asked on a standby commits. (tests/e2e/voters.sh covers the
# promotion of a standby when a voter goes down, with --max-voters 3.)
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/standbys.sh
#
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 99 when the
# binaries are missing, 77 without python3.
set -u
. "$(dirname "$0")/lib.sh" # binaries, TAP, PID, PORT, e2e_dir, e2e_ports
e2e_dir hvpstb
NODES=(s1 s2 s3 s4 s5 s6 s7 s8)
e2e_ports "${NODES[@]}"
S1=127.0.0.1:${PORT[s1]}

start() { # NAME ARGS...
	local n=$1
	shift
	"$HVPEERD" --name "$n" --data-dir "$T/$n" --listen "127.0.0.1:${PORT[$n]}" \
		--socket "$T/$n.sock" --log-level "${HVPEER_E2E_LOG:-info}" "$@" \
		</dev/null >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
}
# view NODE: "leader=NAME name:role ..." (sorted by name) from NODE's
# status with quorum; fails without quorum.
view() {
	"$HVPEER" --socket "$T/$1.sock" --timeout 3000 --json status 2>/dev/null |
		python3 -c "
import json, sys
d = json.load(sys.stdin)
d['quorum'] or sys.exit(3)
ms = d['members']
print('leader=' + ''.join(m['name'] for m in ms if m['leader']),
      ' '.join(sorted(m['name'] + ':' + m['role'] for m in ms)))" 2>/dev/null
}
counts() { # NODE: "V voters S standbys M members"
	local v
	v=$(view "$1") || return 1
	echo "$(grep -o ':voter' <<<"$v" | wc -l) voters $(grep -o ':standby' <<<"$v" | wc -l) standbys $(($(wc -w <<<"$v") - 1)) members"
}
formed() { test "$(counts s1)" = "5 voters 3 standbys 8 members"; }

echo "# eight peers, default max-voters"
start s1 --bootstrap
wait_for 100 view s1 >/dev/null
for x in "${NODES[@]:1}"; do start "$x" --join "$S1"; done
if wait_for 600 formed; then
	ok "five voters and three standbys: $(view s1)"
else
	nok "five voters and three standbys" "$(view s1)"
fi

# A standby, by the leader's view.
sb=$(view s1 | tr ' ' '\n' | sed -n 's/:standby$//p' | tail -n 1)
if [ -n "$sb" ]; then
	ok "$sb is a standby"
else
	nok "a standby" "$(view s1)"
	sb=s8
fi
check "status from standby $sb: quorum, the leader's member list" \
	test "$(view "$sb")" = "$(view s1)"
out=$("$HVPEER" --socket "$T/$sb.sock" --timeout 3000 status 2>&1)
check "hvpeer status (text) from standby $sb exits 0 and names a leader" \
	grep -qi 'leader' <<<"$out"
if out=$("$HVPEER" --socket "$T/$sb.sock" --timeout 5000 lease acquire "$sb" 2>&1) &&
	grep -q 'granted' <<<"$out"; then
	ok "a lease grant asked on standby $sb commits"
else
	nok "a lease grant asked on standby $sb commits" "$out"
fi
holders() { # NODE: the lease holders' names in NODE's status
	"$HVPEER" --socket "$T/$1.sock" --timeout 3000 --json status 2>/dev/null |
		python3 -c "import json,sys; print(' '.join(h['name'] for h in json.load(sys.stdin)['lease']['holders']))" 2>/dev/null
}
check "the leader's replica shows $sb holding it" test "$(holders s1)" = "$sb"
if out=$("$HVPEER" --socket "$T/$sb.sock" --timeout 5000 lease release "$sb" 2>&1); then
	ok "released on $sb"
else
	nok "released on $sb" "$out"
fi
alive=0
for x in "${NODES[@]}"; do kill -0 "${PID[$x]}" 2>/dev/null && alive=$((alive + 1)); done
check "all eight daemons still running" test "$alive" = 8

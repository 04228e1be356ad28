#!/usr/bin/env bash
# Voters kept up: four real hvpeerds on 127.0.0.1 with --max-voters 3 (three
# voters and a standby). When a voter goes down (kill -9), the leader
# promotes the standby that is up, then demotes the voter that is down: the
# cluster keeps three voters that are up and survives one more failure. The
# old voter restarted comes back as a standby; a leader killed is replaced
# the same way.
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/voters.sh
#
# Output: "ok N - ..." lines, then "N passed, M failed". Exit 99 when the
# binaries are missing, 77 without python3.
set -u
. "$(dirname "$0")/lib.sh" # binaries, TAP, PID, PORT, e2e_dir, e2e_ports
e2e_dir hvpvot
e2e_ports h1 h2 h3 h4
H1=127.0.0.1:${PORT[h1]}

start() { # NAME ARGS...
	local n=$1
	shift
	echo "=== $(date +%T) start $n $*" >>"$T/$n.log"
	"$HVPEERD" --name "$n" --data-dir "$T/$n" --listen "127.0.0.1:${PORT[$n]}" \
		--socket "$T/$n.sock" --report-interval 300 --max-voters 3 --log-level "${HVPEER_E2E_LOG:-info}" "$@" \
		</dev/null >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
}
kill9() { kill -KILL "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }
# roles NODE: "name:role ..." sorted by name, from NODE's status with quorum.
roles() {
	"$HVPEER" --socket "$T/$1.sock" --timeout 3000 --json status 2>/dev/null |
		python3 -c "import json,sys; d=json.load(sys.stdin); d['quorum'] or sys.exit(3); print(' '.join(sorted(m['name'] + ':' + m['role'] for m in d['members'])))" 2>/dev/null
}
roles_are() { test "$(roles "$1")" = "$2"; }
voters_up() { # NODE DOWN: 3 voters, none of them DOWN, DOWN a standby
	local r
	r=$(roles "$1") || return 1
	python3 - "$r" "$2" <<'PYEOF'
import sys
roles = dict(x.split(':') for x in sys.argv[1].split())
down = sys.argv[2]
voters = [n for n, r in roles.items() if r == 'voter']
sys.exit(0 if len(voters) == 3 and down not in voters and roles.get(down) in ('standby', None) else 1)
PYEOF
}
leader_of() {
	"$HVPEER" --socket "$T/$1.sock" --timeout 3000 --json status 2>/dev/null |
		python3 -c "import json,sys; d=json.load(sys.stdin); print([m['name'] for m in d['members'] if m['leader']][0] if d['quorum'] else '')" 2>/dev/null
}

echo "# four peers, --max-voters 3"
start h1 --bootstrap
start h2 --join "$H1"
start h3 --join "$H1"
wait_for 200 roles_are h1 "h1:voter h2:voter h3:voter"
start h4 --join "$H1"
if wait_for 200 roles_are h1 "h1:voter h2:voter h3:voter h4:standby"; then
	ok "three voters and a standby"
else
	nok "three voters and a standby" "$(roles h1)"
fi

echo "# a voter goes down: the standby is promoted, the voter demoted"
leader=$(leader_of h1)
victim=h2
[ "$leader" = h2 ] && victim=h3
kill9 $victim
if wait_for 300 voters_up h1 $victim; then
	ok "$victim down: three voters up again, $victim a standby: $(roles h1)"
else
	nok "$victim down: three voters up again" "$(roles h1)"
fi
check "the leader said why" grep -q "promoting standby" "$T"/h*.log
if out=$("$HVPEER" --socket "$T/h4.sock" --timeout 5000 pause --reason "still writable" 2>&1); then
	ok "writes still commit (a pause)"
else
	nok "writes still commit (a pause)" "$out"
fi
"$HVPEER" --socket "$T/h4.sock" --timeout 5000 resume >/dev/null 2>&1

echo "# it comes back as a standby"
start $victim
back() {
	local r
	r=$(roles h1) && [[ " $r " == *" $victim:standby "* ]] && test "$(grep -o ':voter' <<<"$r" | wc -l)" = 3
}
if wait_for 200 back; then ok "$victim back: a standby, three voters: $(roles h1)"; else nok "$victim back as a standby" "$(roles h1)"; fi

echo "# the leader goes down: the same, under a new leader"
leader=$(leader_of h1)
[ -n "$leader" ] || leader=h1
kill9 "$leader"
ask=h1
[ "$leader" = h1 ] && ask=h4
[ "$ask" = "$victim" ] && ask=h3
if wait_for 300 voters_up $ask "$leader"; then
	ok "leader $leader down: a new leader, three voters up: $(roles $ask)"
else
	nok "leader $leader down: three voters up" "$(roles $ask)"
fi

#!/usr/bin/env bash
# Local access to a real hvpeerd: the control socket (mode 0660, group
# socket-group) and the read-only socket next to it (mode 0660, group
# readonly-group), used by real users of those groups (runuser).
#  - Both sockets are 0660 and group-owned even when hvpeerd runs under
#    umask 000, and a custom readonly-socket in a new directory too.
#  - A reader runs every reading command (status, report, plan, lease show,
#    policy show, patch status, bmc status) on the read-only socket and
#    through the control socket's path ($HVPEER_SOCKET or --socket: hvpeer
#    falls back), and is refused every write with exit 4, a message naming
#    the command and the socket it needs, a line in hvpeerd's log, and no
#    change to the cluster.
#  - A user in neither group, and a reader where hvpeerd has no read-only
#    socket, are told which group they lack (exit 4).
#  - Root and the writers' group write, recorded as user@host.
# Makes two throwaway groups and three users and removes them, holding the
# lab tests' lock meanwhile. Needs root (else skipped) and runuser.
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/access.sh
set -u
. "$(dirname "$0")/lib.sh" # binaries, TAP, PID, PORT, e2e_dir, e2e_ports
HVPEER_BIN=$HVPEER
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (groups, users)"; exit 77; }
command -v runuser >/dev/null && command -v useradd >/dev/null || { echo "1..0 # SKIP no runuser/useradd"; exit 77; }

# useradd and userdel replace /etc/passwd and /etc/group, which detaches
# the lab hosts' bind mounts over them (another mount namespace's mount on a
# renamed file goes away): never while a lab test runs.
exec 9>/tmp/hvpeer-lab-tests.lock
flock -w 900 9 || { echo "Bail out! a lab test held the lab for 15 minutes"; exit 99; }
tag=$$
RW=hvprw$tag RO=hvpro$tag # groups
URW=hvpurw$tag URO=hvpuro$tag UNONE=hvpuno$tag # users
e2e_dir hvpacc
# A bail-out (99) stays one: tap_done's status is the test's otherwise.
# shellcheck disable=SC2154 # st is set in the trap itself
trap 'st=$?
      for u in $URW $URO $UNONE; do userdel $u 2>/dev/null; done; groupdel $RW 2>/dev/null; groupdel $RO 2>/dev/null
      e2e_cleanup; tap_done; s=$?; [ $st = 99 ] && exit 99; exit $s' EXIT
e2e_ports h1 h2 h3
groupadd $RW && groupadd $RO &&
	useradd -M -N -g $RW -s /bin/sh $URW && useradd -M -N -g $RO -s /bin/sh $URO &&
	useradd -M -N -s /bin/sh $UNONE || { echo "Bail out! cannot make test users and groups"; exit 99; }
chmod 755 "$T"
# The users run a copy of hvpeer that they can reach.
cp "$HVPEER_BIN" "$T/hvpeer" && chmod 755 "$T/hvpeer"
HVPEER=$T/hvpeer

# start NAME ARGS...: a one-node cluster, under umask 000 (the sockets' mode
# must not depend on it).
start() {
	local name=$1
	shift
	(umask 000 && exec "$HVPEERD" --name "$name" --data-dir "$T/$name" \
		--listen "127.0.0.1:${PORT[$name]}" --bootstrap "$@") >"$T/$name.log" 2>&1 </dev/null &
	PID[$name]=$!
}
up() { "$HVPEER" -s "$1" --json status 2>/dev/null | grep -q '"quorum": *true'; }
start h1 --socket "$T/c.sock" --socket-group $RW --readonly-group $RO
start h2 --socket "$T/d.sock" --socket-group $RW --readonly-group $RO --readonly-socket "$T/ro/r.sock"
start h3 --socket "$T/e.sock" --socket-group $RW # no read-only socket
for s in c d e; do
	wait_for 100 up "$T/$s.sock" || { nok "hvpeerd serves $T/$s.sock"; exit 1; }
done

as() { # USER ARGS...: hvpeer as USER; output in OUT, status in RC
	local u=$1
	shift
	OUT=$(runuser -u "$u" -- "$HVPEER" "$@" 2>&1)
	RC=$?
}
has() { grep -qF -- "$1" <<<"$OUT" || { echo "#   got (exit $RC): $OUT"; return 1; }; }
hasnt() { ! grep -qE -- "$1" <<<"$OUT" || { echo "#   got (exit $RC): $OUT"; return 1; }; }
exits() { [ "$RC" = "$1" ] || { echo "#   exit $RC, not $1: $OUT"; return 1; }; }
perm() { stat -c '%a %G' "$1"; }

# ---- the sockets ----
check "under umask 000: the control socket is 0660, group $RW" test "$(perm "$T/c.sock")" = "660 $RW"
check "  the read-only socket next to it: 0660, group $RO" test "$(perm "$T/c-ro.sock")" = "660 $RO"
check "  a readonly-socket elsewhere: 0660, group $RO" test "$(perm "$T/ro/r.sock")" = "660 $RO"
check "  in a directory hvpeerd made, 0755" test "$(stat -c %a "$T/ro")" = 755
check "  no read-only socket without readonly-group" test ! -e "$T/e-ro.sock"

# ---- a reader ----
as $URO -s "$T/c-ro.sock" status
check "a reader: status on the read-only socket" exits 0
OUT=$(runuser -u $URO -- env HVPEER_SOCKET="$T/c.sock" "$HVPEER" --json status 2>&1)
RC=$?
check "  status through HVPEER_SOCKET=the control socket (hvpeer falls back)" sh -c "[ $RC = 0 ] && grep -q '\"leader\"' <<EOF
$OUT
EOF"
for cmd in report plan "lease show" "policy show" "patch status"; do
	# shellcheck disable=SC2086 # the command's words
	as $URO -s "$T/c.sock" $cmd
	check "  $cmd through the control socket's path" exits 0
done
as $URO -s "$T/c.sock" bmc status
check "  bmc status: served (h1 answers that it has no BMC configured)" has "h1 has no BMC configured"

as $URO -s "$T/ro/r.sock" status
check "  status on a readonly-socket elsewhere" exits 0

# Every write, on the read-only socket: refused by hvpeerd, exit 4.
refused() { # COMMAND WORDS... -- the command as hvpeerd names it
	local name=${*: -1} args=("${@:1:$#-1}")
	as $URO -s "$T/c-ro.sock" "${args[@]}"
	check "  ${args[*]}: refused on the read-only socket (exit 4)" exits 4
	check "    naming it and the socket it needs" has "'$name' needs the control socket $T/c.sock; this socket is read-only (status, report, plan"
}
refused pause --reason "not allowed" "pause"
refused resume "resume"
refused lease acquire "lease acquire"
refused lease release "lease release"
refused lease break h1 --force --reason x "lease break"
refused policy set soak 10 "policy set"
refused patch submit /etc/hostname "patch submit"
refused patch abort --reason x "patch abort"
refused maintenance enter "maintenance enter"
refused maintenance exit "maintenance exit"
refused token create "token create"
refused bmc power cycle h1 --force "bmc power cycle"
check "  hvpeerd logs the refusals with the uid" grep -q "control: 'lease acquire' refused on the read-only socket (uid $(id -u $URO))" "$T/h1.log"
nothing_changed() { "$HVPEER" -s "$T/c.sock" --json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(1 if s["pause"]["paused"] or s["lease"]["holders"] else 0)'; }
check "  and nothing changed: not paused, no lease" nothing_changed

as $URO -s "$T/c.sock" pause --reason "not allowed"
check "  pause through the control socket's path: no access (exit 4)" exits 4
check "    saying which group it needs" has "no access to $T/c.sock: you are not root nor in group $RW; 'pause' needs it"
as $URO -s "$T/e.sock" status
check "  status where hvpeerd has no read-only socket: no access (exit 4)" exits 4
check "    saying so" has "no access to $T/e.sock: you are not root nor in group $RW, and there is no read-only socket at $T/e-ro.sock"

# ---- a user in neither group ----
as $UNONE -s "$T/c.sock" status
check "a user in neither group: no access to status (exit 4)" exits 4
check "  naming both sockets and groups" has "no access to $T/c.sock nor to the read-only socket $T/c-ro.sock: you are not root nor in group $RW or group $RO"
as $UNONE -s "$T/c-ro.sock" status
check "  on the read-only socket itself: exit 4" exits 4
check "  naming its group, and no other socket" has "no access to $T/c-ro.sock: you are not root nor in group $RO"
check "    (no *-ro-ro.sock)" hasnt "-ro-ro"

as $UNONE -s "$T/c.sock" lease acquire
check "  lease acquire: exit 4, saying it needs the control socket" sh -c "[ $RC = 4 ] && grep -qF \"'lease acquire' needs it\" <<EOF
$OUT
EOF"

# ---- writers ----
as $URW -s "$T/c.sock" pause --reason "writer"
check "a writer (socket-group): pause" exits 0
by_writer() { "$HVPEER" -s "$T/c.sock" status | grep -q "$URW@h1"; }
check "  recorded as the writer's" by_writer
as $URW -s "$T/c-ro.sock" status
check "  not in readonly-group: no access to the read-only socket (exit 4)" exits 4
"$HVPEER" -s "$T/c.sock" resume >/dev/null
check "root: resume" test $? = 0

for h in h1 h2 h3; do
	kill -TERM "${PID[$h]}"
	wait "${PID[$h]}"
	check "$h stops cleanly (exit 0)" test $? = 0
	unset "PID[$h]"
done
check "  and removes every socket" test ! -e "$T/c.sock" -a ! -e "$T/c-ro.sock" -a ! -e "$T/ro/r.sock" -a ! -e "$T/d.sock" -a ! -e "$T/e.sock"

#!/usr/bin/env bash
# Local access to a real hvpeerd: the control socket (mode 0660, group
# socket-group) and the read-only socket next to it (mode 0660, group
# readonly-group), used by real users of those groups (runuser). A reader
# gets status and plan (through the control socket's path too: hvpeer falls
# back to the read-only socket), and is refused every write, with the
# reason; a user in neither group is refused with a clear message; root
# and the writers' group write. Makes two throwaway groups and users and
# removes them, holding the lab tests' lock meanwhile. Needs root (else
# skipped) and runuser.
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/access.sh
set -u
BUILDDIR=${HVPEER_BUILDDIR:-.}
HVPEERD=$BUILDDIR/hvpeerd
HVPEER_BIN=$BUILDDIR/hvpeer
[ -x "$HVPEERD" ] && [ -x "$HVPEER_BIN" ] || { echo "Bail out! no hvpeerd/hvpeer in '$BUILDDIR'"; exit 99; }
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (groups, users)"; exit 77; }
command -v runuser >/dev/null && command -v useradd >/dev/null || { echo "1..0 # SKIP no runuser/useradd"; exit 77; }
. "$(dirname "$0")/../bmc/tap.sh" # check, wait_for (tenths of a second), tap_done
. "$(dirname "$0")/lib.sh"        # ok, nok, PID, PORT, e2e_dir, e2e_ports

# useradd and userdel replace /etc/passwd and /etc/group, which detaches
# the lab hosts' bind mounts over them (another mount namespace's mount on a
# renamed file goes away): never while a lab test runs.
exec 9>/tmp/hvpeer-lab-tests.lock
flock -w 900 9 || { echo "Bail out! a lab test held the lab for 15 minutes"; exit 99; }
tag=$$
RW=hvprw$tag RO=hvpro$tag # groups
URW=hvpurw$tag URO=hvpuro$tag UNONE=hvpuno$tag # users
e2e_dir hvpacc
trap 'for u in $URW $URO $UNONE; do userdel $u 2>/dev/null; done; groupdel $RW 2>/dev/null; groupdel $RO 2>/dev/null
      e2e_cleanup; tap_done; exit $?' EXIT
e2e_ports h1
groupadd $RW && groupadd $RO &&
	useradd -M -N -g $RW -s /bin/sh $URW && useradd -M -N -g $RO -s /bin/sh $URO &&
	useradd -M -N -s /bin/sh $UNONE || { echo "Bail out! cannot make test users and groups"; exit 99; }
chmod 755 "$T"
# The users run a copy of hvpeer that they can reach.
cp "$HVPEER_BIN" "$T/hvpeer" && chmod 755 "$T/hvpeer"
HVPEER=$T/hvpeer

"$HVPEERD" --name h1 --data-dir "$T/h1" --listen "127.0.0.1:${PORT[h1]}" --socket "$T/c.sock" \
	--socket-group $RW --readonly-group $RO --bootstrap >"$T/h1.log" 2>&1 </dev/null &
PID[h1]=$!
up() { "$HVPEER" -s "$T/c.sock" --json status 2>/dev/null | grep -q '"quorum": *true'; }
wait_for 100 up || nok "hvpeerd serves"

as() { # USER ARGS...: hvpeer as USER; output in OUT, status in RC
	local u=$1
	shift
	OUT=$(runuser -u "$u" -- "$HVPEER" "$@" 2>&1)
	RC=$?
}
perm() { stat -c '%a %G' "$1"; }
check "the control socket: 0660, group $RW" test "$(perm "$T/c.sock")" = "660 $RW"
check "the read-only socket next to it: 0660, group $RO" test "$(perm "$T/c-ro.sock")" = "660 $RO"

as $URO -s "$T/c-ro.sock" status
check "a reader: status on the read-only socket" test $RC = 0
as $URO -s "$T/c.sock" --json status
check "  and through the control socket's path (hvpeer falls back)" sh -c "test $RC = 0 && echo '$OUT' | grep -q '\"leader\"'"
as $URO -s "$T/c.sock" plan
check "  plan" test $RC = 0
as $URO -s "$T/c-ro.sock" pause --reason "not allowed"
check "  pause on the read-only socket: refused, no permission (exit 4)" test $RC = 4
check "  saying which socket it needs" grep -q "'pause' needs the control socket $T/c.sock; this socket is read-only" <<<"$OUT"
as $URO -s "$T/c-ro.sock" lease acquire
check "  lease acquire: refused (exit 4)" test $RC = 4
as $URO -s "$T/c-ro.sock" bmc power cycle h1 --force
check "  bmc power: refused" grep -q "read-only" <<<"$OUT"
as $URO -s "$T/c.sock" pause --reason "not allowed"
check "  pause through the control socket's path: no access (exit 4)" test $RC = 4
check "  saying so" grep -q "no access to $T/c.sock: you are not root nor in group $RW; 'pause' needs it" <<<"$OUT"

as $UNONE -s "$T/c.sock" status
check "a user in neither group: no access to status (exit 4)" test $RC = 4
check "  saying so" grep -q "no access to $T/c.sock" <<<"$OUT"

as $URW -s "$T/c.sock" pause --reason "writer"
check "a writer (socket-group): pause" test $RC = 0
"$HVPEER" -s "$T/c.sock" resume >/dev/null
check "root: resume" test $? = 0
by_writer() { "$HVPEER" -s "$T/c.sock" status | grep -q "$URW@h1"; }
check "the pause is recorded as the writer's" by_writer
kill -TERM "${PID[h1]}"
wait "${PID[h1]}"
check "hvpeerd stops cleanly (exit 0)" test $? = 0
unset "PID[h1]"
check "  and removes both sockets" test ! -e "$T/c.sock" -a ! -e "$T/c-ro.sock"

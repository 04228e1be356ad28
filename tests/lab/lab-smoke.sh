#!/usr/bin/env bash
# Smoke test of the lab tool itself (lab/hvpeer-lab): three lab hosts come up
# with an hvpeer cluster, a guest boots and keeps its heartbeat across a live
# migration, a host survives a crash + boot, and "down" leaves nothing behind.
#
#   sudo tests/lab/lab-smoke.sh
#
# Output: one "ok N - ..." / "not ok N - ..." line per check, then
# "N passed, M failed".  Exit status: 0 all passed, 1 something failed,
# 77 skipped (not root, lab packages missing, a lab already up, or the guest
# assets cannot be fetched), 99 hard error (no hvpeerd/hvpeer built).
#
# Environment: HVPEER_BUILDDIR (default: build/ of this tree), HVPEER_LAB_DIR
# and HVPEER_LAB_CACHE (passed on to hvpeer-lab), HVPEER_LAB_TOOL (the tool
# under test, default: lab/hvpeer-lab of this tree).  Takes about a minute.
set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
LABT=${HVPEER_LAB_TOOL:-$TOP/lab/hvpeer-lab}
export HVPEER_BUILDDIR=${HVPEER_BUILDDIR:-$TOP/build}
DEB_DEPS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 busybox-static iproute2 util-linux openipmi"

skip() {
	echo "1..0 # SKIP $*"
	exit 77
}
[[ $(id -u) == 0 ]] || skip "not root (the lab creates namespaces, a bridge and mounts)"
missing=
for p in $DEB_DEPS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[[ -z $missing ]] || skip "missing Debian packages:$missing (run scripts/setup.sh --lab)"
if [[ ! -x $HVPEER_BUILDDIR/hvpeerd || ! -x $HVPEER_BUILDDIR/hvpeer ]]; then
	echo "Bail out! no hvpeerd/hvpeer in $HVPEER_BUILDDIR (build first or set HVPEER_BUILDDIR)"
	exit 99
fi
[[ -x $LABT ]] || {
	echo "Bail out! no executable $LABT"
	exit 99
}
# One lab at a time on a machine: lab tests run one after the other even
# under make -j (bounded wait).
exec 9>/tmp/hvpeer-lab-tests.lock
flock -w 900 9 || { echo "Bail out! another lab test held the lab for 15 minutes"; exit 99; }
if ip link show hvlab0 >/dev/null 2>&1; then
	skip "a lab is already up (bridge hvlab0 exists): '$LABT down' removes it"
fi
LAB=${HVPEER_LAB_DIR:-}
if [[ -z $LAB ]]; then
	if [[ -d /run && -w /run ]]; then LAB=/run/hvpeer-lab; else LAB=/tmp/hvpeer-lab; fi
fi
[[ ! -e $LAB ]] || skip "$LAB exists (a lab is up or left over): '$LABT down' removes it"

# ---- bookkeeping ---------------------------------------------------------------

NCHECK=0 NPASS=0 NFAIL=0
T0=${EPOCHREALTIME/./}
secs() { # seconds since START (microseconds), one decimal
	local d=$((${EPOCHREALTIME/./} - $1))
	printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}
pass() {
	NCHECK=$((NCHECK + 1)) NPASS=$((NPASS + 1))
	echo "ok $NCHECK - $1"
}
fail() {
	NCHECK=$((NCHECK + 1)) NFAIL=$((NFAIL + 1))
	echo "not ok $NCHECK - $1"
	[[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/#   /'
}
check() { # DESC CMD...: pass when CMD succeeds
	local d=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$d"; else fail "$d" "$out"; fi
}
diag() { echo "# $*"; }

UP=0
ERRF=
cleanup() {
	local rc=$?
	[[ -z $ERRF ]] || rm -f "$ERRF"
	if [[ $UP == 1 ]]; then
		diag "cleanup: hvpeer-lab down"
		"$LABT" down >/dev/null 2>&1 || "$LABT" down
	fi
	echo "$NPASS passed, $NFAIL failed"
	if ((NFAIL > 0 || rc != 0)); then exit 1; fi
	exit 0
}
trap cleanup EXIT
trap 'exit 1' INT TERM

lab() { timeout 180 "$LABT" "$@"; }

# json_member_field NAME FIELD < status-json: FIELD of member NAME
json_member_field() {
	if command -v jq >/dev/null 2>&1; then
		jq -r --arg n "$1" --arg f "$2" '.members[] | select(.name == $n) | .[$f]'
	elif command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys
d = json.load(sys.stdin)
for m in d.get("members", []):
    if m.get("name") == sys.argv[1]: print(m.get(sys.argv[2]))' "$1" "$2"
	else # the daemon pretty-prints one field per line
		awk -v n="$1" -v f="$2" '
			$0 ~ "\"name\": *\"" n "\"" { on = 1 }
			on && $0 ~ "\"" f "\":" { sub(/.*": */, ""); sub(/[,"]/, ""); print; exit }
			/}/ { on = 0 }'
	fi
}
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# what exists before, to compare after "down"
NETNS_BEFORE=$(ip netns list 2>/dev/null | sort)
MOUNTS_BEFORE=$(wc -l </proc/self/mountinfo)

# ---- 0. guest assets (fetched once with apt-get download, then cached) --------------

if ! out=$(lab assets 2>&1); then
	echo "$out" | sed 's/^/# /'
	skip "the guest assets (Debian cloud kernel + busybox-static) cannot be fetched or built"
fi

# ---- 1. up -----------------------------------------------------------------------------

t=${EPOCHREALTIME/./}
UP=1
if out=$(lab up 3 2>&1); then
	pass "up 3: three hosts and an hvpeer cluster in $(secs "$t") s"
else
	fail "up 3" "$out"
	exit 1
fi
T_UP=$(secs "$t")

st=$(lab status 2>&1)
n_up=$(grep -cE '^h[1-3] +up +10\.77\.0\.1[1-3] +ok' <<<"$st")
n_q=$(grep -c 'hvpeer: cluster: 3 members.*(quorum)' <<<"$st")
if [[ $n_up == 3 && $n_q == 3 ]]; then
	pass "status: h1..h3 up with libvirtd, each hvpeerd reports 3 members with quorum"
else
	fail "status: h1..h3 up with libvirtd, each hvpeerd reports 3 members with quorum" "$st"
fi

js=$(lab hvpeer h1 --json status 2>&1) && rc=0 || rc=$?
nv=$(grep -o '"role": *"voter"' <<<"$js" | wc -l)
if [[ $rc == 0 && $nv == 3 ]] && grep -q '"quorum": *true' <<<"$js"; then
	pass "hvpeer h1 status: 3 voters, quorum"
else
	fail "hvpeer h1 status: 3 voters, quorum" "exit $rc: $js"
fi

host_of_uuid() { lab exec "h$1" cat /etc/libvirt/libvirtd.conf | sed -n 's/^host_uuid = "\(.*\)"/\1/p'; }
if [[ $(lab exec h2 hostname) == labh2 && $(host_of_uuid 1) != "$(host_of_uuid 2)" ]] &&
	[[ -z $(lab exec h2 ip route show | grep -v '^10\.77\.0\.0/24 dev eth0 ') ]]; then
	pass "h2 is labh2 with its own host_uuid and only the lab route"
else
	fail "h2 is labh2 with its own host_uuid and only the lab route" "$(lab exec h2 ip route show 2>&1)"
fi

# ---- 2. a guest and its heartbeat --------------------------------------------------------

t=${EPOCHREALTIME/./}
ERRF=$(mktemp)
if G=$(lab guest add h1 2>"$ERRF") && [[ -n $G ]]; then
	T_BOOT=$(secs "$t")
	pass "guest add h1: $G runs, first heartbeat $T_BOOT s after the command"
else
	fail "guest add h1" "$G $(cat "$ERRF")"
	exit 1
fi

hb() { lab guest heartbeat "$G" 2>&1; } # "N HOST UPTIME"
read -r n1 h1 u1 <<<"$(hb)"
sleep 2.5
read -r n2 h2 u2 <<<"$(hb)"
if [[ $h1 == h1 && $h2 == h1 && $n1 =~ ^[0-9]+$ && $n2 =~ ^[0-9]+$ ]] && ((n2 > n1)); then
	pass "the heartbeat advances on h1 ($n1 -> $n2)"
else
	fail "the heartbeat advances on h1" "before: $n1 $h1 $u1; after: $n2 $h2 $u2"
fi

x=$(virsh -q -c "$(lab uri h1)" dumpxml --inactive "$G" 2>&1)
if grep -q "<domain type='qemu'" <<<"$x" && grep -q '<hvpeer:level>production</hvpeer:level>' <<<"$x" &&
	grep -q "<model fallback='forbid'>qemu64</model>" <<<"$x"; then
	pass "$G: TCG domain, qemu64 CPU, hvpeer level metadata"
else
	fail "$G: TCG domain, qemu64 CPU, hvpeer level metadata" "$x"
fi

# ---- 3. live migration h1 -> h2 ----------------------------------------------------------

t=${EPOCHREALTIME/./}
if out=$(timeout 120 virsh -c "$(lab uri h1)" migrate --live --p2p --persistent --undefinesource \
	"$G" qemu+tcp://10.77.0.12/system 2>&1); then
	T_MIG=$(secs "$t")
	pass "virsh migrate --live --p2p --persistent --undefinesource $G h1 -> h2 in $T_MIG s"
else
	fail "virsh migrate --live --p2p --persistent --undefinesource $G h1 -> h2" "$out"
fi
ji=$(virsh -q -c "$(lab uri h2)" domjobinfo "$G" --completed 2>/dev/null)
diag "libvirt: $(grep -E '^(Time elapsed|Total downtime):' <<<"$ji" | tr -s ' ' | tr '\n' ' ')"

read -r n3 h3 u3 <<<"$(hb)"
sleep 2.5
read -r n4 h4 u4 <<<"$(hb)"
if [[ $h4 == h2 && $n4 =~ ^[0-9]+$ ]] && ((n4 > n2 && n4 > n3)) &&
	awk -v a="$u2" -v b="$u4" 'BEGIN { exit !(b > a) }'; then
	pass "the heartbeat continues on h2 ($n2 -> $n4, uptime $u2 -> $u4: no reboot)"
else
	fail "the heartbeat continues on h2" "before: $n2 $h2 $u2; just after: $n3 $h3 $u3; later: $n4 $h4 $u4"
fi

on1=$(virsh -q -c "$(lab uri h1)" list --all --name 2>&1)
pers=$(virsh -q -c "$(lab uri h2)" dominfo "$G" 2>&1 | awk -F': *' '/^Persistent/ {print $2}')
if ! grep -qx "$G" <<<"$on1" && [[ $pers == yes ]]; then
	pass "$G is undefined on h1 and persistent on h2"
else
	fail "$G is undefined on h1 and persistent on h2" "h1: $on1; h2 persistent: $pers"
fi

lg=$(lab guest log "$G" -n 1000 2>&1)
seq_ok=$(awk '/^h[0-9]: hvpeer-heartbeat / { n = $3 + 0; if (p && n != p + 1) bad = 1; p = n; hosts[$1] = 1 }
	END { print (bad ? "gap" : "ok"), length(hosts) }' <<<"$lg")
if [[ $seq_ok == "ok 2" ]] && grep -q '^h1: ' <<<"$lg" && tail -n 1 <<<"$lg" | grep -q '^h2: '; then
	pass "guest log: one unbroken heartbeat sequence, h1 then h2"
else
	fail "guest log: one unbroken heartbeat sequence, h1 then h2" "$seq_ok; $(tail -n 8 <<<"$lg")"
fi

# ---- 4. crash + boot of h3 ---------------------------------------------------------------

pid3=$(lab pid h3 hvpeerd 2>&1)
if out=$(lab crash h3 2>&1) && ! lab exec h3 true >/dev/null 2>&1 &&
	! [[ -e /proc/$pid3 ]] && grep -qE '^h3 +down' <<<"$(lab status 2>&1)"; then
	pass "crash h3: its init and hvpeerd (pid $pid3) are gone, status shows h3 down"
else
	fail "crash h3: its init and hvpeerd are gone, status shows h3 down" "$out"
fi
lab hvpeer h3 status >/dev/null 2>&1 && rc=0 || rc=$?
js=$(lab hvpeer h1 --json status 2>&1) && rc1=0 || rc1=$?
if [[ $rc == 4 && $rc1 == 0 ]] && grep -q '"quorum": *true' <<<"$js"; then
	pass "with h3 down: its hvpeerd is unreachable (exit 4), h1 still has quorum"
else
	fail "with h3 down: its hvpeerd is unreachable (exit 4), h1 still has quorum" "h3 exit $rc; h1 exit $rc1"
fi

tb=$(now_ms)
t=${EPOCHREALTIME/./}
if out=$(lab boot h3 2>&1) && virsh -q -c "$(lab uri h3)" list --all >/dev/null 2>&1; then
	pass "boot h3: libvirtd answers again after $(secs "$t") s"
else
	fail "boot h3: libvirtd answers again" "$out"
fi
back=0
for ((i = 0; i < 60; i++)); do
	js=$(lab hvpeer h1 --json status 2>/dev/null) || { sleep 0.5; continue; }
	lr=$(json_member_field h3 last_report_ms <<<"$js" 2>/dev/null)
	role=$(json_member_field h3 role <<<"$js" 2>/dev/null)
	if [[ $lr =~ ^[0-9]+$ ]] && ((lr >= tb)) && [[ $role == voter ]] &&
		lab hvpeer h3 status >/dev/null 2>&1; then
		back=1
		break
	fi
	sleep 0.5
done
if [[ $back == 1 ]]; then
	pass "h3's hvpeerd is back in hvpeer status (voter, reporting again, answers with quorum)"
else
	fail "h3's hvpeerd is back in hvpeer status" "role=$role last_report_ms=$lr boot at $tb; $(tail -n 5 "$LAB/h3/hvpeerd.log" 2>&1)"
fi

# hvpeerd is supervised: kill -9 brings it back
p=$(lab pid h2 hvpeerd 2>&1)
kill -KILL "$p" 2>/dev/null
ok=0
for ((i = 0; i < 40; i++)); do
	q=$(lab pid h2 hvpeerd 2>/dev/null) && [[ $q != "$p" ]] && lab hvpeer h2 status >/dev/null 2>&1 && { ok=1; break; }
	sleep 0.25
done
if [[ $ok == 1 ]]; then
	pass "kill -9 of h2's hvpeerd (pid $p): restarted (pid $q) and answers with quorum"
else
	fail "kill -9 of h2's hvpeerd: restarted and answers" "$(tail -n 3 "$LAB/h2/init.log" 2>&1)"
fi

# the guest was not disturbed by any of this
read -r n5 h5 u5 <<<"$(hb)"
if [[ $h5 == h2 && $n5 =~ ^[0-9]+$ ]] && ((n5 > n4)); then
	pass "$G still beats on h2 ($n5)"
else
	fail "$G still beats on h2" "$n5 $h5 $u5"
fi

# ---- 5. down ------------------------------------------------------------------------------

t=${EPOCHREALTIME/./}
if out=$(lab down 2>&1); then
	UP=0
	pass "down in $(secs "$t") s"
else
	fail "down" "$out"
fi
left=
ip link show hvlab0 >/dev/null 2>&1 && left="$left bridge hvlab0;"
ip -o link show | grep -q 'hvlabv[0-9]' && left="$left veths;"
[[ $(ip netns list 2>/dev/null | sort) == "$NETNS_BEFORE" ]] || left="$left ip netns changed;"
grep -q "$LAB" /proc/self/mountinfo && left="$left mounts under $LAB;"
(($(wc -l </proc/self/mountinfo) <= MOUNTS_BEFORE)) || left="$left more mounts than before;"
[[ -e $LAB ]] && left="$left $LAB;"
grep -lsz '^HVPEER_LAB_HOST=' /proc/[0-9]*/environ >/dev/null 2>&1 && left="$left lab processes;"
MYPIDNS=$(readlink /proc/self/ns/pid)
for c in libvirtd virtlogd hvpeerd qemu-system-x86 unshare; do
	for p in $(pgrep -x "$c" 2>/dev/null); do
		# a lab host's processes live in a PID namespace of their own
		[[ $(readlink "/proc/$p/ns/pid" 2>/dev/null) == "$MYPIDNS" ]] || left="$left $c ($p);"
		[[ $c == unshare ]] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$LAB" && left="$left $c ($p);"
	done
done
if [[ -z $left ]]; then
	pass "nothing left: no bridge, veths, namespaces, mounts, processes or lab dir"
else
	fail "nothing left after down" "$left"
fi
check "down again (idempotent)" lab down

diag "figures: up $T_UP s, guest boot $T_BOOT s, migration ${T_MIG:-?} s, whole test $(secs "$T0") s"

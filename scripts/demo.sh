#!/bin/bash
# Install what is missing, build, and run the demo on the lab: three real
# KVM/libvirt hosts (QEMU under TCG) in network namespaces on this machine,
# each running hvpeerd. A few guests boot; host h1 is put in maintenance (its
# guests are live-migrated to h2 and h3 while they keep running), comes back
# (they return home), and the report shows each guest's measured downtime.
# Then a quorum-committed pause/resume round trip, and the lab is removed.
# Traffic stays on the lab's own bridge and namespaces. Run as root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
lab=$top/lab/hvpeer-lab
export HVPEER_BUILDDIR=$top/build

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (the lab makes namespaces, a bridge and mounts)" >&2; exit 1; }
step "installing what is missing"
"$top/scripts/setup.sh"
step "building"
"$top/scripts/build.sh" "$top/build" >/dev/null

if ip link show hvlab0 >/dev/null 2>&1; then
	echo "demo: a lab is already up; '$lab down' removes it" >&2
	exit 1
fi
trap '"$lab" down >/dev/null 2>&1 || true' EXIT

step "bringing up the lab: 3 hosts, each with libvirtd, QEMU (TCG) and hvpeerd"
run "$lab" up 3 --guest-memory 640

step "booting guests (diskless TCG VMs that print a heartbeat every second)"
run "$lab" guest add h1 --name web1 --mem 128
run "$lab" guest add h1 --name web2 --mem 128
run "$lab" guest add h1 --name devbox --mem 96 --level dev
run "$lab" guest add h2 --name db1 --mem 192
for _ in $(seq 50); do # until h1's inventory is in the replicated state
	"$lab" hvpeer h2 --json status 2>/dev/null | grep -q '"name":"devbox"' && break
	sleep 0.2
done
run "$lab" guest list

step "hvpeer status, asked on h3"
run "$lab" hvpeer h3 status

step "h1 enters maintenance: its guests are live-migrated away, one by one"
before=$("$lab" guest heartbeat web1)
run "$lab" hvpeer h1 maintenance enter
after=$("$lab" guest heartbeat web1)
printf 'web1 heartbeat before: %s\nweb1 heartbeat after:  %s  (it kept running)\n' "$before" "$after"
run "$lab" guest list

step "h1 leaves maintenance: the guests come home, the lease is released"
run "$lab" hvpeer h1 maintenance exit
run "$lab" guest list

step "stop the line: a pause committed by a quorum, seen from every host"
run "$lab" hvpeer h2 pause --reason "demo: storage array firmware upgrade"
run "$lab" hvpeer h3 maintenance enter || printf '(refused while paused, as it should be)\n'
run "$lab" hvpeer h1 resume

step "the report: every move with libvirt's measured downtime"
run "$lab" hvpeer h3 report

step "removing the lab"
trap - EXIT
run "$lab" down
printf '\ndemo done.\n'

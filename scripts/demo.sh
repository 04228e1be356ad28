#!/bin/bash
# Install what is missing, build, and run the demo on the lab: three real
# KVM/libvirt hosts (QEMU under TCG) in network namespaces on this machine,
# each running hvpeerd. A few guests boot; host h1 is put in maintenance (its
# guests are live-migrated to h2 and h3 while they keep running), comes back
# (they return home), and the report shows each guest's measured downtime.
# Then a quorum-committed pause/resume round trip, and a signed patch is
# rolled out: each host in turn evacuates, writes the patch to its other boot
# bank, reboots into it, validates and takes its guests back, with no
# controller. Then the lab is removed.
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

step "h2's BMC (an ipmi_sim on the lab bridge), read through hvpeerd, asked on h1"
run "$lab" hvpeer h1 bmc sensors h2

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

step "a signed patch bundle (Ed25519), its key trusted by every host"
keys=$(mktemp -d /tmp/hvpeer-demo.XXXXXX)
trap '"$lab" down >/dev/null 2>&1 || true; rm -rf "$keys"' EXIT
echo "demo operating system 1.1.0" >"$keys/os.img"
printf '#!/bin/sh\n# a health check run after the reboot\ntest -r /proc/cpuinfo\n' >"$keys/health.sh"
run "$top/build/hvpeer" bundle keygen "$keys/ops.key"
cp "$keys/ops.key.pub" "$("$lab" dir)/keys/ops.pub"
run "$top/build/hvpeer" bundle create --name demo-os --version 1.1.0 --host-class lab \
	--hook "validate=$keys/health.sh" -o "$keys/demo-os-1.1.0.tar" "$keys/os.img"
run "$top/build/hvpeer" bundle sign --key "$keys/ops.key" "$keys/demo-os-1.1.0.tar"
step "rolling it out: one host at a time, guests keep running (submitted on h2)"
run "$lab" hvpeer h2 patch submit "$keys/demo-os-1.1.0.tar"
for _ in $(seq 600); do # bounded: 120 s
	"$lab" hvpeer h3 --json status 2>/dev/null | grep -q '"active": *false' && break
	sleep 0.2
done
run "$lab" hvpeer h3 patch status
run "$lab" guest list
step "the report: every move with libvirt's measured downtime"
run "$lab" hvpeer h3 report

step "removing the lab"
trap - EXIT
run "$lab" down
printf '\ndemo done.\n'

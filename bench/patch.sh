#!/bin/bash
# The patch cycle's coordination overhead, measured in the lab (root; real
# libvirtd + QEMU hosts in namespaces, lab reboots through the boot banks).
#
# Three hosts, one 128 MiB guest each, one rolling patch. From the replicated
# state's per-phase times of each host it prints:
#   - the cycle's wall time (grant to done),
#   - the work: the migrations (evacuate + rebalance), apply, reboot and
#     validate phases,
#   - the coordination overhead = wall time - work (pre-check, entering and
#     leaving maintenance, staging, marking good, and every commit between),
#     also as a fraction of the wall time;
#   - the handoff: from a host's DONE (the same log entry grants the lease to
#     the next host) until the next host has finished its pre-check, i.e.
#     the next host's reaction plus its pre-check work.
# It prints figures; nothing passes or fails on them. Exit 77 when it cannot
# run here (not root, lab packages missing, a lab already up).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$TOP/build}
LABT=$TOP/lab/hvpeer-lab
export HVPEER_BUILDDIR=$B
HVPEER=$B/hvpeer

[[ $(id -u) == 0 ]] || { echo "  (skipped: the lab needs root)"; exit 77; }
for p in libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 busybox-static; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		{ echo "  (skipped: $p is missing; scripts/setup.sh installs it)"; exit 77; }
done
exec 9>/tmp/hvpeer-lab-tests.lock
flock -w 900 9 || { echo "  (skipped: the lab is busy)"; exit 77; }
ip link show hvlab0 >/dev/null 2>&1 && { echo "  (skipped: a lab is already up)"; exit 77; }

T=$(mktemp -d /tmp/hvpeer-bench-patch.XXXXXX)
trap '"$LABT" down >/dev/null 2>&1; rm -rf "$T"' EXIT
"$LABT" up 3 --guest-memory 512 >"$T/up.log" 2>&1 || { tail -5 "$T/up.log"; exit 1; }
for n in 1 2 3; do "$LABT" guest add "h$n" --name "g$n" --mem 128 >/dev/null 2>&1 || exit 1; done
for _ in $(seq 100); do # bounded: until the inventories are in the state
	[ "$("$LABT" hvpeer h2 --json status | python3 -c 'import json,sys; print(sum(len(m["guests"]) for m in json.load(sys.stdin)["members"]))')" = 3 ] && break
	sleep 0.2
done
"$HVPEER" bundle keygen "$T/k" >/dev/null && cp "$T/k.pub" "$("$LABT" dir)/keys/"
echo payload >"$T/os.img"
"$HVPEER" bundle create --name bench-os --version 2.0.0 --host-class lab -o "$T/b.tar" "$T/os.img" >/dev/null &&
	"$HVPEER" bundle sign --key "$T/k" "$T/b.tar" >/dev/null || exit 1
t0=$(date +%s%N)
"$LABT" hvpeer h1 patch submit "$T/b.tar" >/dev/null || exit 1
for _ in $(seq 1200); do # bounded: 240 s
	"$LABT" hvpeer h2 --json status 2>/dev/null >"$T/st.json" &&
		python3 -c 'import json,sys; sys.exit(0 if not json.load(open(sys.argv[1]))["rollout"]["active"] else 1)' "$T/st.json" && break
	sleep 0.2
done
t1=$(date +%s%N)
python3 - "$T/st.json" "$(((t1 - t0) / 1000000))" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["rollout"]
hosts = sorted(r["hosts"], key=lambda h: h["end_ms"])
leased = ["precheck", "enter-maint", "evacuate", "stage", "apply", "reboot",
          "validate", "exit-maint", "rebalance"]
work = ["evacuate", "rebalance", "apply", "reboot", "validate"]
print("  rollout of 3 hosts, one 128 MiB guest each: %d ms from submit to the last DONE seen (%s)"
      % (int(sys.argv[2]), "all done" if r["done"] == 3 else "NOT all done"))
print("  %-4s %9s %9s %9s %9s %9s %9s %9s %7s" % ("host", "cycle ms", "migrate", "apply",
      "reboot", "validate", "precheck", "overhead", "share"))
over = []
for h in hosts:
    p = h["phase_ms"]
    total = sum(p.get(k, 0) for k in leased)
    w = sum(p.get(k, 0) for k in work)
    o = total - w
    over.append(o)
    print("  %-4s %9d %9d %9d %9d %9d %9d %9d %6.1f%%" % (
        h["name"], total, p.get("evacuate", 0) + p.get("rebalance", 0), p.get("apply", 0),
        p.get("reboot", 0), p.get("validate", 0), p.get("precheck", 0), o,
        100.0 * o / total if total else 0))
if over:
    print("  coordination overhead per host: mean %.0f ms, max %d ms (cycle time minus migrations, apply, reboot, validate)"
          % (sum(over) / len(over), max(over)))
for a, b in zip(hosts, hosts[1:]):
    print("  handoff %s -> %s: %d ms (the lease moves in %s's DONE entry; this is %s's reaction plus its pre-check)"
          % (a["name"], b["name"], b["phase_ms"].get("precheck", 0), a["name"], b["name"]))
EOF

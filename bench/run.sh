#!/bin/bash
# hvpeer benchmarks (make bench): figures, each printed next to its target.
# Nothing here passes or fails on a target; the exit status is 1 only when a
# figure could not be measured at all.
#
#   1. bench/hvpeer-bench: lease-grant commit latency next to a raw
#      raft_apply(), same run, same in-process 3-node cluster; then (1b)
#      the same over mutual TLS 1.3, and the TLS / plain ratios.
#   2. Real processes on 127.0.0.1 (free ports, a temp dir): 3 hvpeerd with
#      --election-timeout 300 --heartbeat-timeout 50, then
#        - idle RSS (/proc/PID/status) and CPU (/proc/PID/stat utime+stime
#          over an idle window) per daemon;
#        - `hvpeer status` latency through a follower's and the leader's
#          control socket (the CLI end to end: exec, connect, barrier, answer);
#        - leader failover: kill -9 the leader, time until a survivor's
#          `hvpeer --json status` names a new leader with quorum true (polled
#          every 10 ms), restart the killed daemon, wait until it serves.
#
# Usage: run.sh ABS_BUILDDIR. Environment knobs (defaults in brackets):
#   HVPEER_BENCH_N [2000] operations per series in hvpeer-bench
#   HVPEER_BENCH_FAILOVERS [10], HVPEER_BENCH_STATUS_RUNS [200],
#   HVPEER_BENCH_IDLE_SECONDS [10]
#
# Every loop is bounded in count and time; a trap kills every daemon this
# script started (by PID) and removes the temp dir.

# `make bench` runs this with $(SHELL), which may be dash: use bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u
export LC_ALL=C # EPOCHREALTIME with a '.', plain sort

B=${1:-}
if [ -z "$B" ] || [ ! -d "$B" ]; then
	echo "usage: run.sh ABS_BUILDDIR" >&2
	exit 2
fi
HVPEERD=$B/hvpeerd
HVPEER=$B/hvpeer
BENCH=$B/bench/hvpeer-bench
for f in "$HVPEERD" "$HVPEER" "$BENCH"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f is missing: run 'make hvpeerd hvpeer bench/hvpeer-bench' first" >&2
		exit 2
	fi
done

BENCH_N=${HVPEER_BENCH_N:-2000}
FAILOVERS=${HVPEER_BENCH_FAILOVERS:-10}
STATUS_RUNS=${HVPEER_BENCH_STATUS_RUNS:-200}
IDLE_S=${HVPEER_BENCH_IDLE_SECONDS:-10}
for v in "$BENCH_N" "$FAILOVERS" "$STATUS_RUNS" "$IDLE_S"; do
	if ! [[ $v =~ ^[1-9][0-9]{0,5}$ ]]; then
		echo "run.sh: '$v': the HVPEER_BENCH_* knobs are whole numbers from 1 to 999999" >&2
		exit 2
	fi
done
ET=300
HB=50

tmpbase=${TMPDIR:-/tmp}
# Control socket paths must fit in sun_path (108 bytes).
if [ "${#tmpbase}" -gt 60 ] || [ ! -d "$tmpbase" ]; then
	tmpbase=/tmp
fi
T=$(mktemp -d "$tmpbase/hvpeer-run.XXXXXX") || exit 1

declare -a PID PORT
failed=0

cleanup() {
	local i
	for i in 1 2 3 4; do
		if [ -n "${PID[i]:-}" ]; then
			kill -9 "${PID[i]}" 2>/dev/null
			wait "${PID[i]}" 2>/dev/null
		fi
	done
	rm -rf "$T"
}
trap 'cleanup 2>/dev/null' EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM HUP

. "$(dirname "$0")/lib.sh" # nap, now_us, stats, ticks, kib

# ---- 1. in-process bench ---------------------------------------------------

echo "=== 1. lease-grant commit latency vs raw raft_apply (bench/hvpeer-bench -n $BENCH_N) ==="
timeout 900 "$BENCH" -n "$BENCH_N" | tee "$T/bench-plain.out"
rc=${PIPESTATUS[0]}
if [ $rc -ne 0 ]; then
	[ $rc -eq 124 ] && echo "hvpeer-bench: timed out after 900 s"
	echo "hvpeer-bench FAILED (exit status $rc)"
	failed=1
fi
echo

# ---- 1b. the same with mutual TLS -------------------------------------------

echo "=== 1b. the same over mutual TLS 1.3 (hvpeer-bench -t, certificates from hvpeer ca) ==="
mkdir -p "$T/certs"
if "$HVPEER" ca init --dir "$T/certs/ca" >/dev/null &&
	for i in 1 2 3; do "$HVPEER" ca issue --dir "$T/certs/ca" --name bench$i --out "$T/certs/bench$i" >/dev/null || exit 1; done; then
	timeout 900 "$BENCH" -n "$BENCH_N" -t "$T/certs" | tee "$T/bench-tls.out"
	rc=${PIPESTATUS[0]}
else
	rc=1
fi
if [ $rc -ne 0 ]; then
	echo "hvpeer-bench -t FAILED (exit status $rc)"
	failed=1
else
	figure() { sed -n "s/.*figures:.* $2=\([0-9.]*\).*/\1/p" "$T/bench-$1.out"; }
	for f in grant_p50_ms grant_p99_ms raw_p50_ms; do
		p=$(figure plain $f) t=$(figure tls $f)
		[ -n "$p" ] && [ -n "$t" ] &&
			awk -v f="$f" -v p="$p" -v t="$t" 'BEGIN { printf "  %-13s plain %.3f ms   TLS %.3f ms   TLS / plain %.2fx\n", f, p, t, (p > 0 ? t / p : 0) }'
	done
fi
echo

# ---- daemons ----------------------------------------------------------------

if command -v python3 >/dev/null 2>&1; then
	read -r PORT[1] PORT[2] PORT[3] PORT[4] < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
fi
if [ -z "${PORT[3]:-}" ]; then
	base=$((20000 + RANDOM % 30000))
	PORT=([1]=$base [2]=$((base + 1)) [3]=$((base + 2)) [4]=$((base + 3)))
fi

sock() { echo "$T/n$1.sock"; }

start_node() {
	local i=$1 extra=()
	case $i in
	1) extra=(--bootstrap) ;;
	4) extra=(--bootstrap --libvirt-uri test:///default) ;; # see section 3
	2) extra=(--join "127.0.0.1:${PORT[1]}") ;;
	3) extra=(--join "127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]}") ;;
	esac
	"$HVPEERD" --name "n$i" --data-dir "$T/n$i" --listen "127.0.0.1:${PORT[i]}" \
		--socket "$T/n$i.sock" --election-timeout $ET --heartbeat-timeout $HB \
		--log-level info "${extra[@]}" >>"$T/n$i.log" 2>&1 &
	PID[i]=$!
}

# q I [TIMEOUT_MS]: `hvpeer --json status` on node I's socket; sets OUT, RC,
# QUORUM (0/1), LNAME (leader's name or ""), TERM, VOTERS (members with
# role voter).
q() {
	OUT=$("$HVPEER" --socket "$T/n$1.sock" --timeout "${2:-2000}" --json status 2>/dev/null)
	RC=$?
	QUORUM=0
	LNAME=
	[[ $OUT =~ \"quorum\":[[:space:]]*true ]] && QUORUM=1
	if [[ $OUT =~ \"leader\":[[:space:]]*\{[[:space:]]*\"name\":[[:space:]]*\"([^\"]*)\" ]]; then
		LNAME=${BASH_REMATCH[1]}
	fi
	TERM=0
	[[ $OUT =~ \"term\":[[:space:]]*([0-9]+) ]] && TERM=${BASH_REMATCH[1]}
	local rest=$OUT
	VOTERS=0
	while [[ $rest =~ \"role\":[[:space:]]*\"voter\" ]] && [ $VOTERS -lt 100 ]; do
		VOTERS=$((VOTERS + 1))
		rest=${rest#*"${BASH_REMATCH[0]}"}
	done
}

# stable SECONDS: wait until every node answers with quorum, 3 voters and the
# same leader; sets LEADER (index). Returns 1 on timeout.
stable() {
	local end i l ok n=0
	now_us
	end=$((NOW + $1 * 1000000))
	while [ $n -lt 2000 ]; do
		n=$((n + 1))
		ok=1
		l=
		for i in 1 2 3; do
			q "$i"
			if [ $RC -ne 0 ] || [ $QUORUM -ne 1 ] || [ $VOTERS -ne 3 ] || [ -z "$LNAME" ] ||
				{ [ -n "$l" ] && [ "$l" != "$LNAME" ]; }; then
				ok=0
				break
			fi
			l=$LNAME
		done
		if [ $ok = 1 ] && [[ $l =~ ^n([123])$ ]]; then
			LEADER=${BASH_REMATCH[1]}
			return 0
		fi
		now_us
		[ "$NOW" -ge "$end" ] && return 1
		sleep 0.05
	done
	return 1
}

show_logs() {
	local i
	for i in 1 2 3; do
		echo "--- n$i log (last 15 lines) ---"
		tail -n 15 "$T/n$i.log" 2>/dev/null
	done
}

echo "=== 2. three hvpeerd processes on 127.0.0.1 (election-timeout $ET ms, heartbeat $HB ms) ==="
echo "  ports ${PORT[1]} ${PORT[2]} ${PORT[3]}, data in $T"
now_us
t0=$NOW
for i in 1 2 3; do
	start_node "$i"
done
if ! stable 60; then
	echo "  the cluster did not reach 3 voters with a leader within 60 s"
	show_logs
	exit 1
fi
now_us
printf '  cluster formed (3 voters, every node answers with quorum): %.0f ms\n' \
	"$(awk -v d=$((NOW - t0)) 'BEGIN { print d / 1000 }')"
echo

# ---- idle RSS and CPU -------------------------------------------------------

echo "=== 3. idle RSS and CPU per daemon (settle 3 s, then a ${IDLE_S} s idle window) ==="
nap 3
stable 20 || echo "  (the cluster was not stable before the idle window)"
hz=$(getconf CLK_TCK)
echo "  (CPU from utime+stime ticks of 1/$hz s: one tick is $(awk -v h="$hz" -v s="$IDLE_S" 'BEGIN { printf "%.2f", 100 / h / s }') % of this window)"
declare -a T0 T1
for i in 1 2 3; do
	ticks "${PID[i]}" && T0[i]=$TICKS
done
now_us
w0=$NOW
nap "$IDLE_S"
now_us
w1=$NOW
for i in 1 2 3; do
	if ! ticks "${PID[i]}"; then
		echo "  n$i: not running"
		failed=1
		continue
	fi
	T1[i]=$TICKS
	rss=$(kib VmRSS "${PID[i]}")
	anon=$(kib RssAnon "${PID[i]}")
	hwm=$(kib VmHWM "${PID[i]}")
	role=follower
	[ "$i" = "$LEADER" ] && role=leader
	awk -v n="n$i" -v r="$role" -v rss="$rss" -v anon="$anon" -v hwm="$hwm" -v dt=$((T1[i] - T0[i])) \
		-v hz="$hz" -v us=$((w1 - w0)) 'BEGIN {
		printf "  %s (%-8s) RSS %6.2f MiB (own memory %5.2f MiB, the rest is shared library text; peak %5.2f MiB)  CPU %5.2f %% (%d ticks of 1/%d s in %.1f s)   target: RSS < 12 MiB, CPU < 0.5 %%\n",
			n, r, rss / 1024, anon / 1024, hwm / 1024, dt / hz / (us / 1e6) * 100, dt, hz, us / 1e6 }'
done
# For reference: a daemon with a hypervisor configured also maps the
# hvpeer-virt module and libvirt's libraries (libvirt's test driver here, so
# no libvirtd is needed; the inventory refresh runs against it).
start_node 4
nap 4
if [ -r "/proc/${PID[4]}/status" ]; then
	awk -v rss="$(kib VmRSS "${PID[4]}")" -v anon="$(kib RssAnon "${PID[4]}")" 'BEGIN {
		printf "  reference: a daemon with --libvirt-uri (test:///default) RSS %6.2f MiB (own memory %5.2f MiB; libvirt, glib, gnutls, icu mapped by the hvpeer-virt module)\n",
			rss / 1024, anon / 1024 }'
	kill "${PID[4]}" 2>/dev/null
	wait "${PID[4]}" 2>/dev/null
	PID[4]=
else
	echo "  reference daemon with --libvirt-uri did not start:"
	tail -n 5 "$T/n4.log"
fi
echo

# ---- hvpeer status latency --------------------------------------------------

echo "=== 4. 'hvpeer status' latency, $STATUS_RUNS runs per socket (exec + request + barrier + answer) ==="
stable 20 || echo "  (the cluster was not stable before the status runs)"
follower=1
[ "$LEADER" = 1 ] && follower=2
for which in follower leader; do
	if [ $which = leader ]; then i=$LEADER; else i=$follower; fi
	: >"$T/status.$which"
	bad=0
	for ((r = 0; r < STATUS_RUNS; r++)); do
		now_us
		a=$NOW
		"$HVPEER" --socket "$T/n$i.sock" --timeout 2000 status >/dev/null 2>&1
		rc=$?
		now_us
		[ $rc -ne 0 ] && bad=$((bad + 1))
		echo $(((NOW - a))) >>"$T/status.$which"
	done
	awk '{ print $1 / 1000 }' "$T/status.$which" >"$T/status.$which.ms"
	read -r p50 p99 max mean n < <(stats "$T/status.$which.ms")
	printf '  via %-8s (n%s): n=%s p50 %s ms  p99 %s ms  max %s ms  mean %s ms%s   target: < 20 ms\n' \
		"$which" "$i" "$n" "$p50" "$p99" "$max" "$mean" \
		"$([ $bad -gt 0 ] && echo " ($bad runs exited non-zero)")"
done
echo

# ---- leader failover --------------------------------------------------------

# kill_and_watch OLD SURVIVOR: kill -9 node OLD at time K0, poll SURVIVOR
# until it names another leader with quorum (sets SEEN=1, NOW) or 10 s pass.
kill_and_watch() {
	local old=$1 surv=$2
	now_us
	K0=$NOW
	kill -9 "${PID[old]}"
	SEEN=0
	POLLS=0
	while [ $POLLS -lt 2000 ]; do
		POLLS=$((POLLS + 1))
		q "$surv" 1000
		now_us
		if [ $QUORUM = 1 ] && [ -n "$LNAME" ] && [ "$LNAME" != "n$old" ]; then
			SEEN=1
			break
		fi
		[ $((NOW - K0)) -ge 10000000 ] && break
		sleep 0.01
	done
	wait "${PID[old]}"
	PID[old]=
}

echo "=== 5. leader failover: kill -9 of the leader, $FAILOVERS times (poll a survivor every 10 ms, up to 10 s) ==="
: >"$T/failover.ms"
: >"$T/rejoin.ms"
misses=0
for ((r = 1; r <= FAILOVERS; r++)); do
	# Fail over from a steady state: a daemon restarted ~100 ms ago already
	# answers with quorum (through the leader) while it is still catching
	# up, and a kill then would measure a back-to-back election. Settle for
	# three election timeouts first.
	[ "$r" -gt 1 ] && nap 1
	if ! stable 30; then
		echo "  run $r: the cluster did not settle within 30 s; stopping here"
		show_logs
		failed=1
		break
	fi
	old=$LEADER
	term0=$TERM
	surv=1
	[ "$old" = 1 ] && surv=2
	# stderr off: bash reports "Killed" for a job it reaps mid-loop.
	kill_and_watch "$old" "$surv" 2>/dev/null
	if [ $SEEN = 1 ]; then
		ms=$(awk -v d=$((NOW - K0)) 'BEGIN { printf "%.1f", d / 1000 }')
		echo "$ms" >>"$T/failover.ms"
		newl="$LNAME (term +$((TERM - term0)))"
	else
		ms=">10000"
		misses=$((misses + 1))
		newl=none
	fi
	# Restart the killed daemon (same data dir) and wait until it serves:
	# its status answers with quorum, forwarded to a leader it knows.
	now_us
	s0=$NOW
	start_node "$old"
	back=0
	for ((p = 0; p < 2000; p++)); do
		q "$old" 1000
		now_us
		if [ $RC = 0 ] && [ $QUORUM = 1 ] && [ -n "$LNAME" ]; then
			back=1
			break
		fi
		[ $((NOW - s0)) -ge 20000000 ] && break
		sleep 0.01
	done
	if [ $back = 1 ]; then
		bms=$(awk -v d=$((NOW - s0)) 'BEGIN { printf "%.1f", d / 1000 }')
		echo "$bms" >>"$T/rejoin.ms"
	else
		bms=">20000"
	fi
	printf '  run %2d: killed n%s, new leader %s after %s ms (%d polls); n%s restarted, serving after %s ms\n' \
		"$r" "$old" "$newl" "$ms" "$POLLS" "$old" "$bms"
done
read -r p50 p99 max mean n < <(stats "$T/failover.ms")
printf '  failover: n=%s p50 %s ms  p99 %s ms  max %s ms%s   target: < 1 s (p99)\n' \
	"$n" "$p50" "$p99" "$max" "$([ $misses -gt 0 ] && echo ", $misses runs with no new leader within 10 s")"
[ "$n" -lt 100 ] 2>/dev/null && echo "  (nearest rank: with fewer than 100 runs, p99 is the max)"
read -r p50 p99 max mean n < <(stats "$T/rejoin.ms")
printf '  restart of the killed daemon until it serves again: n=%s p50 %s ms  max %s ms\n' \
	"$n" "$p50" "$max"
echo

# ---- memory after the runs, clean shutdown ----------------------------------

echo "=== 6. after the runs ==="
stable 20 >/dev/null
for i in 1 2 3; do
	if [ -n "${PID[i]}" ] && [ -r "/proc/${PID[i]}/status" ]; then
		printf '  n%s RSS %.2f MiB\n' "$i" "$(awk -v k="$(kib VmRSS "${PID[i]}")" 'BEGIN { print k / 1024 }')"
	fi
done
# SIGTERM: each daemon should close every handle and exit 0 (it checks
# uv_loop_close()); bounded wait, then the trap's kill -9.
for i in 1 2 3; do
	[ -n "${PID[i]}" ] && kill -TERM "${PID[i]}" 2>/dev/null
done
for i in 1 2 3; do
	[ -n "${PID[i]}" ] || continue
	for ((w = 0; w < 100; w++)); do
		kill -0 "${PID[i]}" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "${PID[i]}" 2>/dev/null; then
		echo "  n$i: still running 5 s after SIGTERM"
		continue
	fi
	wait "${PID[i]}"
	echo "  n$i: exit status $? after SIGTERM"
	PID[i]=
done
errs=$(cat "$T"/n?.log | grep -c -E ' (error|warn): ')
echo "  daemon log lines at warn or error level: $errs"
if [ "$errs" -gt 0 ]; then
	cat "$T"/n?.log | grep -E ' (error|warn): ' | sed -E 's/^[0-9:.]+ //' | sort | uniq -c |
		sort -rn | head -n 10 | sed 's/^/    /'
fi

echo
echo "=== 7. the patch cycle in the lab: coordination overhead per host and handoff (bench/patch.sh) ==="
bash "$(dirname "$0")/patch.sh" "$B"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 77 ] && failed=1
exit $failed

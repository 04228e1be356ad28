#!/bin/bash
# Install what is missing, build, and run the demo: a local 3-peer hvpeer
# cluster on loopback. It shows `hvpeer status`, a quorum-committed pause and
# resume, a fenced lease, a leader killed with kill -9 and the cluster carrying
# on, then stops every daemon cleanly. Nothing leaves 127.0.0.1.
# (The lab of real libvirt hosts replaces this demo in a later release.)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "installing what is missing"
"$top/scripts/setup.sh"
step "building"
"$top/scripts/build.sh" "$top/build" >/dev/null
B=$top/build

work=$(mktemp -d /tmp/hvpeer-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "demo: no free port found" >&2
	exit 1
}

declare -A port
start() { # start NAME [flags]
	local n=$1
	shift
	"$B/hvpeerd" --name "$n" --data-dir "$work/$n" --listen "127.0.0.1:${port[$n]}" \
		--socket "$work/$n.sock" --report-interval 500 "$@" >>"$work/$n.log" 2>&1 &
	pids+=($!)
	eval "pid_$n=$!"
}
hv() { local n=$1; shift; "$B/hvpeer" --socket "$work/$n.sock" "$@"; }
wait_for() { # wait_for SECONDS what cmd...
	local t=$1 what=$2
	shift 2
	for _ in $(seq $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for $what; logs in $work" >&2
	trap - EXIT
	exit 1
}
voters() { hv "$1" --json status | grep -c '"role":"voter"' | grep -qx "$2"; }
has_leader() { hv "$1" --json status | grep -q '"quorum":true'; }

for n in h1 h2 h3; do port[$n]=$(free_port); done

step "starting a 3-peer cluster on loopback (data in $work)"
start h1 --bootstrap
wait_for 10 "h1 to elect itself" has_leader h1
start h2 --join "127.0.0.1:${port[h1]}"
start h3 --join "127.0.0.1:${port[h1]}"
printf 'h2 and h3 join through h1, as standbys, then the leader promotes them\n'
wait_for 20 "3 voters" voters h1 3

step "hvpeer status (asked on h3: followers forward to the leader)"
run hv h3 status

step "pause: committed through Raft, seen everywhere"
run hv h2 pause --reason "demo: storage array firmware upgrade"
run hv h1 lease acquire || printf '(refused while paused, as it should be; exit %s)\n' $?
run hv h3 resume

step "the maintenance lease, fenced by the log index of its grant"
run hv h2 lease acquire
run hv h3 lease acquire || printf '(refused: one host in maintenance at a time; exit %s)\n' $?

step "kill -9 the leader: a new one is elected, the lease survives"
leader=$(hv h1 --json status | sed -n 's/.*"leader":{"name":"\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$leader" ] || leader=$(hv h1 --json status | tr -d ' \n' | sed -n 's/.*"leader":{"name":"\([^"]*\)".*/\1/p')
eval "victim=\$pid_$leader"
printf 'leader is %s (pid %s)\n' "$leader" "$victim"
run kill -9 "$victim"
other=h1
[ "$leader" = h1 ] && other=h2
t0=$(date +%s%N)
wait_for 10 "a new leader" has_leader "$other"
printf 'new leader after %d ms\n' $((($(date +%s%N) - t0) / 1000000))
run hv "$other" lease show
step "the killed peer restarts from its data dir and catches up"
start "$leader"
wait_for 20 "$leader to rejoin" has_leader "$leader"
run hv h2 lease release
run hv "$leader" status

step "stopping the cluster cleanly"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
grep -h 'stopped' "$work"/*.log || true
printf '\ndemo done.\n'

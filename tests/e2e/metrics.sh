#!/usr/bin/env bash
# Prometheus metrics of real hvpeerd processes on 127.0.0.1: three peers
# with --metrics-listen; every scrape parses as the text exposition format;
# one leader among them, all in the same term; a lease acquired and a pause
# show on every node; a refused command counts once, and not again when a
# restart applies the log again; a wrong path is a 404 and a POST a 405; --metrics-listen
# takes a port alone (loopback) and refuses garbage.
#
#   HVPEER_BUILDDIR=/path/to/build bash tests/e2e/metrics.sh
set -u
. "$(dirname "$0")/lib.sh" # binaries, TAP, PID, PORT, e2e_dir, e2e_ports
e2e_dir hvpmet
e2e_ports h1 h2 h3 m1 m2 m3
H1=127.0.0.1:${PORT[h1]}

start() { # NAME ARGS...
	local n=$1
	shift
	"$HVPEERD" --name "$n" --data-dir "$T/$n" --listen "127.0.0.1:${PORT[$n]}" --socket "$T/$n.sock" \
		--report-interval 300 --metrics-listen "${PORT[m${n#h}]}" "$@" </dev/null >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
}
# scrape NODE [PATH [METHOD]]: the answer's status and body, checked as the
# exposition format when 200; prints "STATUS" then the body.
scrape() {
	python3 - "${PORT[m${1#h}]}" "${2:-/metrics}" "${3:-GET}" <<'EOF'
import re, sys, urllib.request, urllib.error
port, path, method = sys.argv[1:4]
try:
    r = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), method=method), timeout=5)
    status, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    print(e.code); sys.exit(0)
print(status)
family, seen = None, set()
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$')
for line in body.splitlines():
    if line.startswith("# HELP "):
        continue
    if line.startswith("# TYPE "):
        family = line.split()[2]
        assert family not in seen, "family twice: " + family
        seen.add(family)
        continue
    m = sample.match(line)
    assert m, "not a sample: " + line
    assert m.group(1) == family or m.group(1).startswith(family + "_"), "outside its family: " + line
print(body, end="")
EOF
}
value() { scrape "$1" | awk -v k="$2 " 'index($0, k) == 1 {print $NF}'; } # NODE SAMPLE

start h1 --bootstrap
start h2 --join "$H1"
start h3 --join "$H1"
three() { test "$("$HVPEER" --socket "$T/h1.sock" --json status 2>/dev/null | grep -o '"role": *"voter"' | wc -l)" = 3; }
wait_for 200 three || nok "three voters"
for h in h1 h2 h3; do
	out=$(scrape $h)
	check "$h: /metrics answers 200 in the exposition format" test "$(head -1 <<<"$out")" = 200
done
roles=$(for h in h1 h2 h3; do scrape $h | grep '^hvpeer_raft_role{' ; done)
check "one leader among the three" test "$(grep -c 'role="leader"' <<<"$roles")" = 1
terms=$(for h in h1 h2 h3; do value $h hvpeer_raft_term; done | sort -u | wc -l)
check "the same term on every node" test "$terms" = 1
"$HVPEER" --socket "$T/h2.sock" lease acquire >/dev/null 2>&1
"$HVPEER" --socket "$T/h3.sock" pause --reason metrics >/dev/null 2>&1
seen_all() { for h in h1 h2 h3; do
	[ "$(value $h 'hvpeer_lease_held{host="h2"}')" = 1 ] && [ "$(value $h hvpeer_paused)" = 1 ] || return 1
done; }
check "the lease of h2 and the pause show on every node" wait_for 50 seen_all
check "h2's lease token is its grant's index (non-zero)" sh -c "test \"\$(echo '$(value h1 'hvpeer_lease_token{host="h2"}')')\" -gt 0"
# A command the state machine refuses (a second lease while h2 holds it)
# counts once on each node that applied it; a restart applies the log's tail
# again, which counts nothing: the counters are this process's.
"$HVPEER" --socket "$T/h3.sock" lease acquire >/dev/null 2>&1
refused() { scrape "$1" | awk '/^hvpeer_commands_refused_total\{/ {n += $NF} END {print n + 0}'; }
counted() { [ "$(refused h1)" -ge 1 ] && [ "$(refused h3)" = "$(refused h1)" ]; }
check "a refused lease counts on h1 and h3 alike" wait_for 50 counted
kill -KILL "${PID[h3]}"
wait "${PID[h3]}" 2>/dev/null
start h3
# (reports commit every 300 ms: h3 catches up with an index read once, not
# with one read after its own)
c0=$(value h1 hvpeer_raft_commit_index)
replayed() { [ "$(value h3 hvpeer_raft_last_applied)" -ge "$c0" ]; }
check "h3 restarted and applied its log again (up to index $c0 at least)" wait_for 100 replayed
check "the replayed refusal is not counted again on h3 ($(refused h3))" test "$(refused h3)" = 0
check "a wrong path: 404" test "$(scrape h1 /nothing | head -1)" = 404
check "a POST: 405" test "$(scrape h1 /metrics POST | head -1)" = 405
check "the metrics listen on loopback" sh -c "ss -Htln | grep -q '127.0.0.1:${PORT[m1]} '"
"$HVPEERD" --name x --data-dir "$T/x" --listen 127.0.0.1:1 --socket "$T/x.sock" --bootstrap \
	--metrics-listen "not a port" >"$T/x.out" 2>&1
check "--metrics-listen garbage: refused at start" grep -q "metrics-listen 'not a port'" "$T/x.out"

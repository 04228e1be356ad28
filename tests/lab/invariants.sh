# The invariants every lab fault test checks (sourced after lib.sh, which
# gives LAB, HVPEER_BUILDDIR, lab, ok, nok, wait_for, state).
#
#   inv_start [HOST...]      record, in the background, `hvpeer --json status`
#                            from every host (default: every lab host) about
#                            every 0.3 s, quorum or not, into $INV_DIR/samples
#   inv_stop                 stop the recorder
#   invariants_check [--version V] [--guests "G1 G2"] [--no-heal]
#       one ok/nok line per invariant:
#       1. never more than max_concurrent hosts holding the lease or in
#          maintenance: every recorded answer of every host, the event
#          history replayed (grants, releases, breaks), and a status asked
#          now of every reachable host;
#       2. fencing tokens strictly increase: each grant's token is its log
#          index, grants in log order carry growing tokens, and last_token
#          never goes back between answers given with quorum;
#       3. no side effect with a stale token: in every hvpeerd log, each fence
#          check that passed ("fence: token T of H is current") names a token
#          granted to H and not released or broken (1 s of slack) before the
#          line; each side effect (a guest moved, the boot bank written,
#          marked good, a reboot, a power cycle) follows a fence check of the
#          same host that passed;
#       4. no guest lost or running twice: each of the guests (--guests, else
#          every guest the lab knows) active on exactly one lab host (virsh
#          through `lab uri`), running there, its heartbeat going on, from
#          that host;
#       5. healed (unless --no-heal): every host booted V (--version), the
#          rollout over with every host done, the line not stopped, no lease
#          held, no host in maintenance.
#   verdict SCENARIO         "# verdict: SCENARIO: PASS (N checks)" or
#                            "# verdict: SCENARIO: FAIL (F of N checks failed)"
#                            over the checks since the previous verdict (or
#                            scenario); returns 1 on FAIL
#   scenario SCENARIO        "# --- SCENARIO", and start counting for its verdict
#   inv_refusals             the fence refusals the last check found in the logs
#
# INV_DIR (default: a new directory under /tmp) holds the samples; INV_SLACK_MS
# (1000) is the slack of the stale-token check; INV_MAX_CONCURRENT overrides
# the allowed holders (default: what the cluster says, at most 16).

INV_DIR=${INV_DIR:-$(mktemp -d /tmp/hvpeer-inv.XXXXXX)}
INV_SLACK_MS=${INV_SLACK_MS:-1000}
INV_REC=
_V_N=0 _V_F=0

inv_hosts() { (cd "$LAB" 2>/dev/null && ls -d h[0-9]* 2>/dev/null | sort -V); }

_inv_status() { # HOST -> one line of JSON (quorum or not), or nothing
	local out
	out=$(timeout 5 "$HVPEER_BUILDDIR/hvpeer" --socket "$LAB/$1/hvpeer.sock" --timeout 2000 --json status 2>/dev/null)
	case $out in "{"*) printf '%s\n' "$out" | tr -d '\n' ;; esac
}

inv_start() {
	local hosts=${*:-$(inv_hosts)}
	mkdir -p "$INV_DIR"
	(
		trap 'exit 0' TERM
		while :; do
			for h in $hosts; do
				j=$(_inv_status "$h")
				[ -n "$j" ] && printf '%s %s %s\n' "$(date +%s%3N)" "$h" "$j"
			done
			sleep 0.3
		done
	) >>"$INV_DIR/samples" 2>/dev/null &
	INV_REC=$!
}

inv_stop() {
	[ -n "$INV_REC" ] || return 0
	kill "$INV_REC" 2>/dev/null
	wait "$INV_REC" 2>/dev/null
	INV_REC=
}

# _inv_check NAME CMD...: ok/nok with CMD's output as the detail.
_inv_check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name${out:+: $(head -n 1 <<<"$out")}"; else nok "$name" "$out"; fi
}

# The python side: reads the samples, the logs and now.json; one mode per check.
_inv_py() { # MODE
	INV_MODE=$1 INV_DIR=$INV_DIR LAB=$LAB INV_SLACK_MS=$INV_SLACK_MS \
		INV_MAX_CONCURRENT=${INV_MAX_CONCURRENT:-} python3 - <<'PY'
import json, os, re, sys, glob, time, calendar
mode = os.environ["INV_MODE"]
d = os.environ["INV_DIR"]
lab = os.environ["LAB"]
slack = int(os.environ["INV_SLACK_MS"])
maxc_env = os.environ.get("INV_MAX_CONCURRENT") or ""

samples = []  # (t_ms, host, status)
for fn in [os.path.join(d, "samples"), os.path.join(d, "now")]:
    try:
        for line in open(fn, errors="replace"):
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            try:
                samples.append((int(parts[0]), parts[1], json.loads(parts[2])))
            except ValueError:
                pass
    except OSError:
        pass
samples.sort(key=lambda s: s[0])

def maxc(s):
    if maxc_env:
        return int(maxc_env)
    return int(s.get("lease", {}).get("max_concurrent", 1) or 1)

# The event history: union of every answer's newest 20, in log order.
events = {}
gaps = []
prev_newest = None
for t, h, s in samples:
    evs = s.get("events", [])  # newest first
    for e in reversed(evs):
        events.setdefault((e["index"], e["text"]), e)
    if s.get("quorum") and evs:
        oldest = min(e["index"] for e in evs)
        newest = max(e["index"] for e in evs)
        if prev_newest is not None and len(evs) >= 20 and oldest > prev_newest:
            gaps.append((prev_newest, oldest))
        prev_newest = newest if prev_newest is None else max(prev_newest, newest)
hist = sorted(events.values(), key=lambda e: e["index"])  # stable: one entry's events in order
allowed = max([maxc(s) for _, _, s in samples] or [1])

GRANT = re.compile(r"lease granted to (\S+) \(token (\d+)\)")
END = re.compile(r"lease (?:released by (\S+) \(token (\d+)\)|of (\S+) \(token (\d+)\) broken by)")

grants = {}   # (host, token) -> grant time
ends = {}     # (host, token) -> end time
for e in hist:
    m = GRANT.search(e["text"])
    if m:
        grants.setdefault((m.group(1), int(m.group(2))), e["time_ms"])
    m = END.search(e["text"])
    if m:
        host = m.group(1) or m.group(3)
        tok = int(m.group(2) or m.group(4))
        ends.setdefault((host, tok), e["time_ms"])
for t, h, s in samples:
    for hd in s.get("lease", {}).get("holders", []):
        grants.setdefault((hd["name"], int(hd["token"])), int(hd.get("granted_ms", 0)))

bad = []
if mode == "concurrency":
    n = 0
    for t, h, s in samples:
        n += 1
        holders = [x["name"] for x in s.get("lease", {}).get("holders", [])]
        inm = [m["name"] for m in s.get("members", []) if m.get("maintenance", "none") != "none"]
        mc = maxc(s)
        if len(holders) > mc or len(set(holders)) != len(holders):
            bad.append("%s at %d: holders %s (max %d)" % (h, t, holders, mc))
        if len(inm) > mc:
            bad.append("%s at %d: in maintenance %s (max %d)" % (h, t, inm, mc))
    # Replay the history: the holders after each log entry (one entry may
    # release the lease and grant it to the next host).
    cur = {}
    gi = 0
    most = 0
    for k, e in enumerate(hist):
        while gi < len(gaps) and e["index"] >= gaps[gi][1]:
            cur = {}  # events may be missing: start over (never a false alarm)
            gi += 1
        m = GRANT.search(e["text"])
        if m:
            cur[m.group(1)] = int(m.group(2))
        m = END.search(e["text"])
        if m:
            cur.pop(m.group(1) or m.group(3), None)
        if k + 1 < len(hist) and hist[k + 1]["index"] == e["index"]:
            continue
        most = max(most, len(cur))
        if len(cur) > allowed:
            bad.append("history at index %d (%s): holders %s, max %d" % (e["index"], e["text"], sorted(cur), allowed))
    if n == 0:
        bad.append("no host's status was recorded")
    if bad:
        print("\n".join(bad[:10])); sys.exit(1)
    print("%d answers from the hosts, %d events replayed (%d gap%s in the history), at most %d holder%s at once, max %d"
          % (n, len(hist), len(gaps), "" if len(gaps) == 1 else "s", most, "" if most == 1 else "s", allowed))
elif mode == "tokens":
    last = 0
    for e in hist:
        m = GRANT.search(e["text"])
        if not m:
            continue
        tok = int(m.group(2))
        if tok != e["index"]:
            bad.append("grant at index %d carries token %d" % (e["index"], tok))
        if tok <= last:
            bad.append("token %d granted after token %d" % (tok, last))
        last = max(last, tok)
    lt, lh = 0, ""
    for t, h, s in samples:
        if not s.get("quorum"):
            continue
        v = int(s.get("lease", {}).get("last_token", 0))
        if v < lt:
            bad.append("last_token %d from %s at %d, after %d from %s" % (v, h, t, lt, lh))
        lt, lh = max(lt, v), h
    if bad:
        print("\n".join(bad[:10])); sys.exit(1)
    print("%d grants, tokens %s" % (len(grants), " ".join(str(k[1]) for k in sorted(grants, key=lambda k: k[1]))))
elif mode == "fencing":
    now = time.time()
    day0 = calendar.timegm(time.gmtime(now)[:3] + (0, 0, 0))
    def log_ms(hms):
        hh, mm, rest = hms.split(":")
        ss, ms = rest.split(".")
        t = (day0 + int(hh) * 3600 + int(mm) * 60 + int(ss)) * 1000 + int(ms)
        if t > now * 1000 + 3600000:
            t -= 86400000
        return t
    TS = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d\d) hvpeerd\S* (\w+): (.*)$")
    FOK = re.compile(r"fence: token (\d+) of (\S+) is current")
    FNO = re.compile(r"fence: token (\d+) of (\S+) refused \((\w+)\)")
    SIDE = re.compile(r"moving \S+: \S+ -> \S+|power-cycling this host through its BMC|rebooting with '|: apply: ok|: exit-maint: ok")
    n_ok = n_no = n_side = 0
    refusals = []
    for fn in sorted(glob.glob(os.path.join(lab, "h*", "hvpeerd.log"))):
        host = os.path.basename(os.path.dirname(fn))
        last_fence = None  # (ok?, token, t)
        for line in open(fn, errors="replace"):
            m = TS.match(line.rstrip("\n"))
            if not m:
                continue
            t = log_ms(m.group(1))
            msg = m.group(3)
            f = FOK.search(msg)
            if f:
                n_ok += 1
                tok, who = int(f.group(1)), f.group(2)
                last_fence = (True, tok, t)
                if (who, tok) not in grants:
                    bad.append("%s %s: token %d passed a fence but was never seen granted to %s" % (host, m.group(1), tok, who))
                elif (who, tok) in ends and ends[(who, tok)] + slack < t:
                    bad.append("%s %s: token %d passed a fence %d ms after that lease ended" % (host, m.group(1), tok, t - ends[(who, tok)]))
                continue
            f = FNO.search(msg)
            if f:
                n_no += 1
                last_fence = (False, int(f.group(1)), t)
                refusals.append("%s %s token %s %s" % (host, m.group(1), f.group(1), f.group(3)))
                continue
            if SIDE.search(msg):
                n_side += 1
                if last_fence is None or not last_fence[0]:
                    bad.append("%s %s: a side effect without a passed fence check before it: %s" % (host, m.group(1), msg))
                elif t - last_fence[2] > 600000:
                    bad.append("%s %s: a side effect %d s after the last fence check: %s" % (host, m.group(1), (t - last_fence[2]) // 1000, msg))
    with open(os.path.join(d, "refusals"), "w") as out:
        out.write("\n".join(refusals) + ("\n" if refusals else ""))
    if bad:
        print("\n".join(bad[:10])); sys.exit(1)
    print("%d fence checks passed with a current token, %d refused, %d side effects each after a passed check" % (n_ok, n_no, n_side))
PY
}

# inv_refusals: the fence refusals found by the last check, one a line:
# "HOST HH:MM:SS.mmm token T ERROR".
inv_refusals() { cat "$INV_DIR/refusals" 2>/dev/null; }

# Every reachable host's status now, into the samples the checks read.
_inv_now() {
	local h j
	: >"$INV_DIR/now"
	for h in $(inv_hosts); do
		j=$(_inv_status "$h")
		[ -n "$j" ] && printf '%s %s %s\n' "$(date +%s%3N)" "$h" "$j" >>"$INV_DIR/now"
	done
	test -s "$INV_DIR/now" || { echo "no host answered"; return 1; }
	echo "$(wc -l <"$INV_DIR/now") hosts answered"
}

# inv_guests_ok "G1 G2 ...": each active on exactly one host, running, with
# a heartbeat that goes on from that host. A live migration in flight shows
# the guest on two hosts (the incoming one paused) for about a second, and
# one may start between two looks: the whole look is taken again, up to 6
# times 1 s apart, before a guest counts as lost or twice.
inv_guests_ok() {
	local try out
	for try in 1 2 3 4 5 6; do
		out=$(_inv_guests_once "$1") && { echo "$out"; return 0; }
		sleep 1
	done
	echo "$out"
	return 1
}

_inv_guests_once() {
	local gs=$1 h g n where bad=0 uri up why=
	declare -A on=() cnt=() st=() b0=()
	for h in $(inv_hosts); do
		uri=$(lab uri "$h" 2>/dev/null) || continue
		up=$(timeout 10 virsh -q -c "$uri" list --name 2>/dev/null) || { why="$why$h: libvirt does not answer (down); "; continue; }
		for g in $up; do
			cnt[$g]=$((${cnt[$g]:-0} + 1))
			on[$g]="${on[$g]:-}$h "
			st[$g]=$(timeout 10 virsh -q -c "$uri" domstate "$g" 2>/dev/null | head -n 1)
		done
	done
	for g in $gs; do
		n=${cnt[$g]:-0}
		if [ "$n" != 1 ]; then
			why="$why$g is active on $n hosts (${on[$g]:-none}); "
			bad=1
		elif [ "${st[$g]}" != running ]; then
			why="$why$g on ${on[$g]}is ${st[$g]}; "
			bad=1
		fi
		b0[$g]=$(lab guest heartbeat "$g" 2>/dev/null | awk '{print $1}')
	done
	[ $bad = 0 ] || { echo "$why"; return 1; }
	sleep 2.5
	for g in $gs; do
		read -r n where _ < <(lab guest heartbeat "$g" 2>/dev/null)
		if [ -z "${n:-}" ] || [ -z "${b0[$g]}" ] || [ "$n" -le "${b0[$g]}" ]; then
			why="$why$g: no new heartbeat (${b0[$g]:-none} -> ${n:-none}); "
			bad=1
		elif [ "$where " != "${on[$g]}" ]; then
			why="$why$g: heartbeat from $where, libvirt ran it on ${on[$g]}; "
			bad=1
		fi
	done
	[ $bad = 0 ] || { echo "$why"; return 1; }
	echo "$(wc -w <<<"$gs") guests, each running on one host, heartbeats going on"
}

# inv_healed VERSION: every host booted VERSION, the rollout over, every host
# done, not paused, no lease, nobody in maintenance (asked with quorum).
inv_healed() {
	local v
	v=$(state "(sorted(set(m['version'] for m in d['members'] if m['role'] != 'removed')), d['rollout']['active'], sorted(set(h['phase'] for h in d['rollout']['hosts'])), d['pause']['paused'], len(d['lease']['holders']), sorted(m['name'] for m in d['members'] if m['maintenance'] != 'none'))") ||
		{ echo "no answer with quorum"; return 1; }
	[ "$v" = "(['$1'], False, ['done'], False, 0, [])" ] || { echo "versions, rollout active, phases, paused, holders, in maintenance: $v"; return 1; }
	echo "every host runs $1, rollout over, not paused, lease free"
}

invariants_check() {
	local version="" guests="" heal=1
	while [ $# -gt 0 ]; do
		case $1 in
		--version) version=$2; shift 2 ;;
		--guests) guests=$2; shift 2 ;;
		--no-heal) heal=0; shift ;;
		*) echo "invariants_check: unknown option $1" >&2; return 2 ;;
		esac
	done
	[ -n "$guests" ] || guests=$(lab guest list 2>/dev/null | awk 'NR > 1 && $1 != "-" { print $1 }' | sort -u | tr '\n' ' ')
	_inv_now >/dev/null
	_inv_check "invariant: never more than the allowed hosts hold the lease or are in maintenance" _inv_py concurrency
	_inv_check "invariant: fencing tokens strictly increase" _inv_py tokens
	_inv_check "invariant: no side effect with a stale token" _inv_py fencing
	_inv_check "invariant: no guest lost or running twice" inv_guests_ok "$guests"
	if [ $heal = 1 ]; then
		if [ -n "$version" ]; then
			_inv_check "invariant: healed" inv_healed "$version"
		else
			nok "invariant: healed" "invariants_check: no --version given"
		fi
	fi
}

scenario() {
	echo "# --- $1"
	_V_N=$N _V_F=$FAIL
}

verdict() {
	local n=$((N - _V_N)) f=$((FAIL - _V_F))
	_V_N=$N _V_F=$FAIL
	if [ $f = 0 ]; then
		echo "# verdict: $1: PASS ($n checks)"
	else
		echo "# verdict: $1: FAIL ($f of $n checks failed)"
		return 1
	fi
}

# Shell helpers shared by the benchmarks (bench/run.sh, bench/scale.sh).
# Sourced by bash; nothing here starts or stops anything.

# nap SECONDS: a sleep that a signal interrupts at once (bash runs traps
# only between foreground commands, but during 'wait').
nap() {
	sleep "$1" &
	wait $!
}

# now_us: the wall clock in microseconds, in NOW (no fork).
now_us() {
	local t=$EPOCHREALTIME
	NOW=$((10#${t%.*} * 1000000 + 10#${t#*.}))
}

# stats FILE: "p50 p99 max mean n" of the numbers in FILE (one per line),
# nearest-rank percentiles.
stats() {
	sort -g "$1" | awk '
		{ v[NR] = $1; s += $1 }
		function rank(p,   k) { k = int(p / 100 * NR); if (k < p / 100 * NR) k++; if (k < 1) k = 1; return v[k] }
		END {
			if (NR == 0) { print "- - - - 0"; exit }
			printf "%.3f %.3f %.3f %.3f %d\n", rank(50), rank(99), v[NR], s / NR, NR
		}'
}

# ticks PID: utime+stime in clock ticks, in TICKS (fields 14 and 15 of
# /proc/PID/stat; the command name in field 2 may hold spaces, so split
# after its ')').
ticks() {
	local s
	s=$(<"/proc/$1/stat") || return 1
	s=${s##*) }
	read -r -a f <<<"$s"
	TICKS=$((f[11] + f[12]))
}

# kib FIELD PID: a "FIELD: N kB" line of /proc/PID/status, in KiB.
kib() {
	local line
	while read -r line; do
		if [[ $line =~ ^$1:[[:space:]]+([0-9]+) ]]; then
			echo "${BASH_REMATCH[1]}"
			return
		fi
	done <"/proc/$2/status"
}

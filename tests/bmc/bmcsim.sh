#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# bmcsim.sh: a simulated BMC for tests and the lab. OpenIPMI's ipmi_sim (Debian
# package openipmi) speaks real RMCP+ (IPMI 2.0 lanplus) on a UDP port of
# 127.0.0.1 (or $BMCSIM_ADDR) and delegates power control to a "chassis
# command" that plays the host behind it.
#
#   bmcsim.sh start DIR CHASSIS-COMMAND
#       Make DIR (must not exist, or be empty) the BMC's directory and start
#       ipmi_sim in it; print the UDP port once the BMC answers a real IPMI
#       session (hvpeer-bmc status). DIR gets:
#         creds        the credentials file (mode 600) for hvpeer-bmc/hvpeerd
#         port, addr, sim.pid, sim.out, lan.conf, sim.emu, state/
#         cpu_temp.val, p12v.val  the sensor values ipmi_sim polls every 1 s
#                      (raw: degrees C; tenths of a volt)
#       ipmi_sim runs "CHASSIS-COMMAND get power" (it must print power:0 or
#       power:1 at once), "... set power 0|1", "set reset 1" and "set shutdown
#       1", with BMCSIM_DIR=DIR in the environment. The command must be quick
#       (ipmi_sim waits for it, single-threaded) and must not leave a process
#       holding its stdout. Any command works: lab/hvpeer-lab gives its own,
#       which crashes and boots a lab host.
#   bmcsim.sh stop [--keep-host] DIR
#       Stop ipmi_sim (SIGTERM, SIGKILL after 5 s), then power the host off
#       through the chassis command unless --keep-host (the host outlives the
#       BMC, as a real server does).
#   bmcsim.sh chassis DIR get|set ...
#       A chassis command that plays a host: a detached process (bmcsim.sh
#       host DIR) that publishes sane sensor values when it boots, zeroes the
#       12 V rail when it stops, and leaves DIR/host.pid while it runs. Use
#       "bmcsim.sh chassis DIR" as CHASSIS-COMMAND in tests. While a file
#       DIR/chassis.fail exists, every "set" fails (the BMC answers an error
#       completion code).
#
# Environment for start: BMCSIM_ADDR (the IPv4 address to listen on,
# default 127.0.0.1; it must exist on this machine), BMCSIM_PORT (else a
# free port is picked; a port in use is refused), BMCSIM_USER (admin),
# BMCSIM_PASS (else random; read it from DIR/creds), BMCSIM_PROBE (the
# hvpeer-bmc program; else $HVPEER_BUILDDIR/hvpeer-bmc or the one next to
# this script's build tree), BMCSIM_SDRS (host.sdrs here).
#
# Why the care: ipmi_sim binds a port another process already holds without a
# word, answers no RMCP ping, keeps users changed over IPMI in its state dir,
# and leaks its sockets into the chassis command's children.
set -u

here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")

die() { echo "bmcsim: $*" >&2; exit 1; }

# A process that exists and is not a zombie: the host is detached and
# reparented to PID 1, which may reap it late (containers).
running() {
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$s" ] && [ "${s#Z}" = "$s" ]
}

# ---- the simulated host ----------------------------------------------------

host_main() {
	local D=$1 child=
	echo 45 >"$D/cpu_temp.val"
	echo 121 >"$D/p12v.val"
	echo "$(date +%T.%N) host pid $$ booted" >>"$D/host.log"
	trap 'echo "$(date +%T.%N) host pid $$ stopped" >>"$D/host.log"; echo 0 >"$D/p12v.val";
	      [ -n "$child" ] && kill "$child" 2>/dev/null; rm -f "$D/host.pid"; exit 0' TERM INT
	# The pid file last: whoever sees it may stop us, the trap is set.
	echo $$ >"$D/host.pid.tmp" && mv "$D/host.pid.tmp" "$D/host.pid"
	while :; do
		sleep 1 &
		child=$!
		wait "$child"
	done
}

host_alive() { [ -f "$1/host.pid" ] && running "$(cat "$1/host.pid")"; }

host_start() {
	local D=$1 i=0 fd
	host_alive "$D" && return 0
	rm -f "$D/host.pid"
	(
		# ipmi_sim waits (popen) for EOF on our stdout and leaks its UDP
		# socket and epoll fds into us: the host must hold none of them.
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec setsid "$self" host "$D" </dev/null >/dev/null 2>&1
	) &
	while ! host_alive "$D" && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
	host_alive "$D"
}

host_stop() { # $1 = dir, $2 = TERM or KILL
	local D=$1 pid i=0
	host_alive "$D" || { rm -f "$D/host.pid"; return 0; }
	pid=$(cat "$D/host.pid")
	kill -"$2" "$pid" 2>/dev/null
	while running "$pid" && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
	running "$pid" && kill -KILL "$pid" 2>/dev/null
	# A KILLed host leaves its state behind: do what its trap would have.
	rm -f "$D/host.pid"
	echo 0 >"$D/p12v.val"
	return 0
}

chassis_main() {
	local D=$1 op=$2 p
	shift 2
	echo "$(date +%T.%N) chassis $op $*" >>"$D/chassis.log"
	# Tests make the power controller fail with: touch DIR/chassis.fail
	# (ipmi_sim then answers completion code 0xff).
	if [ "$op" = set ] && [ -e "$D/chassis.fail" ]; then
		echo "simulated power controller failure"
		return 1
	fi
	case $op in
	get)
		for p in "$@"; do
			case $p in
			power) if host_alive "$D"; then echo power:1; else echo power:0; fi ;;
			boot) echo "boot:$(cat "$D/bootdev" 2>/dev/null || echo default)" ;;
			*) echo "Invalid parameter: $p"; return 1 ;;
			esac
		done
		;;
	set)
		while [ $# -ge 2 ]; do
			case $1 in
			power) if [ "$2" = 1 ]; then host_start "$D"; else host_stop "$D" TERM; fi ;;
			reset) host_stop "$D" KILL && host_start "$D" ;;
			shutdown) host_stop "$D" TERM ;;
			boot) echo "$2" >"$D/bootdev" ;;
			identify) : ;;
			*) echo "Invalid parameter: $1"; return 1 ;;
			esac || return 1
			shift 2
		done
		;;
	*) echo "bad op $op"; return 1 ;;
	esac
	return 0
}

# ---- the BMC ---------------------------------------------------------------

find_probe() {
	local p
	for p in "${BMCSIM_PROBE:-}" "${HVPEER_BUILDDIR:-/nonexistent}/hvpeer-bmc" \
		"$here/../../build/hvpeer-bmc"; do
		[ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

# A UDP port of 127.0.0.1 nobody holds, outside the ephemeral range.
pick_port() {
	local port i=0
	while [ $i -lt 200 ]; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
		[ -z "$(ss -Hlun "sport = :$port" 2>/dev/null)" ] && { echo "$port"; return 0; }
		i=$((i + 1))
	done
	return 1
}

# Is the port held by exactly one socket, ipmi_sim's? Catches a port another
# process took at the same time (ipmi_sim would not tell).
port_is_ours() {
	local lines
	lines=$(ss -Hlunp "sport = :$1" 2>/dev/null)
	[ "$(printf '%s\n' "$lines" | grep -c .)" = 1 ] && case $lines in *"pid=$2,"*) true ;; *) false ;; esac
}

write_conf() { # dir port user pass chassis addr
	local D=$1 port=$2 user=$3 pass=$4 chassis=$5 addr=$6 name
	name=bmcsim$port
	rm -rf "$D/state"
	mkdir -p "$D/state/ipmi_sim/$name" || return 1
	# The SDR repository must be in the state dir before ipmi_sim starts
	# (and the MC added with persist_sdr), or "sdr list" is empty.
	sdrcomp -8 -o "$D/state/ipmi_sim/$name/sdr.20.main" "${BMCSIM_SDRS:-$here/host.sdrs}" ||
		return 1
	(
		umask 077
		cat >"$D/lan.conf" <<-EOC
			name "$name"
			set_working_mc 0x20
			  startlan 1
			    addr $addr $port
			    priv_limit admin
			    allowed_auths_callback none md2 md5 straight
			    allowed_auths_user none md2 md5 straight
			    allowed_auths_operator none md2 md5 straight
			    allowed_auths_admin none md2 md5 straight
			    # RMCP+ (lanplus) needs a guid.
			    guid $(printf '%032x' "$port")
			  endlan
			  chassis_control "$chassis"
			  user 2 true "$user" "$pass" admin 10 none md2 md5 straight
		EOC
		# Keep the thresholds the same as host.sdrs's (value5..value0 =
		# UNR UC UNC LNR LC LNC, raw).
		cat >"$D/sim.emu" <<-EOC
			mc_setbmc 0x20
			mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
			sel_enable 0x20 1000 0x0a
			sensor_add 0x20 0 1 0x01 0x01 poll 1000 file "$D/cpu_temp.val"
			sensor_set_threshold 0x20 0 1 readable 011000 0 90 80 0 0 0
			sensor_add 0x20 0 2 0x02 0x01 poll 1000 file "$D/p12v.val"
			sensor_set_threshold 0x20 0 2 readable 011011 0 132 126 0 108 114
			mc_enable 0x20
		EOC
		printf '[default]\nuser = %s\npassword = %s\ncipher-suite = 3\n' "$user" "$pass" \
			>"$D/creds"
	) || return 1
	echo 0 >"$D/cpu_temp.val"
	echo 0 >"$D/p12v.val"
}

stop_sim() { # dir
	local D=$1 pid i=0
	[ -f "$D/sim.pid" ] || return 0
	pid=$(cat "$D/sim.pid")
	kill -TERM "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	rm -f "$D/sim.pid"
}

start_main() {
	local D=$1 chassis=$2 user=${BMCSIM_USER:-admin} pass=${BMCSIM_PASS:-} probe
	local addr=${BMCSIM_ADDR:-127.0.0.1} port pid try=0 i ok
	if ! command -v ipmi_sim >/dev/null || ! command -v sdrcomp >/dev/null; then
		die "ipmi_sim or sdrcomp not found: install the Debian package openipmi"
	fi
	command -v ss >/dev/null || die "ss not found: install the Debian package iproute2"
	probe=$(find_probe) ||
		die "hvpeer-bmc not found: build it (make -C BUILDDIR hvpeer-bmc) and set BMCSIM_PROBE"
	case $D in *[!A-Za-z0-9_./+-]*) die "directory '$D': use only [A-Za-z0-9_./+-] in its path" ;; esac
	case $D in /*) ;; *) D=$PWD/$D ;; esac
	mkdir -p "$D" || die "cannot create $D"
	[ -z "$(ls -A "$D")" ] || die "$D is not empty: give a fresh directory"
	case $user$pass in *[\"\\]*) die "BMCSIM_USER/BMCSIM_PASS: no quotes or backslashes" ;; esac
	case $addr in *[!0-9.]* | "") die "BMCSIM_ADDR '$addr': give an IPv4 address" ;; esac
	[ -n "$pass" ] || pass=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	echo "$chassis" >"$D/chassis.cmd"
	if [ -n "${BMCSIM_PORT:-}" ] && [ -n "$(ss -Hlun "sport = :$BMCSIM_PORT" 2>/dev/null)" ]; then
		die "UDP port $BMCSIM_PORT (BMCSIM_PORT) is in use: $(ss -Hlunp "sport = :$BMCSIM_PORT" 2>/dev/null | head -1)"
	fi
	while [ $try -lt 5 ]; do
		try=$((try + 1))
		port=${BMCSIM_PORT:-$(pick_port)} || die "no free UDP port found"
		write_conf "$D" "$port" "$user" "$pass" "$chassis" "$addr" || die "cannot write the configuration in $D"
		# -n: no console on stdin (else ipmi_sim exits when stdin ends).
		(cd "$D" && BMCSIM_DIR=$D exec ipmi_sim -c lan.conf -f sim.emu -s state -n \
			</dev/null >sim.out 2>&1) &
		pid=$!
		echo "$pid" >"$D/sim.pid"
		i=0 ok=
		while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
			if "$probe" -c "$D/creds" -W opensesspriv -t 500 "$addr:$port" status >/dev/null 2>&1; then
				ok=1
				break
			fi
			i=$((i + 1))
			sleep 0.1
		done
		if [ -n "$ok" ] && port_is_ours "$port" "$pid"; then
			echo "$port" >"$D/port"
			echo "$addr" >"$D/addr"
			echo "$port"
			return 0
		fi
		stop_sim "$D"
		[ -n "${BMCSIM_PORT:-}" ] && break
	done
	die "ipmi_sim in $D did not come up (see $D/sim.out)"
}

stop_main() {
	local keep='' D chassis
	[ "${1:-}" = --keep-host ] && { keep=1; shift; }
	D=${1:?usage: bmcsim.sh stop [--keep-host] DIR}
	stop_sim "$D"
	if [ -z "$keep" ] && [ -f "$D/chassis.cmd" ]; then
		chassis=$(cat "$D/chassis.cmd")
		BMCSIM_DIR=$D sh -c "$chassis set power 0" >/dev/null 2>&1
	fi
	return 0
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) [ $# -eq 2 ] || die "usage: bmcsim.sh start DIR CHASSIS-COMMAND"; start_main "$@" ;;
stop) stop_main "$@" ;;
chassis) [ $# -ge 2 ] || exit 1; chassis_main "$@" ;;
host) host_main "$1" ;;
*) die "usage: bmcsim.sh start DIR CHASSIS-COMMAND | stop [--keep-host] DIR | chassis DIR ..." ;;
esac

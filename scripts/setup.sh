#!/bin/sh
# Install what hvpeer needs to build and test on Debian 12 (bookworm) or 13.
# Safe to run any number of times: it only installs what is missing.
#
# On Debian 12 the stock libraft-dev (0.15) has a Raft safety bug (an entry of
# an earlier term can be committed by counting replicas, the "Figure 8" case),
# so libraft alone is taken from bookworm-backports (>= 0.17.1). Nothing else
# comes from backports: a pin keeps every other package on bookworm.
set -eu

[ "${1:-}" = --lab ] && shift  # the lab needs nothing more than the tests
[ "$(id -u)" = 0 ] || { echo "setup: run as root (it calls apt-get)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive

pkgs="build-essential autoconf automake libtool pkg-config
      libuv1-dev libssl-dev libmsgpack-dev libcmocka-dev libinih-dev
      libjson-c-dev libvirt-dev libxml2-dev liblz4-dev libarchive-dev libtirpc-dev
      libfreeipmi-dev openipmi libcurl4-openssl-dev
      clang clang-format valgrind procps iproute2 ca-certificates python3 openssl tzdata iputils-ping
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
      busybox-static util-linux faketime"

. /etc/os-release
codename=${VERSION_CODENAME:-}

# libFuzzer and clang's sanitizer runtimes (scripts/test.sh's fuzzing stage):
# clang only recommends them, and recommends are not installed.
case $codename in
bookworm) pkgs="$pkgs libclang-rt-14-dev" ;;
trixie) pkgs="$pkgs libclang-rt-19-dev" ;;
esac

if [ "$codename" = bookworm ]; then
	src=/etc/apt/sources.list.d/hvpeer-bookworm-backports.sources
	pin=/etc/apt/preferences.d/hvpeer-libraft-backports
	if ! grep -rqs '^Suites:.*bookworm-backports\|^deb .* bookworm-backports' \
		/etc/apt/sources.list /etc/apt/sources.list.d/; then
		uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
		[ -n "$uri" ] || uri=http://deb.debian.org/debian
		cat >"$src" <<EOT
# Added by hvpeer's scripts/setup.sh: libraft >= 0.17.1 only (see $pin).
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
		rm -f /var/lib/apt/hvpeer-updated
	fi
	if [ ! -f "$pin" ]; then
		cat >"$pin" <<EOT
# Added by hvpeer's scripts/setup.sh: take only libraft from bookworm-backports.
Package: libraft*
Pin: release n=bookworm-backports
Pin-Priority: 500

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
EOT
		rm -f /var/lib/apt/hvpeer-updated
	fi
fi

missing=
for p in $pkgs libraft-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
# An old libraft (0.15 from bookworm proper) counts as missing.
if pkg-config --exists raft 2>/dev/null && ! pkg-config --atleast-version=0.17.1 raft; then
	missing="$missing libraft-dev"
fi

if [ -n "$missing" ]; then
	if [ ! -f /var/lib/apt/hvpeer-updated ] || [ -n "$(find /var/lib/apt/hvpeer-updated -mmin +720)" ]; then
		apt-get update -q
		touch /var/lib/apt/hvpeer-updated
	fi
	echo "setup: installing:$missing"
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi

v=$(pkg-config --modversion raft 2>/dev/null || echo none)
if ! pkg-config --atleast-version=0.17.1 raft; then
	echo "setup: libraft $v is too old (need >= 0.17.1); on Debian 12 install libraft-dev from bookworm-backports" >&2
	exit 1
fi
echo "setup: all dependencies present (libraft $v)"

#!/usr/bin/env bash
# Sets a Debian 12 host up for den: packages from Debian, the lxcbr0 bridge.
# Safe to run again; installs only what is missing. Run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "host-setup: run as root (sudo $0)" >&2
	exit 1
fi

# ruby: den init --from runs Vagrantfiles with it (and its tests need it).
pkgs=(lxc lxc-dev liblxc-common debootstrap pkg-config gcc zstd xz-utils iproute2 openssh-client openssh-server ruby)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "host-setup: installing ${missing[*]}"
	# Packages must not start services on this host while they install
	# (openssh-server would start sshd on port 22).
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	[ "$made_policy" = 1 ] && rm -f "$policy"
fi

# The bridge: lxc-net makes lxcbr0 (10.0.3.1/24) with dnsmasq and NAT.
if ! ip -4 addr show dev lxcbr0 2>/dev/null | grep -q inet; then
	if [ "$(cat /proc/1/comm)" = systemd ]; then
		systemctl start lxc-net
	else
		/usr/libexec/lxc/lxc-net start
	fi
fi
# An idle bridge shows "DOWN" (no machine attached yet): print what matters.
echo "host-setup: bridge lxcbr0 at $(ip -4 -o addr show dev lxcbr0 | awk '{print $4}' | head -1)"

if [ ! -x /usr/local/go/bin/go ] && ! command -v go >/dev/null; then
	echo "host-setup: Go is not installed (den builds with Go >= 1.26: https://go.dev/dl/)" >&2
	exit 1
fi
echo "host-setup: ready"

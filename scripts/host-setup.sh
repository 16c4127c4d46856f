#!/usr/bin/env bash
# Sets a Debian 12 host up for den: packages from Debian, the lxcbr0 bridge,
# the lxcfs daemon.
# Safe to run again; installs only what is missing. Run as root.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "host-setup: run as root (sudo $0)" >&2
	exit 1
fi

# ruby: den init --from runs Vagrantfiles with it (and its tests need it).
# nftables, dnsmasq-base: a project's own network (network = "project").
# btrfs-progs: the tests make a btrfs filesystem (mkfs.btrfs) for the
# btrfs store; den itself needs none of it (it uses the kernel's ioctls).
pkgs=(lxc lxc-dev liblxc-common lxcfs debootstrap pkg-config gcc zstd xz-utils iproute2 openssh-client openssh-server ruby nftables dnsmasq-base btrfs-progs)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "host-setup: installing ${missing[*]}"
	apt_install --no-install-recommends "${missing[@]}"
fi

# The bridge: lxc-net makes lxcbr0 (10.0.3.1/24) with dnsmasq and NAT.
# A host whose lxc-net ran once can keep the bridge and its address after
# dnsmasq is gone (a snapshot of a running host, a killed process group):
# machines then get no DHCP lease, so the bridge counts as up only while
# lxc-net's dnsmasq lives. lxc-net stop kills the pid in its pid file, so a
# stale one is removed first: that pid may belong to another process now.
lxcnet() {
	if [ "$(cat /proc/1/comm)" = systemd ]; then
		systemctl "$1" lxc-net
	else
		/usr/libexec/lxc/lxc-net "$1"
	fi
}
dnsmasq_pid=$(cat /run/lxc/dnsmasq.pid 2>/dev/null || true)
dnsmasq_live() {
	[ -n "$dnsmasq_pid" ] && [ "$(cat /proc/"$dnsmasq_pid"/comm 2>/dev/null)" = dnsmasq ]
}
if ! ip -4 addr show dev lxcbr0 2>/dev/null | grep -q inet; then
	lxcnet start
elif ! dnsmasq_live; then
	echo "host-setup: lxcbr0 is up but lxc-net's dnsmasq is not running: restarting lxc-net"
	rm -f /run/lxc/dnsmasq.pid
	if [ -e /run/lxc/network_up ]; then lxcnet stop; fi
	lxcnet start
fi
# An idle bridge shows "DOWN" (no machine attached yet): print what matters.
echo "host-setup: bridge lxcbr0 at $(ip -4 -o addr show dev lxcbr0 | awk '{print $4}' | head -1)"

# lxcfs: machines see their own memory, CPUs and uptime in free, top and
# /proc (its package's hook in LXC's common.conf.d mounts them while the
# daemon runs). Where systemd is not PID 1 it is started as its init script
# does, with the pid file (/run/lxcfs.pid) that the package's upgrades
# signal to reload it in place (a restart would break running machines).
# A mount whose daemon died is cleared first; machines that were running
# then need a restart (den reload) to see their limits again.
lxcfs_mounted() { grep -q ' /var/lib/lxcfs .* - fuse.lxcfs ' /proc/self/mountinfo; }
if lxcfs_mounted && ! stat /var/lib/lxcfs/proc/meminfo >/dev/null 2>&1; then
	echo "host-setup: lxcfs's mount is dead (its daemon ended): unmounting it; running machines need 'den reload'" >&2
	umount -l /var/lib/lxcfs
fi
if ! lxcfs_mounted; then
	if [ "$(cat /proc/1/comm)" = systemd ]; then
		systemctl start lxcfs || true # den works without it (see below)
	else
		# What /etc/init.d/lxcfs start does, but its OOM adjustment is
		# best effort here (some VMs refuse it, which stops that script),
		# and a pid file naming a dead (or unreaped) lxcfs is dropped.
		pid=$(cat /run/lxcfs.pid 2>/dev/null || true)
		state=$(awk '/^State:/ { print $2 }' "/proc/${pid:-none}/status" 2>/dev/null || true)
		if [ -n "$pid" ] && { [ -z "$state" ] || [ "$state" = Z ]; }; then
			rm -f /run/lxcfs.pid
		fi
		start-stop-daemon --start --quiet --background --make-pidfile --pidfile /run/lxcfs.pid \
			--name lxcfs --startas /usr/bin/lxcfs -- /var/lib/lxcfs || true
		echo -1000 2>/dev/null >"/proc/$(cat /run/lxcfs.pid)/oom_score_adj" || true
	fi
	for _ in $(seq 50); do
		lxcfs_mounted && break
		sleep 0.1
	done
fi
if lxcfs_mounted; then
	echo "host-setup: lxcfs runs (pid $(cat /run/lxcfs.pid 2>/dev/null || echo '?')) at /var/lib/lxcfs"
else
	echo "host-setup: lxcfs did not start: machines will show the host's memory in free and top" >&2
fi

if [ ! -x /usr/local/go/bin/go ] && ! command -v go >/dev/null; then
	echo "host-setup: Go is not installed (den builds with Go >= 1.26: https://go.dev/dl/)" >&2
	exit 1
fi
echo "host-setup: ready"

#!/usr/bin/env bash
# Sets up the LXD server den's LXD tests use: Debian's lxd, a daemon
# started by hand (no systemd needed) whose traffic stays on this machine,
# initialised from a preseed with an explicit bridge subnet, and an HTTPS
# listener on 127.0.0.1 for the "remote" tests. Safe to run again: it does
# only what is missing. Run as root.
#
# Never 'lxd init --minimal' nor 'ipv4.address: auto' here: LXD's subnet
# picker pings and dials addresses outside the machine. And LXD fetches
# instance types from the internet at every start: the daemon gets
# http(s)_proxy pointing at a closed loopback port, so nothing leaves.
#
#   DEN_LXD_SUBNET   lxdbr0's address (default 10.213.77.1/24)
#   DEN_LXD_HTTPS    the HTTPS listener (default 127.0.0.1:8443)
#   DEN_LXD_UIDS     uids (space-separated) whose files synced folders map
#                    1:1 into guests (root:UID:1 in /etc/subuid and
#                    /etc/subgid, see README); default "1234" (the tests')
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "lxd-setup: run as root (sudo $0)" >&2
	exit 1
fi

subnet=${DEN_LXD_SUBNET:-10.213.77.1/24}
https=${DEN_LXD_HTTPS:-127.0.0.1:8443}
uids=${DEN_LXD_UIDS:-1234}
dead_proxy=http://127.0.0.1:9
pidfile=/run/den-lxd.pid
log=/var/log/lxd/lxd.log

# 1. The package, without letting its services start.
if ! dpkg-query -W -f='${Status}' lxd 2>/dev/null | grep -q "install ok installed"; then
	echo "lxd-setup: installing lxd"
	apt_install lxd
fi

# 2. Synced folders map their owner's uid into the guest with raw.idmap,
#    which newuidmap allows only for ids root is given in /etc/subuid and
#    /etc/subgid. LXD reads those files when it starts, so they come first.
changed_ids=0
for f in /etc/subuid /etc/subgid; do
	touch "$f"
	for uid in $uids; do
		if ! grep -qx "root:$uid:1" "$f"; then
			echo "root:$uid:1" >>"$f"
			changed_ids=1
		fi
	done
done

running() {
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
		[ "$(cat /proc/"$(cat "$pidfile")"/comm 2>/dev/null)" = lxd ]
}

# 3. The daemon, started by hand as /etc/init.d/lxd would, its pid
#    recorded. A daemon that runs without the new id ranges is restarted
#    (by its recorded pid) so that it reads them.
if running && [ "$changed_ids" = 1 ]; then
	echo "lxd-setup: restarting lxd (pid $(cat "$pidfile")) to read the new /etc/subuid entries"
	lxd shutdown --timeout 60 || kill "$(cat "$pidfile")"
	for _ in $(seq 100); do running || break; sleep 0.1; done
fi
if ! running; then
	if [ -S /var/lib/lxd/unix.socket ] && lxd waitready --timeout=1 2>/dev/null; then
		echo "lxd-setup: an lxd den did not start answers on /var/lib/lxd/unix.socket; stop it first" >&2
		exit 1
	fi
	mkdir -p /var/log/lxd
	echo "lxd-setup: starting lxd (log $log)"
	https_proxy=$dead_proxy http_proxy=$dead_proxy HTTPS_PROXY=$dead_proxy HTTP_PROXY=$dead_proxy no_proxy= \
		setsid /usr/bin/lxd --group lxd --logfile="$log" </dev/null >>/var/log/lxd/daemon.out 2>&1 &
	echo $! >"$pidfile"
	if ! lxd waitready --timeout=60; then
		echo "lxd-setup: lxd did not become ready; see $log" >&2
		exit 1
	fi
fi

# 4. Initialise from a preseed, once: a dir pool and lxdbr0 on an explicit
#    subnet, without NAT (guests need no way out) and without IPv6.
if ! lxc storage show default >/dev/null 2>&1 || ! lxc network show lxdbr0 >/dev/null 2>&1; then
	echo "lxd-setup: initialising lxd (lxdbr0 $subnet, dir pool)"
	lxd init --preseed <<EOF
config:
  core.https_address: "$https"
  images.auto_update_interval: "0"
networks:
- name: lxdbr0
  type: bridge
  config:
    ipv4.address: $subnet
    ipv4.nat: "false"
    ipv6.address: none
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
    eth0: {name: eth0, network: lxdbr0, type: nic}
EOF
fi
if [ "$(lxc config get core.https_address)" != "$https" ]; then
	lxc config set core.https_address "$https"
fi
echo "lxd-setup: ready (pid $(cat "$pidfile"), $(lxc network get lxdbr0 ipv4.address) on lxdbr0, https $https)"

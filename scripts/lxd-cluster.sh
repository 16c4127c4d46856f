#!/usr/bin/env bash
# A cluster of two LXD daemons on this machine, for den's cluster tests:
# each member in its own network (and mount) namespace with its own
# LXD_DIR, joined with a token, as LXD's own test suite builds clusters
# (test/includes/clustering.sh). Run as root.
#
#   lxd-cluster.sh up DIR     make it; DIR (empty or missing) holds
#                             everything, and DIR/env what tests need
#   lxd-cluster.sh down DIR   stop the daemons, remove the namespaces and
#                             links made by up (by the names and pids it
#                             recorded in DIR), and DIR itself
#
# Network: a host bridge (10.214.11.1/24) joins, through a veth pair per
# member, a bridge br0 inside each member's namespace that holds the
# member's address (10.214.11.10N). Instances join br0 (an unmanaged
# bridge, the same on both members), so machines on different members
# share one L2 segment and den's addresses (and /etc/hosts) work across
# it. Each member's address also answers DNS (a dnsmasq that knows no
# name: den points guests at their gateway, and a resolver that gets no
# answer makes every ssh login wait for PAM's lookups). Nothing is routed
# off the machine; the daemons get a dead loopback proxy, so LXD's
# start-up fetch of instance types fails locally.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ "$(id -u)" -ne 0 ] || [ -z "$dir" ] || { [ "$cmd" != up ] && [ "$cmd" != down ]; }; then
	echo "usage (as root): $0 up|down DIR" >&2
	exit 2
fi
dead_proxy=http://127.0.0.1:9
net=10.214.11

down() {
	[ -d "$dir" ] || return 0
	for n in 2 1; do
		if [ -S "$dir/node$n/unix.socket" ] && [ -s "$dir/node$n.pid" ]; then
			LXD_DIR=$dir/node$n timeout 60 lxd shutdown --timeout 50 >/dev/null 2>&1 || true
		fi
		if [ -s "$dir/node$n.pid" ]; then
			pid=$(cat "$dir/node$n.pid")
			if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = lxd ]; then kill -9 "$pid" 2>/dev/null || true; fi
		fi
		if [ -s "$dir/dns$n.pid" ]; then
			pid=$(cat "$dir/dns$n.pid")
			if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dnsmasq ]; then kill -9 "$pid" 2>/dev/null || true; fi
		fi
		if [ -s "$dir/ns$n.pid" ]; then
			pid=$(cat "$dir/ns$n.pid")
			if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = sleep ]; then kill -9 "$pid" 2>/dev/null || true; fi
		fi
	done
	if [ -s "$dir/names" ]; then
		# shellcheck disable=SC1091
		. "$dir/names"
		for l in "$veth1" "$veth2" "$bridge"; do
			[ -e "/sys/class/net/$l" ] && ip link del "$l" 2>/dev/null || true
		done
	fi
	# The daemons' files (instances' rootfs are owned by shifted uids).
	rm -rf --one-file-system "$dir"
}

if [ "$cmd" = down ]; then
	down
	exit 0
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
chmod 0711 "$dir" # the containers' root users walk through it to their rootfs
trap 'echo "lxd-cluster: failed; cleaning up" >&2; down' ERR
id=$(printf '%04x' $((RANDOM % 65536)))
bridge=dcl${id}br veth1=dcl${id}m1 veth2=dcl${id}m2
printf 'bridge=%s\nveth1=%s\nveth2=%s\n' "$bridge" "$veth1" "$veth2" >"$dir/names"

ip link add "$bridge" type bridge
ip addr add "$net.1/24" dev "$bridge"
ip link set "$bridge" up

for n in 1 2; do
	# A namespace pair (network, mount) held open by a sleeping process,
	# with its own /sys so LXD sees the namespace's network devices.
	unshare -m -n /bin/sh -s "$dir/ns$n.pid" <<'EOF'
set -e
mount --make-rprivate /
mount --move /sys /mnt
mount -t sysfs sysfs /sys
mount --move /mnt/fs/cgroup /sys/fs/cgroup
umount -l /mnt
umount -l /proc
mount -t proc proc /proc
setsid sleep infinity </dev/null >/dev/null 2>&1 &
echo $! >"$1"
EOF
	nspid=$(cat "$dir/ns$n.pid")
	veth=$veth1
	[ "$n" = 2 ] && veth=$veth2
	ip link add "$veth" type veth peer name "${veth}p"
	ip link set "${veth}p" netns "$nspid"
	ip link set "$veth" master "$bridge" up
	nsenter -t "$nspid" -n -m /bin/sh -s "${veth}p" "$net.10$n" <<'EOF'
set -e
ip link set lo up
ip link add br0 type bridge
ip link set "$1" name eth0
ip link set eth0 master br0 up
ip addr add "$2/24" dev br0
ip link set br0 up
EOF
	nsenter -t "$nspid" -n -m dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --local=/#/ \
		--listen-address="$net.10$n" --bind-interfaces --except-interface=lo --pid-file="$dir/dns$n.pid"
	mkdir -p "$dir/node$n"
	chmod 0711 "$dir/node$n"
	nsenter -t "$nspid" -n -m env LXD_DIR="$dir/node$n" \
		https_proxy=$dead_proxy http_proxy=$dead_proxy HTTPS_PROXY=$dead_proxy HTTP_PROXY=$dead_proxy no_proxy=$net.0/24 NO_PROXY=$net.0/24 \
		setsid /usr/bin/lxd --group lxd --logfile="$dir/node$n/lxd.log" </dev/null >"$dir/node$n.out" 2>&1 &
	echo $! >"$dir/node$n.pid"
	LXD_DIR=$dir/node$n lxd waitready --timeout=60
done

# node1 starts the cluster: a dir pool, and a default profile whose eth0
# joins br0. No managed network: LXD's bridges would be one per member.
LXD_DIR=$dir/node1 lxd init --preseed <<EOF
config:
  core.https_address: "$net.101:8443"
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
    eth0: {name: eth0, nictype: bridged, parent: br0, type: nic}
cluster:
  server_name: node1
  enabled: true
EOF

# node2 joins with a token.
token=$(LXD_DIR=$dir/node1 lxc cluster add --quiet node2)
cert=$(sed 's/^/    /' "$dir/node1/cluster.crt")
LXD_DIR=$dir/node2 lxd init --preseed <<EOF
cluster:
  enabled: true
  server_name: node2
  server_address: "$net.102:8443"
  cluster_address: "$net.101:8443"
  cluster_certificate: |
$cert
  cluster_token: "$token"
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ""
EOF

cat >"$dir/env" <<EOF
LXD_CLUSTER_SOCKET=$dir/node1/unix.socket
LXD_CLUSTER_URL=https://$net.101:8443
LXD_CLUSTER_SUBNET=$net.0/24
EOF
trap - ERR
echo "lxd-cluster: node1 ($net.101) and node2 ($net.102) up in $dir"

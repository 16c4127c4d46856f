#!/usr/bin/env bash
# Prints den's figures beside the raw LXC floor, medians over ROUNDS rounds
# (default 5), all in one run on the same box. Run as root after
# scripts/test.sh has built and cached the test box (or set DEN_TEST_BOX).
# When this host's LXD answers (scripts/lxd-setup.sh), the same steps on
# provider "lxd" (dir pool) follow, beside raw 'lxc launch' / 'lxc exec',
# and den on the same server as a remote over HTTPS (DEN_BENCH_LXD=0 skips
# them).
#
#   den up        new machine from a cached box until ssh answers (den's own
#                 start-up, create, keys, start, ssh handshake)
#   floor         the same box by hand: overlay clone + lxc-start until the
#                 OpenSSH client runs `true` (the shell floor)
#   boot CPU      CPU-seconds the container's cgroup used (cpuacct.usage, or
#                 cpu.stat's usage_usec on cgroup v2) from start until den
#                 up returned, and until the guest went idle (no 2 ms of CPU
#                 in 0.25 s, at most 5 s)
#   stores        the overlay store (DEN_HOME on this host's disk) against
#                 the btrfs store (a DEN_HOME on a loop-mounted btrfs image,
#                 made here with mkfs.btrfs) and the overlay store on that
#                 btrfs (reflink copies): up of a new machine, snapshot save
#                 and restore of a machine that wrote 500 MB
#
#   lxd           provider "lxd" on this host's LXD (socket) and on the same
#                 server as a remote, beside raw lxc launch/exec/stop/delete
#                 (when LXD answers; DEN_BENCH_LXD=0 leaves it out)
#
# ONLY=stores or ONLY=lxd runs just that part, ONLY=main the rest.
#
# The box is DEN_TEST_BOX, else the one scripts/test.sh cached for the
# current recipe ($DEN_CI_CACHE, default /var/cache/den-ci).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
rounds=${ROUNDS:-5}

go build -tags urfave_cli_no_docs -o bin/den ./cmd/den
den=$PWD/bin/den
boxfile=${DEN_TEST_BOX:-${DEN_CI_CACHE:-/var/cache/den-ci}/debian-bookworm-$("$den" box build --recipe-hash debian/bookworm).box}
[ -s "$boxfile" ] || { echo "bench: no box file $boxfile for this recipe; run scripts/test.sh first or set DEN_TEST_BOX" >&2; exit 1; }

work=$(mktemp -d /var/tmp/den-bench-XXXXXX)
chmod 711 "$work" # unprivileged machines' roots pass through the LXC path
export DEN_HOME=$work/home
lxcpath=$DEN_HOME/machines
btrfs_mnt=$work/btrfs
btrfs_loop=
lxd=0
if [ "${DEN_BENCH_LXD:-1}" != 0 ] && [ -S /var/lib/lxd/unix.socket ] && lxc info >/dev/null 2>&1; then
	lxd=1
fi
raw_prefix=den-bench-raw-$$
cleanup() {
	# den destroys its machines (and unmounts what it mounted for them in
	# /run/den/mnt); the raw floor's containers are LXC's own.
	for p in "$work"/bench-*; do [ -d "$p" ] && (cd "$p" && "$den" destroy -f >/dev/null 2>&1) || true; done
	for p in "$work"/bbench-*; do [ -d "$p" ] && (cd "$p" && DEN_HOME=$btrfs_mnt/home "$den" destroy -f >/dev/null 2>&1) || true; done
	for c in $(lxc-ls -P "$lxcpath" 2>/dev/null); do lxc-stop -P "$lxcpath" -n "$c" -k >/dev/null 2>&1 || true; done
	if [ -n "$btrfs_loop" ]; then
		umount "$btrfs_mnt" || umount -l "$btrfs_mnt" || true
		losetup -d "$btrfs_loop" || true
	fi
	if [ "$lxd" = 1 ]; then
		for d in "$work"/lxd-*; do [ -d "$d" ] && (cd "$d" && "$den" destroy -f >/dev/null 2>&1 || true); done
		for c in $(lxc list -c n --format csv "^$raw_prefix" 2>/dev/null); do lxc delete -f "$c" >/dev/null 2>&1 || true; done
		[ -n "${bench_cert:-}" ] && lxc config trust remove "$bench_cert" >/dev/null 2>&1 || true
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
"$den" box add debian/bookworm "$boxfile" >/dev/null
rootfs=$(ls -d "$DEN_HOME"/boxes/debian-VAGRANTSLASH-bookworm/*/lxc/rootfs | head -1)

now() { date +%s.%N; }
declare -A t
add() { t[$1]+="$2 "; }
median() { tr ' ' '\n' <<<"${t[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) printf "%.3f", a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2}'; }
diff() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
timeit() { local key=$1; shift; local a b; a=$(now); "$@" >/dev/null; b=$(now); add "$key" "$(diff "$a" "$b")"; }
spread() { tr ' ' '\n' <<<"${t[$1]}" | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR>1) printf "%.3f–%.3f", lo, hi}'; }
row() { printf '%-44s %10s   %s\n' "$1" "$(median "$2")" "$(spread "$2")"; }

# cpu_ns CONTAINER: nanoseconds of CPU the container's processes used so far.
cpu_ns() {
	local v1=/sys/fs/cgroup/cpuacct/lxc.payload.$1/cpuacct.usage
	local v2=/sys/fs/cgroup/lxc.payload.$1/cpu.stat
	if [ -r "$v1" ]; then
		cat "$v1"
	elif [ -r "$v2" ]; then
		awk '$1 == "usage_usec" { print $2 * 1000 }' "$v2"
	else
		echo 0
	fi
}
# bootcpu KEY CONTAINER: records the container's CPU-seconds now under KEY
# and, once it went idle, under KEY-idle.
bootcpu() {
	local a b n=0
	a=$(cpu_ns "$2")
	add "$1" "$(awk -v a="$a" 'BEGIN { printf "%.4f", a / 1e9 }')"
	while [ $n -lt 20 ]; do
		sleep 0.25
		b=$(cpu_ns "$2")
		[ $((b - a)) -lt 2000000 ] && break
		a=$b
		n=$((n + 1))
	done
	add "$1-idle" "$(awk -v a="$b" 'BEGIN { printf "%.4f", a / 1e9 }')"
}
container_of() { "$den" status --json "$@" | sed -n 's/.*"container": "\(.*\)".*/\1/p'; }

# Project folders belong to a user, as a developer's do (an unprivileged
# machine maps the owner to its login user; root-owned ones are read-only).
owned() { mkdir -p "$1"; printf "$2" >"$1/den.hcl"; chown -R 1234:1234 "$1"; }
section() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }

if section main; then
proj=$work/bench-project
owned "$proj" 'box = "debian/bookworm"\nmemory = "512M"\n'

for i in $(seq "$rounds"); do
	cd "$proj"
	timeit up "$den" up
	container=$(container_of)
	bootcpu bootcpu "$container"
	"$den" ssh-config --host den-bench >"$work/ssh_config"
	for j in 1 2 3; do timeit ssh "$den" ssh -c true; done
	for j in 1 2 3; do timeit openssh ssh -F "$work/ssh_config" den-bench true; done
	for j in 1 2 3; do timeit status "$den" status; done
	for j in 1 2 3; do timeit lxcinfo lxc-info -P "$lxcpath" -n "$container" -s; done
	for j in 1 2 3; do timeit version "$den" version; done
	for j in 1 2 3; do timeit exec "$den" exec -- true; done
	for j in 1 2 3; do timeit attach lxc-attach -P "$lxcpath" -n "$container" -- true; done
	timeit halt "$den" halt
	timeit restart "$den" up
	"$den" halt >/dev/null
	timeit destroy "$den" destroy -f
	cd - >/dev/null
done

# Provisioning: a no-op shell provisioner over the ssh round trip.
prov=$work/bench-provision
owned "$prov" 'box = "debian/bookworm"\nprovision "shell" {\n  inline = ["true"]\n}\n'
cd "$prov"
"$den" up --no-provision >/dev/null
for i in $(seq "$rounds"); do
	timeit provision "$den" provision
	timeit sshtrue "$den" ssh -c true
done
"$den" destroy -f >/dev/null
cd - >/dev/null

# Several machines: three in parallel against one.
multi=$work/bench-multi
owned "$multi" 'box = "debian/bookworm"\nmachine "a" {}\nmachine "b" {}\nmachine "c" {}\n'
cd "$multi"
for i in $(seq "$rounds"); do
	timeit up1 "$den" up a
	"$den" destroy -f a >/dev/null
	timeit up3 "$den" up
	"$den" destroy -f >/dev/null
done
cd - >/dev/null

# Privileged against unprivileged (den's default: an id range of its own,
# idmapped layers and /den), alternating, the same box and den.hcl else.
privp=$work/bench-privileged
owned "$privp" 'box = "debian/bookworm"\nprivileged = true\n'
unprivp=$work/bench-unprivileged
owned "$unprivp" 'box = "debian/bookworm"\n'
for i in $(seq "$rounds"); do
	for kind in priv unpriv; do
		if [ $kind = priv ]; then cd "$privp"; else cd "$unprivp"; fi
		timeit "new$kind" "$den" up
		"$den" halt >/dev/null
		timeit "restart$kind" "$den" up
		timeit "halt$kind" "$den" halt
		"$den" destroy -f >/dev/null
		cd - >/dev/null
	done
done

# The raw LXC floor: the same overlay over the same box, keys written into
# the upper layer by hand, lxc-start, then OpenSSH until `true` runs. Its
# config clears the post-stop hook that Debian's lxcfs adds to every
# container (it sleeps 0.5 s at each stop), as den's machines do.
key=$work/floor_key
ssh-keygen -q -t ed25519 -N '' -f "$key"
ssh-keygen -q -t ed25519 -N '' -f "$work/floor_host"
for i in $(seq "$rounds"); do
	name=den-bench-floor-$i
	ip=10.0.3.$((230 + i))
	a=$(now)
	dir=$lxcpath/$name
	mkdir -p "$dir/delta0/home/den/.ssh" "$dir/delta0/etc/ssh"
	cp "$key.pub" "$dir/delta0/home/den/.ssh/authorized_keys"
	cp "$work/floor_host" "$dir/delta0/etc/ssh/ssh_host_ed25519_key"
	cat >"$dir/config" <<CFG
lxc.include = /usr/share/lxc/config/common.conf
lxc.hook.post-stop =
lxc.apparmor.profile = unconfined
lxc.rootfs.path = overlay:$rootfs:$dir/delta0
lxc.uts.name = $name
lxc.net.0.type = veth
lxc.net.0.link = lxcbr0
lxc.net.0.flags = up
lxc.net.0.name = eth0
lxc.net.0.hwaddr = 00:16:3e:00:03:$(printf %02x $((230 + i)))
lxc.net.0.ipv4.address = $ip/24 10.0.3.255
lxc.net.0.ipv4.gateway = 10.0.3.1
CFG
	lxc-start -P "$lxcpath" -n "$name"
	until ssh -q -i "$key" -o BatchMode=yes -o ConnectTimeout=1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "den@$ip" true 2>/dev/null; do sleep 0.02; done
	b=$(now)
	add floor "$(diff "$a" "$b")"
	bootcpu floorcpu "$name"
	a=$(now); lxc-stop -P "$lxcpath" -n "$name" -k; b=$(now)
	add floorstop "$(diff "$a" "$b")"
	rm -rf --one-file-system "$dir"
done

fi # main

# The stores: a machine that wrote 500 MB, snapshot save and restore
# (--no-start: the swap alone), and up of a new machine, on the overlay
# store (this host's disk), the btrfs store and the overlay store on btrfs,
# alternating in each round.
if section stores; then
	mkdir -p "$btrfs_mnt"
	truncate -s 8G "$work/btrfs.img"
	mkfs.btrfs -q "$work/btrfs.img" >/dev/null
	btrfs_loop=$(losetup -f --show "$work/btrfs.img")
	mount "$btrfs_loop" "$btrfs_mnt"
	chmod 711 "$btrfs_mnt"
	mkdir -m 711 "$btrfs_mnt/home"
	DEN_HOME=$btrfs_mnt/home "$den" box add debian/bookworm "$boxfile" >/dev/null
	printf '\nstores on this host: %s is on %s; btrfs on a loop-mounted image in it\n' "$work" "$(stat -f -c %T "$work")"
	for kind in overlay btrfs obtrfs; do
		case $kind in
		overlay) owned "$work/bench-store-$kind" 'box = "debian/bookworm"\n' ;;
		*) owned "$work/bbench-store-$kind" 'box = "debian/bookworm"\n' ;;
		esac
	done
	store_env() {
		case $1 in
		overlay) echo "DEN_HOME=$DEN_HOME" ;;
		btrfs) echo "DEN_HOME=$btrfs_mnt/home" ;;
		obtrfs) echo "DEN_HOME=$btrfs_mnt/home DEN_STORAGE=overlay" ;;
		esac
	}
	store_dir() { if [ "$1" = overlay ]; then echo "$work/bench-store-$1"; else echo "$work/bbench-store-$1"; fi; }
	# The first machine of a box on btrfs makes the box's subvolume (a
	# reflink copy of its rootfs), once.
	cd "$(store_dir btrfs)"
	a=$(now); env $(store_env btrfs) "$den" up >/dev/null; b=$(now)
	t[firstbtrfs]=$(diff "$a" "$b")
	env $(store_env btrfs) "$den" destroy -f >/dev/null
	cd - >/dev/null
	for i in $(seq "$rounds"); do
		for kind in overlay btrfs obtrfs; do
			cd "$(store_dir $kind)"
			timeit "up$kind" env $(store_env $kind) "$den" up
			env $(store_env $kind) "$den" ssh -c 'head -c 500M /dev/urandom > ~/big && sync'
			timeit "save$kind" env $(store_env $kind) "$den" snapshot save s1
			env $(store_env $kind) "$den" halt >/dev/null
			timeit "restore$kind" env $(store_env $kind) "$den" snapshot restore s1 --no-start
			env $(store_env $kind) "$den" destroy -f >/dev/null
			cd - >/dev/null
		done
	done
	printf '\nstores, medians of %s rounds (seconds)\n\n' "$rounds"
	printf '%-48s %9s %9s %9s\n' "step" "overlay" "btrfs" "ovl/btrfs"
	printf '%-48s %9s %9s %9s\n' "den up (new machine -> ssh ready)" "$(median upoverlay)" "$(median upbtrfs)" "$(median upobtrfs)"
	printf '%-48s %9s %9s %9s\n' "den snapshot save (machine wrote 500 MB)" "$(median saveoverlay)" "$(median savebtrfs)" "$(median saveobtrfs)"
	printf '%-48s %9s %9s %9s\n' "den snapshot restore --no-start (500 MB)" "$(median restoreoverlay)" "$(median restorebtrfs)" "$(median restoreobtrfs)"
	printf '%-48s %9.3f\n' "first up of a box on btrfs (makes its subvolume)" "${t[firstbtrfs]}"
	printf '(ovl/btrfs: the overlay store on the same btrfs, DEN_STORAGE=overlay: copies are reflinks)\n'
fi # stores

# LXD (dir pool): den on this host's server (socket) and on the same
# server as a remote (HTTPS, ssh over an exec stream; den exec through
# LXD's exec API), beside raw lxc.
if section lxd && [ "$lxd" = 1 ]; then
	token=$(lxc config trust add --name "den-bench-$$" --quiet)
	"$den" remote add benchself https://127.0.0.1:8443 --token "$token" >/dev/null
	bench_cert=$(openssl x509 -in "$DEN_HOME/lxd/client.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
	for kind in local remote; do
		d=$work/lxd-$kind
		mkdir -p "$d"
		if [ "$kind" = local ]; then
			printf 'box = "debian/bookworm"\nmemory = "512M"\nprovider = "lxd"\nlxd {\n  network = "lxdbr0"\n}\n' >"$d/den.hcl"
		else
			printf 'box = "debian/bookworm"\nmemory = "512M"\nprovider = "lxd"\nlxd {\n  remote = "benchself"\n}\nsynced_folder "." {\n  disabled = true\n}\n' >"$d/den.hcl"
		fi
		cd "$d"
		"$den" up >/dev/null # the first up imports the box as an image: not timed
		"$den" destroy -f >/dev/null
		for i in $(seq "$rounds"); do
			timeit "lxd${kind}up" "$den" up
			for j in 1 2 3; do timeit "lxd${kind}ssh" "$den" ssh -c true; done
			for j in 1 2 3; do timeit "lxd${kind}exec" "$den" exec -- true; done
			timeit "lxd${kind}status" "$den" status
			timeit "lxd${kind}halt" "$den" halt
			timeit "lxd${kind}restart" "$den" up
			timeit "lxd${kind}destroy" "$den" destroy -f
		done
		cd - >/dev/null
	done
	image=$(lxc image list -c l --format csv | grep '^den/debian/bookworm/' | head -1)
	for i in $(seq "$rounds"); do
		name=$raw_prefix-$i
		a=$(now)
		lxc launch "$image" "$name" -c limits.memory=512MiB >/dev/null
		until lxc exec "$name" -- true 2>/dev/null; do sleep 0.02; done
		b=$(now)
		add rawlaunch "$(diff "$a" "$b")"
		lxc exec "$name" -- systemctl is-system-running --wait >/dev/null 2>&1 || true
		b=$(now)
		add rawboot "$(diff "$a" "$b")"
		for j in 1 2 3; do timeit rawexec lxc exec "$name" -- true; done
		timeit rawstop lxc stop "$name"
		timeit rawdelete lxc delete "$name"
	done
fi

if section main; then
printf '\nden figures, medians of %s rounds (seconds), box %s\n\n' "$rounds" "$(basename "$boxfile")"
printf '%-44s %10s   %s\n' "step" "median" "min–max"
row "den up (new machine → ssh ready)" up
row "raw LXC floor (clone + lxc-start → OpenSSH)" floor
row "boot CPU-s, den up (to ssh ready)" bootcpu
row "boot CPU-s, den up (until idle)" bootcpu-idle
row "boot CPU-s, raw floor (until idle)" floorcpu-idle
row "den up (stopped machine → ssh ready)" restart
row "den ssh -c true" ssh
row "OpenSSH ssh -F (den ssh-config) true" openssh
row "den status" status
row "raw lxc-info -s" lxcinfo
row "den version (process start-up)" version
row "den exec -- true (no sshd)" exec
row "raw lxc-attach -- true" attach
row "den halt (clean shutdown)" halt
row "raw lxc-stop -k" floorstop
row "den destroy -f (stopped machine)" destroy
row "den provision (one no-op shell provisioner)" provision
row "den ssh -c true (same machine)" sshtrue
row "den up, one machine of three" up1
row "den up, three machines in parallel" up3
awk -v a="$(median up3)" -v b="$(median up1)" 'BEGIN { if (b > 0) printf "%-44s %10.2f\n", "ratio three / one", a / b }'
awk -v a="$(median up)" -v b="$(median floor)" 'BEGIN { if (b > 0) printf "%-44s %10.2f\n", "ratio den up / raw floor", a / b }'
awk -v a="$(median halt)" -v b="$(median floorstop)" 'BEGIN { if (b > 0) printf "%-44s %10.2f\n", "ratio den halt / lxc-stop -k", a / b }'
printf '%-44s %10s\n' "den up, new machine, privileged" "$(median newpriv)"
printf '%-44s %10s\n' "den up, new machine, unprivileged" "$(median newunpriv)"
printf '%-44s %10s\n' "den up, stopped machine, privileged" "$(median restartpriv)"
printf '%-44s %10s\n' "den up, stopped machine, unprivileged" "$(median restartunpriv)"
printf '%-44s %10s\n' "den halt, privileged" "$(median haltpriv)"
printf '%-44s %10s\n' "den halt, unprivileged" "$(median haltunpriv)"
fi # main

if section lxd && [ "$lxd" = 1 ]; then
	printf '\nprovider "lxd" (dir pool), medians of %s rounds (seconds)\n\n' "$rounds"
	printf '%-44s %10s\n' "step" "median"
	printf '%-44s %10s\n' "den up, LXD socket (new machine → ssh ready)" "$(median lxdlocalup)"
	printf '%-44s %10s\n' "den up, LXD remote over HTTPS" "$(median lxdremoteup)"
	printf '%-44s %10s\n' "raw lxc launch → lxc exec true works" "$(median rawlaunch)"
	printf '%-44s %10s\n' "raw lxc launch → systemd finished booting" "$(median rawboot)"
	printf '%-44s %10s\n' "den up, LXD socket (stopped → ssh ready)" "$(median lxdlocalrestart)"
	printf '%-44s %10s\n' "den ssh -c true, LXD socket (TCP)" "$(median lxdlocalssh)"
	printf '%-44s %10s\n' "den ssh -c true, LXD remote (exec stream)" "$(median lxdremotessh)"
	printf '%-44s %10s\n' "den exec -- true, LXD socket (no sshd)" "$(median lxdlocalexec)"
	printf '%-44s %10s\n' "den exec -- true, LXD remote" "$(median lxdremoteexec)"
	printf '%-44s %10s\n' "raw lxc exec true" "$(median rawexec)"
	printf '%-44s %10s\n' "den status, LXD socket" "$(median lxdlocalstatus)"
	printf '%-44s %10s\n' "den halt, LXD socket (clean shutdown)" "$(median lxdlocalhalt)"
	printf '%-44s %10s\n' "raw lxc stop" "$(median rawstop)"
	printf '%-44s %10s\n' "den destroy -f, LXD socket (running)" "$(median lxdlocaldestroy)"
	printf '%-44s %10s\n' "den destroy -f, LXD remote (running)" "$(median lxdremotedestroy)"
	printf '%-44s %10s\n' "raw lxc delete (stopped)" "$(median rawdelete)"
fi

# den serve: the round trip of GET machine state on the socket (goal
# <= 2 ms), and den up of a new machine by a user through the server
# against root's den up (goal: within 5%). A real server process, real
# machines (cmd/den's TestE2EServeBench; it makes and removes a user).
if section main; then
printf '\nden serve, medians of %s rounds\n\n' "$rounds"
DEN_TEST_BOX=$boxfile DEN_BENCH_ROUNDS=$rounds go test -tags denbench -count=1 -timeout 30m -run '^TestE2EServeBench$' -v ./cmd/den | sed -n 's/.*BENCH //p'
fi

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
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
rounds=${ROUNDS:-5}

go build -tags urfave_cli_no_docs -o bin/den ./cmd/den
den=$PWD/bin/den
boxfile=${DEN_TEST_BOX:-$(ls -t /var/cache/den-ci/debian-bookworm-*.box 2>/dev/null | head -1)}
[ -s "$boxfile" ] || { echo "bench: no box file; run scripts/test.sh first or set DEN_TEST_BOX" >&2; exit 1; }

work=$(mktemp -d /var/tmp/den-bench-XXXXXX)
export DEN_HOME=$work/home
lxcpath=$DEN_HOME/machines
lxd=0
if [ "${DEN_BENCH_LXD:-1}" != 0 ] && [ -S /var/lib/lxd/unix.socket ] && lxc info >/dev/null 2>&1; then
	lxd=1
fi
raw_prefix=den-bench-raw-$$
cleanup() {
	for c in $(lxc-ls -P "$lxcpath" 2>/dev/null); do lxc-stop -P "$lxcpath" -n "$c" -k >/dev/null 2>&1 || true; done
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

proj=$work/bench-project
mkdir -p "$proj"
printf 'box = "debian/bookworm"\nmemory = "512M"\n' >"$proj/den.hcl"

for i in $(seq "$rounds"); do
	cd "$proj"
	timeit up "$den" up
	"$den" ssh-config >"$work/ssh_config"
	for j in 1 2 3; do timeit ssh "$den" ssh -c true; done
	for j in 1 2 3; do timeit openssh ssh -F "$work/ssh_config" den-default true; done
	for j in 1 2 3; do timeit status "$den" status; done
	container=$("$den" status --json | sed -n 's/.*"container": "\(.*\)".*/\1/p')
	for j in 1 2 3; do timeit lxcinfo lxc-info -P "$lxcpath" -n "$container" -s; done
	for j in 1 2 3; do timeit version "$den" version; done
	timeit halt "$den" halt
	timeit restart "$den" up
	timeit destroy "$den" destroy -f
	cd - >/dev/null
done

# Provisioning: a no-op shell provisioner over the ssh round trip.
prov=$work/bench-provision
mkdir -p "$prov"
printf 'box = "debian/bookworm"\nprovision "shell" {\n  inline = ["true"]\n}\n' >"$prov/den.hcl"
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
mkdir -p "$multi"
printf 'box = "debian/bookworm"\nmachine "a" {}\nmachine "b" {}\nmachine "c" {}\n' >"$multi/den.hcl"
cd "$multi"
for i in $(seq "$rounds"); do
	timeit up1 "$den" up a
	"$den" destroy -f a >/dev/null
	timeit up3 "$den" up
	"$den" destroy -f >/dev/null
done
cd - >/dev/null

# The raw LXC floor: the same overlay over the same box, keys written into
# the upper layer by hand, lxc-start, then OpenSSH until `true` runs.
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
	a=$(now); lxc-stop -P "$lxcpath" -n "$name" -k; b=$(now)
	add floorstop "$(diff "$a" "$b")"
	rm -rf --one-file-system "$dir"
done

# LXD (dir pool): den on this host's server (socket) and on the same
# server as a remote (HTTPS, ssh over an exec stream), beside raw lxc.
if [ "$lxd" = 1 ]; then
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

printf '\nden figures, medians of %s rounds (seconds), box %s\n\n' "$rounds" "$(basename "$boxfile")"
printf '%-44s %10s\n' "step" "median"
printf '%-44s %10s\n' "den up (new machine → ssh ready)" "$(median up)"
printf '%-44s %10s\n' "raw LXC floor (clone + lxc-start → OpenSSH)" "$(median floor)"
printf '%-44s %10s\n' "den up (stopped machine → ssh ready)" "$(median restart)"
printf '%-44s %10s\n' "den ssh -c true" "$(median ssh)"
printf '%-44s %10s\n' "OpenSSH ssh -F (den ssh-config) true" "$(median openssh)"
printf '%-44s %10s\n' "den status" "$(median status)"
printf '%-44s %10s\n' "raw lxc-info -s" "$(median lxcinfo)"
printf '%-44s %10s\n' "den version (process start-up)" "$(median version)"
printf '%-44s %10s\n' "den halt (clean shutdown)" "$(median halt)"
printf '%-44s %10s\n' "raw lxc-stop -k" "$(median floorstop)"
printf '%-44s %10s\n' "den destroy -f (stopped machine)" "$(median destroy)"
printf '%-44s %10s\n' "den provision (one no-op shell provisioner)" "$(median provision)"
printf '%-44s %10s\n' "den ssh -c true (same machine)" "$(median sshtrue)"
printf '%-44s %10s\n' "den up, one machine of three" "$(median up1)"
printf '%-44s %10s\n' "den up, three machines in parallel" "$(median up3)"
awk -v a="$(median up3)" -v b="$(median up1)" 'BEGIN { if (b > 0) printf "%-44s %10.2f\n", "ratio three / one", a / b }'
if [ "$lxd" = 1 ]; then
	printf '\nprovider "lxd" (dir pool), medians of %s rounds (seconds)\n\n' "$rounds"
	printf '%-44s %10s\n' "step" "median"
	printf '%-44s %10s\n' "den up, LXD socket (new machine → ssh ready)" "$(median lxdlocalup)"
	printf '%-44s %10s\n' "den up, LXD remote over HTTPS" "$(median lxdremoteup)"
	printf '%-44s %10s\n' "raw lxc launch → lxc exec true works" "$(median rawlaunch)"
	printf '%-44s %10s\n' "raw lxc launch → systemd finished booting" "$(median rawboot)"
	printf '%-44s %10s\n' "den up, LXD socket (stopped → ssh ready)" "$(median lxdlocalrestart)"
	printf '%-44s %10s\n' "den ssh -c true, LXD socket (TCP)" "$(median lxdlocalssh)"
	printf '%-44s %10s\n' "den ssh -c true, LXD remote (exec stream)" "$(median lxdremotessh)"
	printf '%-44s %10s\n' "raw lxc exec true" "$(median rawexec)"
	printf '%-44s %10s\n' "den status, LXD socket" "$(median lxdlocalstatus)"
	printf '%-44s %10s\n' "den halt, LXD socket (clean shutdown)" "$(median lxdlocalhalt)"
	printf '%-44s %10s\n' "raw lxc stop" "$(median rawstop)"
	printf '%-44s %10s\n' "den destroy -f, LXD socket (running)" "$(median lxdlocaldestroy)"
	printf '%-44s %10s\n' "den destroy -f, LXD remote (running)" "$(median lxdremotedestroy)"
	printf '%-44s %10s\n' "raw lxc delete (stopped)" "$(median rawdelete)"
fi

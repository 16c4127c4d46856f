#!/usr/bin/env bash
# Builds den's Debian package (scripts/build-deb.sh, lintian included) and
# tests it in a clean Debian 12 chroot: apt-get install ./den_*.deb pulls
# its dependencies, den version, den host check and den validate work,
# remove keeps DEN_HOME, purge keeps it while it holds a machine and
# removes it otherwise, and a purge leaves nothing of den behind.
# scripts/test.sh runs it (CI). Run as root: sudo scripts/test-deb.sh
#
# The chroot (debootstrap --variant=minbase, with den's dependencies
# downloaded but not installed) is cached as a tarball under
# /var/cache/den-ci, keyed by its recipe: this script's chroot function,
# the suite, mirror and architecture, and the package's Depends. The test
# runs in private mount and pid namespaces: its mounts and any process
# started in the chroot end with it, also when it fails or is killed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" -ne 0 ]; then
	echo "test-deb: run as root (sudo $0)" >&2
	exit 1
fi
start=$(date +%s)
cache=${DEN_CI_CACHE:-/var/cache/den-ci}
mirror=${DEN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
arch=$(dpkg --print-architecture)

# Debian's packaging tools, installed when missing (as host-setup.sh
# installs den's own needs).
pkgs=(debhelper lxc-dev pkg-config groff-base lintian debootstrap zstd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "test-deb: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# Leftovers of a run that was killed: folders named after a process that
# is gone (their namespaces, and so their mounts, ended with it).
for d in /var/tmp/den-deb-test.*; do
	[ -d "$d" ] || continue
	pid=${d#/var/tmp/den-deb-test.}
	pid=${pid%%.*}
	if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
		rm -rf --one-file-system "$d"
	fi
done
work=$(mktemp -d "/var/tmp/den-deb-test.$$.XXXXXX")
# Mounts made in the chroot exist only in its namespace: in this one its
# /proc, /sys and /dev are plain folders, so removing it is safe even
# while a namespace still runs.
ns_pid=
cleanup() {
	rm -rf --one-file-system "$work" 2>/dev/null || { sleep 1 && rm -rf --one-file-system "$work"; }
}
stop() {
	if [ -n "$ns_pid" ]; then
		# unshare blocks SIGTERM while it waits for its child; SIGKILL ends it,
		# and its child then gets SIGKILL too (--kill-child).
		kill -KILL "$ns_pid" 2>/dev/null || true
		wait "$ns_pid" 2>/dev/null || true
	fi
	exit 130
}
trap cleanup EXIT
trap stop INT TERM

# in_ns CMD...: runs CMD in private mount and pid namespaces. When it ends
# (or this script is stopped, which kills it) every mount it made and
# every process it started end too (unshare --kill-child).
in_ns() {
	unshare --mount --pid --fork --kill-child --propagation private -- "$@" &
	ns_pid=$!
	local rc=0
	wait "$ns_pid" || rc=$?
	ns_pid=
	return "$rc"
}

scripts/build-deb.sh --output "$work/deb" 2>&1 | { grep -v '^running with root privileges' || true; }
deb=$(ls "$work"/deb/den_*.deb)
version=$(dpkg-deb -f "$deb" Version)
built=$(date +%s)

# make_chroot ROOT DEB: a minimal Debian 12 that starts no services, with
# the packages DEB needs (not DEB itself) in apt's cache, offline from then
# on (the test never runs apt-get update).
make_chroot() {
	local root=$1 deb=$2
	in_ns debootstrap --variant=minbase --arch="$arch" "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
		{ tail -20 "$root.log" >&2; return 1; }
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	cp "$deb" "$root/tmp/"
	in_ns sh -c "
		mount -t proc proc '$root/proc' &&
		chroot '$root' env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --no-install-recommends /tmp/$(basename "$deb")
	" >>"$root.log" 2>&1 || { tail -20 "$root.log" >&2; return 1; }
	rm -f "$root/tmp/$(basename "$deb")"
}

key=$(
	{
		declare -f make_chroot
		echo "$suite $arch $mirror"
		dpkg-deb -f "$deb" Pre-Depends Depends
	} | sha256sum | cut -c1-16
)
tarball=$cache/debian-$suite-chroot-$key.tar.zst
if [ ! -s "$tarball" ]; then
	echo "test-deb: making the Debian $suite chroot (cached as $tarball)"
	mkdir -p "$cache"
	make_chroot "$work/chroot" "$deb"
	tar -C "$work/chroot" --numeric-owner -c . | zstd -q -T0 -3 >"$tarball.$$.tmp"
	find "$cache" -maxdepth 1 -name "debian-$suite-chroot-*.tar.zst" -delete
	mv "$tarball.$$.tmp" "$tarball"
	rm -rf --one-file-system "$work/chroot"
fi
root=$work/root
mkdir "$root"
zstd -q -dc "$tarball" | tar -C "$root" --numeric-owner -x
cp "$deb" "$root/tmp/"
cp -r testdata/example "$root/tmp/example"
ready=$(date +%s)

# The test, in the chroot. It prints what it checks; any failure stops it.
cat >"$root/tmp/test.sh" <<'TEST'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
cd /tmp
deb=$(ls den_*.deb)
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

# snapshot lists every path outside the pseudo and cache folders, and the
# checksum of every file in /etc, to compare the chroot before and after.
snapshot() {
	find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /var/log \
		-o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \) -prune -o -print | sort
	find /var/lib/dpkg/info -name 'den.*' | sort
	find /etc -xdev -type f ! -name ld.so.cache -exec sha256sum {} + | sort -k2
}

check_installed() {
	[ "$(dpkg-query -W -f='${Version}' den)" = "$VERSION" ] || fail "dpkg has den $(dpkg-query -W -f='${Version}' den), not $VERSION"
	out=$(den version)
	echo "$out"
	case "$out" in "den $VERSION (commit $COMMIT, liblxc "*) ;; *) fail "den version: $out" ;; esac
	# The host check must pass: root, LXC's config (from lxc, a dependency),
	# cgroups (/sys is the host's), the bridge (the host's lxcbr0: the chroot
	# shares its network) and debootstrap. lxcfs is only a note: its daemon
	# runs on the host, not in the chroot.
	den host check || fail "den host check"
	out=$(den -C /tmp/example validate) || fail "den validate"
	echo "$out"
	case "$out" in "den.hcl is valid: 1 machine(s)"*) ;; *) fail "den validate: $out" ;; esac
	for f in /usr/bin/den /usr/share/man/man1/den.1.gz /usr/share/man/man1/den-up.1.gz \
		/usr/share/man/man1/den-box-add.1.gz /usr/share/man/man5/den.hcl.5.gz \
		/usr/share/bash-completion/completions/den /usr/share/zsh/vendor-completions/_den \
		/lib/systemd/system/den.service /lib/systemd/system/den.socket \
		/lib/systemd/system/den-autostart.service /etc/init.d/den /etc/init.d/den-autostart \
		/usr/share/doc/den/copyright /usr/share/doc/den/THIRD-PARTY-LICENSES.gz; do
		[ -e "$f" ] || fail "$f is not installed"
	done
	[ "$(den completion bash)" = "$(cat /usr/share/bash-completion/completions/den)" ] || fail "bash completion differs from den completion bash"
	# Shipped disabled: no systemd symlinks, no start links in any runlevel.
	if ls /etc/systemd/system/*/den* /etc/rc[S2345].d/S*den* 2>/dev/null; then
		fail "den's services are enabled after install"
	fi
	getent group den >/dev/null || fail "no group den"
}

echo "test-deb: apt-get install ./$deb"
apt-get install -y -q --no-install-recommends "./$deb" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get install ./$deb"; }
echo "  $(grep -c '^Setting up' /tmp/apt.log) packages set up"
grep '^den: ' /tmp/apt.log | sed 's/^/  /' || true
check_installed
echo "test-deb: the init scripts (hosts without systemd) start and stop, with or without den serve and den autostart"
den_running() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = den ] && return 0
	done
	return 1
}
if den help serve >/dev/null 2>&1; then
	/etc/init.d/den start || fail "/etc/init.d/den start"
	for _ in $(seq 100); do [ -S /run/den/den.sock ] && break; sleep 0.1; done
	[ -S /run/den/den.sock ] || fail "den serve (init script) made no /run/den/den.sock"
	/etc/init.d/den status || fail "/etc/init.d/den status"
	/etc/init.d/den stop || fail "/etc/init.d/den stop"
else
	out=$(/etc/init.d/den start 2>&1) || fail "/etc/init.d/den start on a den without serve: $out"
	case "$out" in *"no 'serve' command"*) ;; *) fail "/etc/init.d/den start on a den without serve: $out" ;; esac
	/etc/init.d/den stop || fail "/etc/init.d/den stop"
fi
! den_running || fail "den runs after /etc/init.d/den stop"
out=$(/etc/init.d/den-autostart start 2>&1) || fail "/etc/init.d/den-autostart start: $out"
out=$(/etc/init.d/den-autostart stop 2>&1) || fail "/etc/init.d/den-autostart stop: $out"
echo "test-deb: reinstall (the upgrade path of the maintainer scripts)"
apt-get install -y -q --reinstall "./$deb" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "reinstall"; }
den version >/dev/null

echo "test-deb: remove and purge keep a DEN_HOME that holds a machine"
mkdir -p /var/lib/den/machines/den-fake-0000000 /var/lib/den/boxes/debian-VAGRANTSLASH-bookworm/1/lxc
echo "lxc.uts.name = fake" >/var/lib/den/machines/den-fake-0000000/config
echo '{}' >/var/lib/den/index.json
home_before=$(find /var/lib/den -printf '%p %s %m\n' | sort | sha256sum)
apt-get remove -y -q den >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "remove"; }
[ ! -e /usr/bin/den ] || fail "/usr/bin/den is left after remove"
[ "$(find /var/lib/den -printf '%p %s %m\n' | sort | sha256sum)" = "$home_before" ] || fail "remove changed /var/lib/den"
apt-get purge -y -q den >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "purge"; }
grep '^den: ' /tmp/apt.log | sed 's/^/  /'
grep -q "den: /var/lib/den holds 1 machine(s): kept" /tmp/apt.log || fail "purge did not say it kept /var/lib/den"
[ "$(find /var/lib/den -printf '%p %s %m\n' | sort | sha256sum)" = "$home_before" ] || fail "purge changed a /var/lib/den that holds a machine"

echo "test-deb: a purge leaves nothing of den behind, and removes a DEN_HOME without machines"
rm -r /var/lib/den/machines/den-fake-0000000
snapshot | grep -v '^/var/lib/den' >/tmp/before
apt-get install -y -q --no-install-recommends "./$deb" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "install again"; }
check_installed >/dev/null
apt-get purge -y -q den >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "purge"; }
grep '^den: ' /tmp/apt.log | sed 's/^/  /'
[ ! -e /var/lib/den ] || fail "purge left /var/lib/den, which held no machine"
snapshot >/tmp/after
if ! diff /tmp/before /tmp/after >/tmp/diff; then
	cat /tmp/diff
	fail "the purge left these differences (< before install, > after purge)"
fi
echo "test-deb: ok"
TEST

echo "test-deb: testing den $version in a clean Debian $suite chroot"
# The commit den version must name, as build-deb.sh takes it from git.
commit=$(git rev-parse HEAD)
case "$(git describe --tags --always --dirty)" in *-dirty) commit+=-dirty ;; esac
in_ns bash -c '
	set -e
	root=$1
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		VERSION="$2" COMMIT="$3" /bin/bash /tmp/test.sh
' test-deb "$root" "$version" "$commit"
end=$(date +%s)
echo "test-deb: $((end - start)) s (package $((built - start)) s, chroot ready $((ready - built)) s, test $((end - ready)) s)"

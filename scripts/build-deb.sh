#!/usr/bin/env bash
# Builds den's Debian package from this checkout with Debian's own tooling
# (dpkg-buildpackage and debhelper; debian/ holds the recipe):
# bin/den_VERSION_ARCH.deb, then checks it with lintian when installed.
# The version comes from git describe, made a valid Debian version (see
# deb_version); den version prints it with the commit.
#   scripts/build-deb.sh [--output DIR] [--no-lintian]
# Needs: apt-get install debhelper lxc-dev pkg-config groff-base (lintian),
# and Go >= 1.26 (/usr/local/go). No root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

out=bin
run_lintian=1
while [ $# -gt 0 ]; do
	case "$1" in
	--output) out=$2; shift 2 ;;
	--no-lintian) run_lintian=0; shift ;;
	*) echo "build-deb: unknown argument $1 (usage: $0 [--output DIR] [--no-lintian])" >&2; exit 2 ;;
	esac
done

# deb_version turns git describe --tags --always --dirty into a Debian
# version that sorts the same way: v1.2.0 -> 1.2.0, v1.2.0-rc1 ->
# 1.2.0~rc1 (before 1.2.0), v1.2.0-5-gabc1234 -> 1.2.0+5.gabc1234, a
# checkout without tags (describe gives the bare hash) -> 0+N.gHASH with N
# the number of commits, and -dirty -> .dirty at the end. No hyphen stays:
# a native package's version has no Debian revision.
deb_version() {
	local d=$1 dirty="" tag n="" hash=""
	case "$d" in *-dirty) dirty=1; d=${d%-dirty} ;; esac
	if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		tag=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
	elif [[ $d =~ ^[0-9a-f]{7,}$ ]]; then
		tag=0 n=$(git rev-list --count HEAD) hash=$d
	else
		tag=$d
	fi
	tag=${tag#v}
	tag=${tag//-/\~}
	tag=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9.+~' '.')
	[[ $tag =~ ^[0-9] ]] || tag=0~$tag
	local extra=()
	[ -n "$n" ] && extra+=("$n.g$hash")
	[ -n "$dirty" ] && extra+=(dirty)
	local v=$tag
	if [ "${#extra[@]}" -gt 0 ]; then
		v+=+$(IFS=.; echo "${extra[*]}")
	fi
	echo "$v"
}

if [ -n "${DEN_VERSION:-}" ]; then
	version=$DEN_VERSION commit=${DEN_COMMIT:-}
elif git rev-parse --git-dir >/dev/null 2>&1; then
	describe=$(git describe --tags --always --dirty)
	version=$(deb_version "$describe")
	commit=$(git rev-parse HEAD)
	case "$describe" in *-dirty) commit+=-dirty ;; esac
else
	echo "build-deb: not a git checkout: set DEN_VERSION (and DEN_COMMIT)" >&2
	exit 1
fi
if ! dpkg --validate-version "$version" 2>/dev/null; then
	echo "build-deb: $version is not a valid Debian version" >&2
	exit 1
fi

missing=$(dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' || true)
if [ -n "$missing" ]; then
	echo "build-deb: missing build dependencies: apt-get install $missing" >&2
	exit 1
fi
if ! command -v go >/dev/null; then
	echo "build-deb: Go is not installed (den builds with Go >= 1.26: https://go.dev/dl/)" >&2
	exit 1
fi

# dpkg-buildpackage works in a copy of the checkout: it writes its
# results beside the source folder, and debian/changelog (the version) is
# made for this build only.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/den-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/den-$version
mkdir "$src"
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar -c --null -T - -f - | tar -x -f - -C "$src"

maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$src/debian/changelog" <<CHANGELOG
den ($version) unstable; urgency=medium

  * Built from git ${describe:-$version}.${commit:+
    Commit $commit.}

 -- $maintainer  $date
CHANGELOG

echo "build-deb: building den $version${commit:+ (commit $commit)}"
(cd "$src" && DEN_VERSION=$version DEN_COMMIT=$commit dpkg-buildpackage -b --no-sign >"$work/build.log" 2>&1) || {
	tail -40 "$work/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (the last lines of its log are above)" >&2
	exit 1
}
mkdir -p "$out"
deb=$(cd "$work" && ls den_"$version"_*.deb)
cp "$work/$deb" "$out/"
echo "build-deb: $out/$deb"

if [ "$run_lintian" = 1 ]; then
	if command -v lintian >/dev/null; then
		lintian --fail-on error,warning --display-info "$work"/den_"$version"_*.changes
	else
		echo "build-deb: lintian is not installed (apt-get install lintian): not checked" >&2
	fi
fi

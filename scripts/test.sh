#!/usr/bin/env bash
# Runs den's whole test suite, end-to-end tests on real containers included:
# sets the host up, builds the test box once (cached by its recipe under
# /var/cache/den-ci), tests the Debian package (scripts/test-deb.sh) and
# runs go test. Run as root: sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

bash scripts/host-setup.sh
# The LXD provider's tests need this host's LXD (installed, started by
# hand, initialised): set DEN_TEST_LXD=skip to leave LXD alone (those
# tests then skip, which fails them under CI=true).
if [ "${DEN_TEST_LXD:-}" != skip ]; then
	bash scripts/lxd-setup.sh
fi
go build -tags urfave_cli_no_docs -o bin/den ./cmd/den

# The test box: made by den's own builder, keyed by its recipe hash.
cache=${DEN_CI_CACHE:-/var/cache/den-ci}
mkdir -p "$cache"
key=$(bin/den box build --recipe-hash debian/bookworm)
boxfile="$cache/debian-bookworm-$key.box"
if [ ! -s "$boxfile" ]; then
	echo "test: building the test box (cached as $boxfile)"
	find "$cache" -maxdepth 1 -name 'debian-bookworm-*.box' -delete
	bin/den box build debian/bookworm --output "$boxfile"
fi
export DEN_TEST_BOX=$boxfile

gofmt_out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$gofmt_out" ]; then
	echo "gofmt would change: $gofmt_out" >&2
	exit 1
fi
go vet ./...
# The Debian package: built, checked by lintian, installed, used, removed
# and purged in a clean Debian 12 chroot (its own cache in $cache).
bash scripts/test-deb.sh
go test -count=1 -timeout 40m "$@" ./...
# Every fuzz target, each for a bounded time (FUZZTIME, default 5s here).
FUZZTIME=${FUZZTIME:-5s} bash scripts/fuzz.sh

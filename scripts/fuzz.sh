#!/usr/bin/env bash
# Runs every Go fuzz target of den (func FuzzXxx in a _test.go file), one
# after another, each for a bounded time: FUZZTIME (a go test -fuzztime
# value, default 20s). Targets may be named to run only those:
#   FUZZTIME=60s scripts/fuzz.sh FuzzBoxFile FuzzLoad
# A failing input makes the script fail; go test keeps it under the
# package's testdata/fuzz/<target>/, where it stays as a regression case
# that every plain 'go test' runs once the bug is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fuzztime=${FUZZTIME:-20s}

# Fuzzing workers that the fuzzer stops may leave their temporary folders:
# give them one of ours, removed at the end.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/den-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# "dir target" pairs, from the sources (go test -list would run TestMain,
# which builds den and sets up the end-to-end tests).
targets=$(git ls-files --cached --others --exclude-standard '*_test.go' 2>/dev/null || find . -name '*_test.go' -not -path './.git/*')
pairs=$(grep -HoE '^func Fuzz[A-Za-z0-9_]*' $targets | sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$|\1 \2|' | sort -u)
if [ -z "$pairs" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

failed=()
while read -r dir target; do
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$target"; then
		continue
	fi
	echo "fuzz: $target in ./$dir for $fuzztime"
	if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "./$dir"; then
		failed+=("$dir $target")
	fi
done <<<"$pairs"

if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all targets ran for $fuzztime without a failure"

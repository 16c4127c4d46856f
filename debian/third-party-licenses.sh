#!/bin/sh
# Writes the copyright and license texts of everything Go links into den
# (its standard library and the modules of the packages it compiles) to
# $1, for /usr/share/doc/den: MIT and BSD licenses ask for their notice in
# every binary copy.
set -eu
out=$1
{
	echo "The den binary holds the Go standard library and these Go modules."
	echo "Each one's license follows, as its module ships it."
	go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/den |
		sort -u >"$out.modules"
	printf '\n==> Go %s (the standard library): %s\n\n' "$(go env GOVERSION)" "$(go env GOROOT)/LICENSE"
	cat "$(go env GOROOT)/LICENSE"
	while read -r path version dir; do
		lic=$(find "$dir" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'COPYING*' -o -iname 'LICENCE*' \) | sort | head -1)
		if [ -z "$lic" ]; then
			echo "third-party-licenses: no license file in $path $version ($dir)" >&2
			exit 1
		fi
		printf '\n==> %s %s\n\n' "$path" "$version"
		cat "$lic"
	done <"$out.modules"
} >"$out.tmp"
rm -f "$out.modules"
mv "$out.tmp" "$out"

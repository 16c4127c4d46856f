#!/usr/bin/env bash
# Builds den from this checkout and installs it for every user: the binary
# in $PREFIX/bin (default /usr/local/bin) and the bash and zsh completions.
# Run as root: sudo scripts/install.sh   (PREFIX=/opt/den scripts/install.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
prefix=${PREFIX:-/usr/local}

if [ ! -x bin/den ] || [ -n "$(find cmd internal box provider provision -name '*.go' -newer bin/den -print -quit)" ]; then
	echo "install: building bin/den"
	go build -tags urfave_cli_no_docs -o bin/den ./cmd/den
fi
install -D -m 0755 bin/den "$prefix/bin/den"
install -d "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions"
bin/den completion bash >"$prefix/share/bash-completion/completions/den"
bin/den completion zsh >"$prefix/share/zsh/site-functions/_den"
echo "install: $prefix/bin/den ($("$prefix/bin/den" version)), completions for bash and zsh"
case ":$PATH:" in
*":$prefix/bin:"*) ;;
*) echo "install: $prefix/bin is not on your PATH; add it (export PATH=$prefix/bin:\$PATH)" ;;
esac

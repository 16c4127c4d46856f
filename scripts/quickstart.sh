#!/usr/bin/env bash
# The main job on a fresh Debian host: set the host up, build den, then on
# testdata/example: up (building the debian/bookworm box when missing),
# ssh -c, halt, destroy. Run as root: sudo scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

bash scripts/host-setup.sh
go build -tags urfave_cli_no_docs -o bin/den ./cmd/den
den=$PWD/bin/den

cd testdata/example
"$den" validate
"$den" up
"$den" ssh -c 'echo "hello from $(hostname), $(id -un) uid $(id -u)"; ls /den'
"$den" status
"$den" halt
"$den" destroy -f
echo
echo "den is built at $den. To put it on PATH: sudo scripts/install.sh (or: sudo install -m 0755 bin/den /usr/local/bin/den)"

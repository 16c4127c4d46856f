#!/usr/bin/env bash
# Builds den from this checkout and installs it for every user: the binary
# in $PREFIX/bin (default /usr/local/bin), the bash and zsh completions and
# the boot-time 'den autostart' (a systemd unit, or an init script).
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

# 'den autostart' at boot and 'den autostart --stop' at shutdown: a systemd
# unit, or an init script where systemd does not run. Without machines
# marked autostart = true it does nothing.
if [ -d /run/systemd/system ]; then
	sed "s|/usr/local/bin/den|$prefix/bin/den|g" dist/den-autostart.service >/etc/systemd/system/den-autostart.service
	chmod 0644 /etc/systemd/system/den-autostart.service
	systemctl daemon-reload
	systemctl enable den-autostart.service
	echo "install: den-autostart.service enabled (brings up the machines marked autostart = true at boot)"
else
	sed "s|^DEN=/usr/local/bin/den$|DEN=$prefix/bin/den|" dist/den-autostart.init >/etc/init.d/den-autostart
	chmod 0755 /etc/init.d/den-autostart
	if command -v update-rc.d >/dev/null; then
		update-rc.d den-autostart defaults
		echo "install: /etc/init.d/den-autostart enabled (brings up the machines marked autostart = true at boot)"
	else
		echo "install: /etc/init.d/den-autostart installed; link it into your runlevels to run it at boot"
	fi
fi
case ":$PATH:" in
*":$prefix/bin:"*) ;;
*) echo "install: $prefix/bin is not on your PATH; add it (export PATH=$prefix/bin:\$PATH)" ;;
esac

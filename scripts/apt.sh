# Sourced by scripts/host-setup.sh and scripts/lxd-setup.sh.
#
# apt_install ARGS...: apt-get update, then apt-get install -y ARGS on this
# host, with no package starting a service while it installs (openssh-server
# would start sshd on port 22, lxd its daemon before den's setup configures
# it). A policy-rc.d that the host already has is left as it is.
apt_install() {
	local policy=/usr/sbin/policy-rc.d made=0 rc=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -q && apt-get install -y -q "$@"; } || rc=$?
	if [ "$made" = 1 ]; then rm -f "$policy"; fi
	return "$rc"
}

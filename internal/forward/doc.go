// Package forward carries traffic from host ports to a machine's guest ports:
// the forward blocks of den.hcl.
//
// A forward block becomes a Rule, host_ip:host -> guest_ip:guest over tcp or
// udp. While a machine runs, den keeps a small forwarder process for it (the
// hidden subcommand "den __forward --pidfile F RULE..."): Listen binds every
// host port, the process then writes its pidfile (WritePidfile) and serves
// until it is told to stop. Spawn starts that process detached from den and
// waits until it is bound; Stop ends it when the machine halts; Running tells
// whether it is still there.
//
// Why a userspace forwarder and not iptables DNAT: it needs no firewall
// changes on the developer's host (no rules to add, to clean up after a crash,
// or to fight with firewalld, ufw or docker over); it works for 127.0.0.1
// without turning on net.ipv4.conf.*.route_localnet or touching any other
// sysctl, which DNAT to a bridge address from loopback would need; and it
// lives and dies with the machine: when the process ends, the ports are
// closed, with nothing left behind in the kernel. The price is a copy through
// userspace, which is irrelevant at development traffic rates (TCP is copied
// with splice(2) where the kernel allows it).
package forward

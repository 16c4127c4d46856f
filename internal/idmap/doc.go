//go:build linux

// Package idmap has what den needs to run a machine unprivileged, in a user
// namespace with an id range of its own: a block of subordinate ids reserved
// for root in /etc/subuid and /etc/subgid and one 65536-id range of it per
// machine, user namespaces held as file descriptors, idmapped bind mounts
// (open_tree, mount_setattr, move_mount), a user namespace pinned on a file
// for LXC's idmap= mount option, and the conversion of an overlay upper
// layer written by a privileged container to one an unprivileged overlay
// reads (user.overlay.* extended attributes).
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_SETUID in the initial
// user namespace) and Linux 5.12 or later for idmapped mounts; overlay over
// idmapped layers needs 5.19.
package idmap

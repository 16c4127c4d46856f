package config

import (
	"fmt"
	"strings"
)

// DefaultBox is the box Template uses when given none.
const DefaultBox = "debian/bookworm"

const template = `# den.hcl: the development machine(s) of this project.
# Settings here apply to every machine; machine blocks below may override them.
# Check this file with 'den validate'. Expressions may use env("NAME") and
# env("NAME", "default").

# Named values for the expressions below, used as local.NAME; a local may use
# the ones written before it.
# locals {
#   base_memory = 512
# }
# memory = "${local.base_memory * 2}M"

# The box the machine is created from; 'den box list' shows the installed ones.
box = %s

# Which versions of the box will do (comma-separated conditions, all must
# hold; ~> 1.2 means >= 1.2, < 2). 'den up' takes the newest installed one
# that matches. Default: any version.
# box_version = ">= 1.2, < 2"

# Where 'den up' gets the box when no matching version is installed: the URL
# of a Vagrant catalog (it picks the newest matching version) or of a box file.
# 'den box outdated' and 'den box update' read the catalog too.
# box_url = "https://example.com/boxes/app.json"

# Memory limit: bytes, or a size with K, M, G or T (powers of 1024).
# Default: no limit.
# memory = "1G"

# Number of CPUs. Default: no limit.
# cpus = 2

# Hostname. Default: the machine's name, or this folder's name when there are
# no machine blocks.
# hostname = "web"

# The engine: "lxc" (this host's LXC, the default) or "lxd" (a local or
# remote LXD server or cluster; see the lxd block below).
# provider = "lxc"

# Host bridge that eth0 joins (provider lxc).
# bridge = "lxcbr0"

# Machines run unprivileged: root in the guest is an unprivileged user of
# this host, with ids no other machine has. nesting = true lets the machine
# run containers itself (LXC, Docker, Podman); privileged = true makes guest
# root this host's root: only for what cannot work otherwise.
# nesting = true
# privileged = true

# Where the machine's filesystem is kept (provider lxc): "overlay" (a layer
# over the box), "btrfs" (a snapshot of the box, snapshots in constant time:
# DEN_HOME must be on btrfs) or "auto" (the default: btrfs when DEN_HOME is on
# btrfs, else overlay). A machine keeps the store it was made with.
# storage = "auto"

# This folder is mounted at /den in the guest. Mount it elsewhere, mount it
# read-only, drop it with disabled = true, or add more folders (host paths are
# relative to this folder, or absolute). type = "rsync" copies the folder
# instead (at up and reload, and with 'den rsync'), as a remote LXD server
# needs; den.hcl and .den/ are never copied.
# synced_folder "." {
#   guest     = "/den"
#   read_only = false
#   disabled  = false
#   # type    = "rsync"
#   # exclude = ["node_modules/"]
# }

# Provisioners run in the guest, in order, on the first 'den up'; 'den provision'
# runs them again. run = "always" runs one on every up, run = "never" only when
# named with --provision-with. A machine's provisioner
# named like one here replaces it. Unnamed ones are called shell-1, file-2 ...
# by their position; 'den provision --provision-with NAME' picks some.
#
# A shell script: inline commands (run with "set -e"), or a script file in
# this folder with arguments. privileged runs it as root with sudo (root in
# the guest may not create files in /den: write there with privileged = false).
# provision "shell" {
#   name       = "deps"
#   inline     = ["apt-get update -q", "apt-get install -y make"]
#   # path     = "scripts/setup.sh"
#   # args     = ["--fast"]
#   env        = { DEBIAN_FRONTEND = "noninteractive" }
#   privileged = true
#   run        = "once"
# }
#
# A host file or folder copied to a guest path (the path of the copy itself).
# provision "file" {
#   source      = "files/gitconfig"
#   destination = "/home/den/.gitconfig"
#   run         = "always"
# }

# Forward a host port on 127.0.0.1 to a guest port.
# forward {
#   guest = 80
#   host  = 8080
# }

# Raw LXC keys, for what den has no setting for (see lxc.container.conf(5)).
# Keys den sets itself (rootfs, mounts, network, memory, cpus ...) are refused.
# lxc {
#   config = {
#     "lxc.apparmor.profile" = "unconfined"
#   }
# }

# How 'den ssh' connects: forward this host's ssh agent (as ssh -A), and pass
# these environment variables of the host on to the guest.
# ssh {
#   forward_agent = true
#   forward_env   = ["LANG", "EDITOR"]
# }

# Commands den runs before or after one of its commands (Vagrant's triggers):
# "before" or "after", then up, halt, reload, destroy, provision, suspend,
# resume or snapshot. run runs on this host as you (under sudo: as the user
# who ran sudo), in this folder, with DEN_MACHINE, DEN_PROJECT and DEN_ADDRESS
# set; run_remote runs in the guest as a shell provisioner does. A failing
# trigger stops the command unless on_error = "continue"; --no-triggers skips
# them. A host script (path) that a machine can write, in a read-write synced
# folder, is refused: use inline commands, or keep the script elsewhere.
# trigger "after" "up" {
#   name = "notify"
#   run {
#     inline = ["echo \"$DEN_MACHINE is up at $DEN_ADDRESS\""]
#   }
#   # run_remote {
#   #   inline     = ["systemctl restart app"]
#   #   privileged = true
#   # }
#   on_error = "continue"
#   # machines = ["web"]
# }

# Bring the machine up when the host boots ('den autostart', which the
# systemd unit or init script in den's dist/ folder runs). Machines of a lower
# autostart_order come up first, those of one order together; den waits
# autostart_delay seconds after each order group.
# autostart       = true
# autostart_order = 0
# autostart_delay = 0

# Where provider "lxd" makes the machine: a remote from 'den remote list'
# ("local", the default, is this host's LXD), an LXD project, profiles, a
# storage pool, the network eth0 joins, a cluster member (or "@group"), and
# raw instance keys and devices for what den has no setting for.
# lxd {
#   remote       = "local"
#   project      = "default"
#   profiles     = ["default"]
#   storage_pool = "default"
#   network      = "lxdbr0"
#   target       = "node1"
#   config       = { "boot.host_shutdown_timeout" = "60" }
#   devices      = { data = { type = "disk", source = "/srv/data", path = "/data" } }
# }

# More machines: with machine blocks, the machines are exactly these blocks;
# each inherits the settings above and may override any of them. The primary
# machine is the one 'den ssh' (and other one-machine commands) picks when
# none is named.
# machine "web" {
#   primary = true
# }
# machine "db" {
#   memory = "512M"
# }
`

// MinimalTemplate returns the den.hcl 'den init --minimal BOX' writes: the
// box line alone.
func MinimalTemplate(box string) []byte {
	if box == "" {
		box = DefaultBox
	}
	return fmt.Appendf(nil, "box = %s\n", hclQuote(box))
}

// Template returns the commented den.hcl that 'den init [BOX]' writes: box
// set to box (DefaultBox when empty), every other setting shown commented.
func Template(box string) []byte {
	if box == "" {
		box = DefaultBox
	}
	return fmt.Appendf(nil, template, hclQuote(box))
}

// hclQuote writes s as an HCL string literal.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, c)
		case (c == '$' || c == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(c)
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// The stores provider lxc may keep a machine's filesystem in (den.hcl's
// storage = "..."):
const (
	// StorageAuto is the default: the store DEN_HOME gets (btrfs when it
	// is on btrfs, else overlay; DEN_STORAGE may say otherwise host-wide).
	// A Machine has it as Storage "".
	StorageAuto = "auto"
	// StorageOverlay is an overlay upper layer over the box.
	StorageOverlay = "overlay"
	// StorageBtrfs is a writable btrfs snapshot of the box's subvolume:
	// DEN_HOME must be on btrfs.
	StorageBtrfs = "btrfs"
)

// storage decodes storage = "..." of a layer.
func (l *loader) storage(ly *layer, attrs hcl.Attributes) {
	a := attrs["storage"]
	if a == nil {
		return
	}
	v, ok := l.value(a, cty.String)
	if !ok {
		return
	}
	switch s := v.AsString(); s {
	case StorageAuto:
		none := ""
		ly.storage, ly.storageRange = &none, a.Expr.Range()
	case StorageOverlay, StorageBtrfs:
		ly.storage, ly.storageRange = &s, a.Expr.Range()
	default:
		l.errorf(a.Expr.Range(), "Invalid storage",
			`storage must be "overlay" (an overlay layer over the box), "btrfs" (a btrfs snapshot of the box: DEN_HOME must be on btrfs) or "auto" (the default: the store DEN_HOME gets), not %q.`, s)
	}
}

// checkStorage refuses storage for a machine of provider lxd, whose
// storage is the server's (lxd { storage_pool }); inherited says the
// setting is the top level's.
func (l *loader) checkStorage(m *Machine, inherited bool) {
	if m.Provider != ProviderLXD || m.StorageRange == (hcl.Range{}) {
		return
	}
	where := ""
	if inherited {
		where = " (a storage at the top level applies to every machine: set it in the blocks of the lxc machines)"
	}
	l.errorf(m.StorageRange, "Storage on LXD",
		`Machine %q has provider "lxd", whose storage is the server's: storage chooses a store for provider "lxc" only%s. Name an LXD storage pool instead: lxd { storage_pool = "..." }.`, m.Name, where)
}

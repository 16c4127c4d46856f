package machine

import (
	"context"
	"fmt"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/provider"
)

// machineStore is the store a created machine's filesystem is in, from a
// provider with several (provider.StoreChooser); "" when the provider has
// one way only or cannot tell.
func machineStore(ctx context.Context, rec *Record, prov provider.Provider) string {
	sc, ok := prov.(provider.StoreChooser)
	if !ok || rec == nil {
		return ""
	}
	store, err := sc.MachineStore(ctx, rec.Container)
	if err != nil {
		return ""
	}
	return store
}

// otherStore reports whether den.hcl asks for a store other than have,
// the created machine's: a store applies when a machine is made, so the
// machine keeps have.
func otherStore(m *Machine, have string) bool {
	return have != "" && m.Config.Storage != "" && m.Config.Storage != have && !m.Orphan
}

// noteStore says, at an up of a created machine, that den.hcl's storage
// asks for another store than the machine's, which it keeps.
func (e *Env) noteStore(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) {
	have := machineStore(ctx, rec, prov)
	if !otherStore(m, have) {
		return
	}
	c := m.Config
	e.UI.Warn(m.Name(), "storage = %q (%s) applies to a machine when it is made: this one stays %s ('den destroy' and 'den up' make it anew in %s)", c.Storage, config.Location(c.StorageRange), have, c.Storage)
}

// storeNote is den status's note on a machine whose den.hcl asks for
// another store than the one it was made in.
func storeNote(m *Machine, have string) string {
	if !otherStore(m, have) {
		return ""
	}
	return fmt.Sprintf("stays %s: storage = %q applies to a machine when it is made", have, m.Config.Storage)
}

// hostStores fills h.Stores, when den.hcl names a store for one of ms,
// from the provider of that machine (provider.StoreChooser), for
// config.CheckHost.
func (e *Env) hostStores(h *config.HostFacts, ms []*Machine) {
	for _, m := range ms {
		if h.Stores != nil {
			return
		}
		if m.Orphan || m.Config.Storage == "" {
			continue
		}
		prov, err := e.Provider(m.Config.Provider)
		if err != nil {
			continue
		}
		if sc, ok := prov.(provider.StoreChooser); ok {
			h.Stores = sc.Stores()
		}
	}
}

package machine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"

	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/provider"
)

// GlobalEntry is one machine in `den global-status`: Vagrant's columns
// (id, name, provider, state, directory) and den's address and container.
type GlobalEntry struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Provider  string `json:"provider"`
	State     string `json:"state"`
	Directory string `json:"directory"`
	Address   string `json:"address,omitempty"`
	Container string `json:"container"`
	Box       string `json:"box,omitempty"`
	// Autostart, AutostartOrder and AutostartDelay (seconds) are the
	// machine's autostart setting as of its last up or den autostart.
	AutostartSetting
	// Stale says why --prune drops the entry ("" when it stands for a
	// machine or for an address a project still holds).
	Stale string `json:"stale,omitempty"`
	// ContainerExists is set for a stale entry whose container is still
	// there (its project folder went away under it).
	ContainerExists bool `json:"-"`
	// RemoveHint names the engine's commands that remove such a container.
	RemoveHint string `json:"-"`
}

// GlobalID is the short id of a container in global-status: the first 7
// hex digits of its name's sha256, stable for the machine's life.
func GlobalID(container string) string {
	sum := sha256.Sum256([]byte(container))
	return hex.EncodeToString(sum[:])[:7]
}

// staleReason says why an index entry no longer stands for anything, or ""
// when it does. An entry whose container does not exist still counts while
// the project's record names it: that is an address reserved for a machine
// not made yet (a multi-machine up reserves every address first).
func staleReason(projectExists bool, state provider.State, recordContainer, container string) string {
	switch {
	case !projectExists:
		return "project folder is gone"
	case state == provider.NotCreated && recordContainer != container:
		return "container is gone"
	}
	return ""
}

// GlobalStatus lists every machine in this DEN_HOME's index with its state
// read from the provider (no ssh: fast). It never changes anything.
func (e *Env) GlobalStatus(ctx context.Context) ([]GlobalEntry, error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, err
	}
	out := make([]GlobalEntry, 0, len(entries))
	for _, ie := range entries {
		out = append(out, e.globalEntry(ctx, ie))
	}
	slices.SortStableFunc(out, func(a, b GlobalEntry) int {
		if a.Directory != b.Directory {
			if a.Directory < b.Directory {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

func (e *Env) globalEntry(ctx context.Context, ie IndexEntry) GlobalEntry {
	g := GlobalEntry{
		ID:        GlobalID(ie.Container),
		Name:      ie.Machine,
		Provider:  ie.Provider,
		Directory: ie.Project,
		Container: ie.Container,
		Box:       ie.Box,

		AutostartSetting: ie.AutostartSetting,
	}
	g.Address, _, _ = strings.Cut(ie.Address, "/")
	st := provider.Unknown
	prov, err := e.Provider(ie.Provider)
	if err == nil {
		g.Provider = prov.Name()
		g.RemoveHint = prov.Hints(ie.Container).Remove
		if st, err = prov.State(ctx, ie.Container); err != nil {
			st = provider.Unknown
		}
	}
	g.State = st.String()
	fi, err := os.Stat(ie.Project)
	projectExists := err == nil && fi.IsDir()
	recordContainer := ""
	if projectExists && ie.Machine != "" {
		st := layout.ProjectState(ie.Project).Machine(ie.Machine)
		if rec, err := readRecord(st, ie.Project, ie.Machine); err == nil && rec != nil {
			recordContainer = rec.Container
		}
	}
	if st == provider.Unknown {
		return g // never prune what cannot be read
	}
	g.Stale = staleReason(projectExists, st, recordContainer, ie.Container)
	g.ContainerExists = g.Stale != "" && st != provider.NotCreated
	return g
}

// PruneGlobal drops the index entries GlobalStatus found stale, checking
// each again under the index lock (a machine may have been made
// meanwhile), and returns the entries it dropped.
func (e *Env) PruneGlobal(ctx context.Context, stale []GlobalEntry) ([]GlobalEntry, error) {
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, err
	}
	var dropped []GlobalEntry
	for _, s := range stale {
		i := slices.IndexFunc(entries, func(ie IndexEntry) bool { return ie.Container == s.Container })
		if i < 0 {
			continue
		}
		now := e.globalEntry(ctx, entries[i])
		if now.Stale == "" {
			continue
		}
		if err := ix.Remove(now.Container); err != nil {
			return dropped, err
		}
		dropped = append(dropped, now)
	}
	return dropped, nil
}

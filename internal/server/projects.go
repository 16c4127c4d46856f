package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/den-dev/den/internal/fsutil"
)

// projectEntry is a registered project folder.
type projectEntry struct {
	ID         string    `json:"id"`
	Path       string    `json:"path"`
	Registered time.Time `json:"registered"`
}

// projectStore is the list of registered projects, kept in
// DEN_HOME/serve/projects.json.
type projectStore struct {
	path string
	mu   sync.Mutex
	list []projectEntry
}

// ProjectID is a project's id in the API: the first 16 hex digits of the
// sha256 of its folder's absolute path.
func ProjectID(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:])[:16]
}

func openProjects(path string) (*projectStore, error) {
	ps := &projectStore{path: path}
	b, err := fsutil.ReadRegular(path, 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return ps, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &ps.list); err != nil {
		return nil, err
	}
	return ps, nil
}

// get returns the project with id.
func (ps *projectStore) get(id string) (projectEntry, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	i := slices.IndexFunc(ps.list, func(e projectEntry) bool { return e.ID == id })
	if i < 0 {
		return projectEntry{}, false
	}
	return ps.list[i], true
}

// all lists the registered projects.
func (ps *projectStore) all() []projectEntry {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.list)
}

// add registers path (absolute, clean) and returns its entry; a
// registered path is returned as it is.
func (ps *projectStore) add(path string) (projectEntry, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	id := ProjectID(path)
	if i := slices.IndexFunc(ps.list, func(e projectEntry) bool { return e.ID == id }); i >= 0 {
		return ps.list[i], nil
	}
	e := projectEntry{ID: id, Path: path, Registered: time.Now().UTC()}
	list := append(slices.Clone(ps.list), e)
	if err := ps.save(list); err != nil {
		return e, err
	}
	ps.list = list
	return e, nil
}

// remove forgets the project with id.
func (ps *projectStore) remove(id string) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	list := slices.DeleteFunc(slices.Clone(ps.list), func(e projectEntry) bool { return e.ID == id })
	if err := ps.save(list); err != nil {
		return err
	}
	ps.list = list
	return nil
}

func (ps *projectStore) save(list []projectEntry) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(ps.path, append(b, '\n'), 0o600)
}

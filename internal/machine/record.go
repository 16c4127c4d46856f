// Package machine turns a project's den.hcl machines into provider calls:
// up, halt, destroy, status and the ssh target, with locks, records in .den/
// and the host-wide index.
package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/den-dev/den/internal/layout"
)

// Record is what .den/<machine>/machine.json keeps about a created machine.
type Record struct {
	Container  string    `json:"container"`
	Project    string    `json:"project"`
	Machine    string    `json:"machine"`
	Address    string    `json:"address"` // 10.0.3.200/24
	Gateway    string    `json:"gateway"`
	MAC        string    `json:"mac"`
	Bridge     string    `json:"bridge"`
	Box        string    `json:"box"`
	BoxVersion string    `json:"box_version"`
	User       string    `json:"user"`
	Created    time.Time `json:"created"`
	// Hosts is the /etc/hosts den last wrote into the machine (its own
	// name and its peers'), so a start rewrites it only when it changed.
	Hosts string `json:"hosts,omitempty"`
}

// IP returns the machine's address without its prefix length.
func (r *Record) IP() string {
	ip, _, _ := strings.Cut(r.Address, "/")
	return ip
}

// indexEntry is the record's line in the host-wide index.
func (r *Record) indexEntry() IndexEntry {
	return IndexEntry{Container: r.Container, Project: r.Project, Machine: r.Machine, Address: r.Address, Box: r.Box, BoxVersion: r.BoxVersion, Created: r.Created}
}

func readRecord(st layout.MachineState) (*Record, error) {
	b, err := os.ReadFile(st.Record())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w (if the machine is gone, delete that folder)", st.Record(), err)
	}
	return &r, nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// ContainerName names a machine's container so a person can tell project and
// machine apart in lxc-ls: den-<project>-<machine>-<hash of the project path>.
func ContainerName(projectDir, machine string) string {
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(filepath.Base(projectDir)), "-"), "-")
	if len(slug) > 20 {
		slug = strings.Trim(slug[:20], "-")
	}
	if slug == "" {
		slug = "project"
	}
	sum := sha256.Sum256([]byte(projectDir))
	return fmt.Sprintf("den-%s-%s-%s", slug, machine, hex.EncodeToString(sum[:])[:6])
}

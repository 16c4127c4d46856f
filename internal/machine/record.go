package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/provider"
)

// Record is what .den/<machine>/machine.json keeps about a created machine.
type Record struct {
	Container string `json:"container"`
	Provider  string `json:"provider,omitempty"` // "" is the default provider (lxc)
	Project   string `json:"project"`
	Machine   string `json:"machine"`
	Address   string `json:"address"` // 10.0.3.200/24
	Gateway   string `json:"gateway"`
	MAC       string `json:"mac"`
	Bridge    string `json:"bridge"`
	// Network is "project" when Bridge is the project's own network
	// (den.hcl's network = "project"), "" for a host bridge.
	Network    string    `json:"network,omitempty"`
	Box        string    `json:"box"`
	BoxVersion string    `json:"box_version"`
	User       string    `json:"user"`
	Created    time.Time `json:"created"`
	// Hosts is the /etc/hosts den last wrote into the machine (its own
	// name and its peers'), so a start rewrites it only when it changed.
	Hosts string `json:"hosts,omitempty"`
	// FirstUpPending is set from create until the machine's first
	// provisioning has finished: an up interrupted before that (Ctrl-C,
	// kill -9, a failed provisioner) is finished by the next up.
	FirstUpPending bool `json:"first_up_pending,omitempty"`
	// SSHD names the sshd drop-in den last wrote into the machine, so a
	// start rewrites it when den's changed.
	SSHD string `json:"sshd,omitempty"`
	// Applied is what the running machine was started with, so an up of a
	// running machine can say what den.hcl changed since.
	Applied *Applied `json:"applied,omitempty"`
	// IDBase is the first host id of the machine's id range: guest ids
	// 0-65535 are host ids IDBase and up. 0: the machine runs privileged
	// (made so with privileged = true, or before den ran machines
	// unprivileged: its next start converts it unless den.hcl says
	// privileged = true). Kept across starts while no one else took it.
	IDBase uint32 `json:"id_base,omitempty"`
	// UID and GID are the login user's ids in the guest (0: not known
	// yet), to which an unprivileged machine maps its synced folders'
	// owners.
	UID int `json:"uid,omitempty"`
	GID int `json:"gid,omitempty"`
	// Home and Shell are the login user's, for den exec ("" when a machine
	// was made before den recorded them).
	Home  string `json:"home,omitempty"`
	Shell string `json:"shell,omitempty"`
	// Autostart is den.hcl's autostart setting as of the machine's last up
	// (or den autostart), which the index shows in global-status.
	AutostartSetting
}

// AutostartSetting is a machine's autostart setting as the index keeps it.
type AutostartSetting struct {
	Autostart      bool `json:"autostart,omitempty"`
	AutostartOrder int  `json:"autostart_order,omitempty"`
	AutostartDelay int  `json:"autostart_delay,omitempty"` // seconds
}

// autostartOf is den.hcl's autostart setting of m.
func autostartOf(m *Machine) AutostartSetting {
	c := m.Config
	return AutostartSetting{Autostart: c.Autostart, AutostartOrder: c.AutostartOrder, AutostartDelay: int(c.AutostartDelay / time.Second)}
}

// Applied is the part of den.hcl a start applies to a machine.
type Applied struct {
	Memory   int64    `json:"memory,omitempty"`
	CPUs     int      `json:"cpus,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Bridge   string   `json:"bridge,omitempty"`
	Network  string   `json:"network,omitempty"` // "project" on the project's own network
	Mounts   []string `json:"mounts,omitempty"`
	Config   []string `json:"config,omitempty"` // raw provider keys, "key = value"
	// Unprivileged is set when the machine runs with an id range of its own.
	Unprivileged bool `json:"unprivileged,omitempty"`
	Nesting      bool `json:"nesting,omitempty"`
}

// IP returns the machine's address without its prefix length.
func (r *Record) IP() string {
	ip, _, _ := strings.Cut(r.Address, "/")
	return ip
}

// indexEntry is the record's line in the host-wide index.
func (r *Record) indexEntry() IndexEntry {
	return IndexEntry{Container: r.Container, Provider: r.Provider, Project: r.Project, Machine: r.Machine, Address: r.Address, Bridge: r.Bridge, Box: r.Box, BoxVersion: r.BoxVersion, Created: r.Created, IDBase: r.IDBase, AutostartSetting: r.AutostartSetting}
}

// maxRecord bounds what den reads from .den/ (its own files are small).
const maxRecord = 1 << 20

var (
	macRE    = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)
	ifaceRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	loginRE  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	hostsMax = 64 << 10
)

// check refuses a record that does not hold what den writes for machine
// of the project in projectDir: .den/ is in a folder that a guest, a
// checkout or another person may write, and its values become container
// names, addresses and ssh users. Nothing in it is used until it passes.
func (r *Record) check(path, projectDir, machine string) error {
	bad := func(format string, args ...any) error {
		return errdefs.Machinef(errdefs.Tampered, machine, "%s does not hold what den wrote: %s; if the machine is gone, delete that folder (or run 'den destroy %s' from the project's original folder)", path, fmt.Sprintf(format, args...), machine)
	}
	if want := ContainerName(projectDir, machine); r.Container != want {
		return bad("it names container %q, but den names this project's machine %q %q (was the project moved from %q?)", r.Container, machine, want, r.Project)
	}
	if r.Project != projectDir || r.Machine != machine {
		return bad("it is for machine %q of %q", r.Machine, r.Project)
	}
	if r.Address != "" {
		if _, err := netip.ParsePrefix(r.Address); err != nil {
			return bad("address %q", r.Address)
		}
	}
	if r.Gateway != "" {
		if _, err := netip.ParseAddr(r.Gateway); err != nil {
			return bad("gateway %q", r.Gateway)
		}
	}
	if r.MAC != "" && !macRE.MatchString(r.MAC) {
		return bad("MAC %q", r.MAC)
	}
	if r.Bridge != "" && !ifaceRE.MatchString(r.Bridge) {
		return bad("bridge %q", r.Bridge)
	}
	if r.Network != "" && r.Network != config.NetworkProject {
		return bad("network %q", r.Network)
	}
	if r.User != "" && !loginRE.MatchString(r.User) {
		return bad("login user %q", r.User)
	}
	if r.Box != "" && box.CheckName(r.Box) != nil {
		return bad("box %q", r.Box)
	}
	if r.BoxVersion != "" && box.CheckVersion(r.BoxVersion) != nil {
		return bad("box version %q", r.BoxVersion)
	}
	if r.Provider != "" && !loginRE.MatchString(r.Provider) {
		return bad("provider %q", r.Provider)
	}
	if r.IDBase != 0 && (r.IDBase%provider.IDRangeSize != 0 || r.IDBase < provider.IDRangeSize) {
		return bad("id range %d", r.IDBase)
	}
	if r.UID < 0 || r.GID < 0 || r.UID >= 1<<31 || r.GID >= 1<<31 {
		return bad("login user ids %d:%d", r.UID, r.GID)
	}
	if len(r.Hosts) > hostsMax {
		return bad("an /etc/hosts of %d bytes", len(r.Hosts))
	}
	return nil
}

// readRecord reads and checks the record of machine in projectDir; nil
// when there is none.
func readRecord(st layout.MachineState, projectDir, machine string) (*Record, error) {
	path := st.Record()
	b, err := fsutil.ReadRegular(path, maxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, fsutil.ErrNotRegular) {
		return nil, errdefs.Machinef(errdefs.Tampered, machine, "%v: den writes a plain file there; remove it", err)
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errdefs.Machinef(errdefs.Tampered, machine, "%s is damaged: %v (if the machine is gone, delete that folder)", path, err)
	}
	if err := r.check(path, projectDir, machine); err != nil {
		return nil, err
	}
	return &r, nil
}

// writeJSON writes v as indented JSON through the atomic writer.
func writeJSON(path string, v any, mode fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), mode)
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// ContainerName names a machine's container so a person can tell project and
// machine apart in lxc-ls: den-<project>-<machine>-<hash of the project path>.
func ContainerName(projectDir, machine string) string {
	sum := sha256.Sum256([]byte(projectDir))
	return fmt.Sprintf("den-%s-%s-%s", projectSlug(projectDir), machine, hex.EncodeToString(sum[:])[:6])
}

// projectSlug is the project folder's name in lower-case letters, digits
// and hyphens, at most 20 of them ("project" when none is left).
func projectSlug(projectDir string) string {
	slug := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(filepath.Base(projectDir)), "-"), "-")
	if len(slug) > 20 {
		slug = strings.Trim(slug[:20], "-")
	}
	if slug == "" {
		slug = "project"
	}
	return slug
}

// containerRE is the form of every name ContainerName makes (machine
// names are checked by the config decoder: letters, digits, '-').
var containerRE = regexp.MustCompile(`^den-[a-z0-9-]{1,20}-[a-z][a-z0-9-]{0,30}-[0-9a-f]{6}$`)

// validContainer reports whether name could come from ContainerName: no
// path element, nothing but the characters it uses.
func validContainer(name string) bool { return containerRE.MatchString(name) }

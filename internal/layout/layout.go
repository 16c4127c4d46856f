// Package layout names every path den uses: the store under DEN_HOME and the
// per-project state folder .den/.
package layout

import (
	"os"
	"path/filepath"
)

// Home is den's data folder (DEN_HOME).
type Home string

// DefaultHome returns DEN_HOME, or /var/lib/den as root, or
// $XDG_DATA_HOME/den (~/.local/share/den) otherwise.
func DefaultHome() Home {
	if h := os.Getenv("DEN_HOME"); h != "" {
		if abs, err := filepath.Abs(h); err == nil {
			return Home(abs)
		}
		return Home(h)
	}
	if os.Geteuid() == 0 {
		return "/var/lib/den"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return Home(filepath.Join(x, "den"))
	}
	home, _ := os.UserHomeDir()
	return Home(filepath.Join(home, ".local", "share", "den"))
}

// Path returns the home folder itself.
func (h Home) Path() string { return string(h) }

// Machines is the LXC path of den's containers (lxc-ls -P shows them).
func (h Home) Machines() string { return filepath.Join(string(h), "machines") }

// Machine is the LXC folder of one container.
func (h Home) Machine(container string) string { return filepath.Join(h.Machines(), container) }

// Index is the file listing every machine den made on this host.
func (h Home) Index() string { return filepath.Join(string(h), "index.json") }

// IndexLock guards the index and address allocation.
func (h Home) IndexLock() string { return filepath.Join(string(h), "index.lock") }

// StateDirName is the name of the per-project state folder.
const StateDirName = ".den"

// Project is the .den folder of a project.
type Project string

// ProjectState returns the .den folder of the project in dir.
func ProjectState(dir string) Project { return Project(filepath.Join(dir, StateDirName)) }

// Path returns the .den folder itself.
func (p Project) Path() string { return string(p) }

// Machine is the state folder of one machine in the project.
func (p Project) Machine(name string) MachineState {
	return MachineState(filepath.Join(string(p), name))
}

// MachineState is .den/<machine>: everything den keeps about one machine.
type MachineState string

// Path returns the folder itself.
func (m MachineState) Path() string { return string(m) }

// Record is the machine's record (container name, address, box).
func (m MachineState) Record() string { return filepath.Join(string(m), "machine.json") }

// Key is the machine's private ssh key (mode 0600).
func (m MachineState) Key() string { return filepath.Join(string(m), "id_ed25519") }

// HostKey is the pinned public host key of the machine.
func (m MachineState) HostKey() string { return filepath.Join(string(m), "host_ed25519.pub") }

// KnownHosts is the known_hosts file den writes for OpenSSH clients.
func (m MachineState) KnownHosts() string { return filepath.Join(string(m), "known_hosts") }

// Provisioned records which provisioners ran on the machine.
func (m MachineState) Provisioned() string { return filepath.Join(string(m), "provisioned.json") }

// ForwardPid is the pidfile of the machine's port forwarder.
func (m MachineState) ForwardPid() string { return filepath.Join(string(m), "forward.pid") }

// ForwardLog is where the machine's port forwarder logs.
func (m MachineState) ForwardLog() string { return filepath.Join(string(m), "forward.log") }

// Lock is the machine's lock file.
func (m MachineState) Lock() string { return filepath.Join(string(m), "lock") }

// Log is den's log of operations on the machine.
func (m MachineState) Log() string { return filepath.Join(string(m), "den.log") }

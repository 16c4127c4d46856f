// Package api holds the types of den's REST API (`den serve`), shared by
// the server (internal/server) and its Go client (package client). The
// shapes follow LXD's API: every answer is a Response envelope, work that
// takes time is an Operation, and /1.0/events streams Events.
//
// openapi.json beside this file describes every route; a test of the server
// checks it against the routes the server really answers.
package api

import (
	"encoding/json"
	"time"
)

// Version is the API version in every path (/1.0/...).
const Version = "1.0"

// Extensions lists what this server's API can do beyond the base, as
// LXD's api_extensions: a client checks for a name before using it.
var Extensions = []string{
	"projects_by_path",
	"machine_state_actions",
	"operations_wait_timeout",
	"operation_events",
	"events_websocket",
	"snapshots",
	"package",
	"boxes_upload",
	"global_status",
	"machine_logs",
	"certificates",
	"peer_credentials",
}

// Response types.
const (
	TypeSync  = "sync"
	TypeAsync = "async"
	TypeError = "error"
)

// Response is the envelope of every answer except websocket and raw log
// streams.
type Response struct {
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Metadata   json.RawMessage `json:"metadata"`
	Operation  string          `json:"operation"`
	ErrorCode  int             `json:"error_code"`
	Error      string          `json:"error"`
}

// ErrorDetail is the metadata of an error answer, and of a failed
// operation: den's own error kind (internal/errdefs), the machine it is
// about, and what a front end needs to act as the CLI does.
type ErrorDetail struct {
	Kind    string `json:"kind"`              // errdefs kind: "not-created", "guest-failed"...
	Machine string `json:"machine,omitempty"` // the machine the failure is about
	// ExitStatus is a failed provisioner's exit status in the guest.
	ExitStatus int `json:"exit_status,omitempty"`
	// Provisioner names the provisioner that failed.
	Provisioner string `json:"provisioner,omitempty"`
	// Diagnostics are den.hcl's problems, located (kind "invalid").
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

// Diagnostic is one problem in den.hcl: file, line and column (1-based)
// and byte offsets of its start and end, a summary and a detail.
type Diagnostic struct {
	Severity string `json:"severity"` // "error" or "warning"
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	File     string `json:"file,omitempty"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// Pos is a position in a file.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Operation status codes, as LXD's.
const (
	StatusRunning    = 103
	StatusCancelling = 104
	StatusPending    = 105
	StatusSuccess    = 200
	StatusFailure    = 400
	StatusCancelled  = 401
)

// StatusText names an operation status code.
func StatusText(code int) string {
	switch code {
	case StatusRunning:
		return "Running"
	case StatusCancelling:
		return "Cancelling"
	case StatusPending:
		return "Pending"
	case StatusSuccess:
		return "Success"
	case StatusFailure:
		return "Failure"
	case StatusCancelled:
		return "Cancelled"
	}
	return "Unknown"
}

// Operation is background work: an action on machines or boxes.
type Operation struct {
	ID          string              `json:"id"`
	Class       string              `json:"class"` // "task"
	Description string              `json:"description"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	Status      string              `json:"status"`
	StatusCode  int                 `json:"status_code"`
	Resources   map[string][]string `json:"resources"`
	Metadata    map[string]any      `json:"metadata"`
	MayCancel   bool                `json:"may_cancel"`
	Err         string              `json:"err"`
	// ErrCode is the HTTP status of a failure (errdefs.HTTPStatus).
	ErrCode int `json:"err_code,omitempty"`
	// ErrDetail carries a failure's kind and details.
	ErrDetail *ErrorDetail `json:"err_detail,omitempty"`
	// Events is what the operation reported, in order (its progress).
	Events []ProgressEvent `json:"events,omitempty"`
}

// Event types on /1.0/events.
const (
	EventOperation = "operation"
	EventLifecycle = "lifecycle"
	EventProgress  = "progress"
)

// Event is one message on /1.0/events.
type Event struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Project   string          `json:"project,omitempty"` // the project's id
	Metadata  json.RawMessage `json:"metadata"`
}

// ProgressEvent is one line of an operation's progress, what the CLI
// prints (`==> web: Starting machine...`): the metadata of a progress
// event.
type ProgressEvent struct {
	Operation string `json:"operation"` // /1.0/operations/<id>
	Seq       int    `json:"seq"`       // 1, 2, ... within the operation
	Kind      string `json:"kind"`      // say, detail, warn, stdout, stderr, progress
	Machine   string `json:"machine,omitempty"`
	Text      string `json:"text"`
	Done      int64  `json:"done,omitempty"`
	Total     int64  `json:"total,omitempty"`
}

// LifecycleEvent is the metadata of a lifecycle event: something that
// happened to a machine, a snapshot or a box.
type LifecycleEvent struct {
	Action    string `json:"action"` // machine-created, machine-started, machine-stopped, ...
	Source    string `json:"source"` // the resource's URL
	Operation string `json:"operation,omitempty"`
	Requestor string `json:"requestor,omitempty"`
}

// Server is GET /1.0.
type Server struct {
	APIVersion    string       `json:"api_version"`
	APIStatus     string       `json:"api_status"`
	APIExtensions []string     `json:"api_extensions"`
	Auth          string       `json:"auth"` // "trusted" or "untrusted"
	AuthMethods   []string     `json:"auth_methods"`
	AuthUser      string       `json:"auth_user,omitempty"`  // "root", "uid 1000", or a certificate's name
	AuthAdmin     bool         `json:"auth_admin,omitempty"` // may do everything
	Environment   *Environment `json:"environment,omitempty"`
}

// Environment describes the server to trusted callers.
type Environment struct {
	ServerName      string   `json:"server_name"`
	ServerVersion   string   `json:"server_version"`
	ServerPID       int      `json:"server_pid"`
	DenHome         string   `json:"den_home"`
	Addresses       []string `json:"addresses"`
	Certificate     string   `json:"certificate,omitempty"`
	CertFingerprint string   `json:"certificate_fingerprint,omitempty"`
	Providers       []string `json:"providers"`
}

// ProjectsPost registers a project: the absolute path of its folder (the
// one holding den.hcl) on the server's host.
type ProjectsPost struct {
	Path string `json:"path"`
}

// Project is a registered project folder and its machines.
type Project struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	File     string    `json:"file"`
	Owner    int       `json:"owner"` // uid of the folder's owner
	Machines []Machine `json:"machines"`
}

// Machine is one machine of a project: its state and what den.hcl asks.
type Machine struct {
	Name      string   `json:"name"`
	Project   string   `json:"project"` // the project's id
	State     string   `json:"state"`   // not created, stopped, running, frozen, unknown
	Address   string   `json:"address,omitempty"`
	Container string   `json:"container,omitempty"`
	Box       string   `json:"box"`
	Provider  string   `json:"provider"`
	Hostname  string   `json:"hostname"`
	Limits    Limits   `json:"limits"`
	Forwards  []string `json:"forwards,omitempty"`
}

// Limits are a machine's resource limits from den.hcl (0: none).
type Limits struct {
	Memory int64 `json:"memory"`
	CPUs   int   `json:"cpus"`
}

// MachineState is GET .../machines/<name>/state.
type MachineState struct {
	Status  string `json:"status"`
	Address string `json:"address,omitempty"`
	// MemoryLimit and CPUs are read back from the running machine.
	MemoryLimit int64  `json:"memory_limit,omitempty"`
	CPUs        string `json:"cpus,omitempty"`
}

// Actions of PUT .../state.
const (
	ActionUp        = "up"
	ActionHalt      = "halt"
	ActionReload    = "reload"
	ActionProvision = "provision"
	ActionSuspend   = "suspend"
	ActionResume    = "resume"
	ActionDestroy   = "destroy"
	ActionPush      = "snapshot-push"
	ActionPop       = "snapshot-pop"
)

// Provisioning modes of up, reload and restore.
const (
	ProvisionAuto  = ""      // the first up runs all, later ones the run = "always" ones
	ProvisionForce = "force" // --provision
	ProvisionNever = "never" // --no-provision
)

// StatePut is an action on machines: PUT /1.0/projects/<id>/state (the
// machines named, all without names) or .../machines/<name>/state.
type StatePut struct {
	Action   string   `json:"action"`
	Machines []string `json:"machines,omitempty"`
	// Provision and ProvisionWith: up, reload, provision, snapshot-pop.
	Provision     string   `json:"provision,omitempty"`
	ProvisionWith []string `json:"provision_with,omitempty"`
	// NoParallel brings several machines up one after the other.
	NoParallel bool `json:"no_parallel,omitempty"`
	// Force: halt kills at once.
	Force bool `json:"force,omitempty"`
	// Timeout is how long a clean shutdown may take, in seconds (halt,
	// reload; default 30).
	Timeout float64 `json:"timeout,omitempty"`
	// NoStart and NoDelete: snapshot-pop.
	NoStart  bool `json:"no_start,omitempty"`
	NoDelete bool `json:"no_delete,omitempty"`
}

// SnapshotsPost saves a snapshot of the machines named (all without).
type SnapshotsPost struct {
	Name     string   `json:"name"`
	Machines []string `json:"machines,omitempty"`
	Force    bool     `json:"force,omitempty"`
}

// SnapshotPost acts on one snapshot; the action is "restore".
type SnapshotPost struct {
	Action        string   `json:"action"`
	Machines      []string `json:"machines,omitempty"`
	NoStart       bool     `json:"no_start,omitempty"`
	Provision     string   `json:"provision,omitempty"`
	ProvisionWith []string `json:"provision_with,omitempty"`
}

// Snapshot is one snapshot of one machine.
type Snapshot struct {
	Machine string    `json:"machine"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	// Shared is set for a copy-on-write snapshot (btrfs), whose blocks are
	// the machine's until either changes (Size is 0).
	Shared bool `json:"shared,omitempty"`
}

// PackagePost makes a box file from a machine.
type PackagePost struct {
	Output      string `json:"output"` // an absolute path on the server's host; must not exist
	Compression string `json:"compression,omitempty"`
	Version     string `json:"version,omitempty"`
}

// Box is one installed box version.
type Box struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	User    string    `json:"user"`
	Path    string    `json:"path"`
}

// BoxesPost adds a box from a URL (http, https) or, for an administrator,
// an absolute path on the server's host. A box file can also be uploaded
// as the body of POST /1.0/boxes (Content-Type application/octet-stream,
// name, version and force in the query).
type BoxesPost struct {
	Name       string `json:"name,omitempty"`
	Source     string `json:"source"`
	Version    string `json:"version,omitempty"`
	BoxVersion string `json:"box_version,omitempty"` // a constraint, for a catalog
	Checksum   string `json:"checksum,omitempty"`    // TYPE:HEX
	Force      bool   `json:"force,omitempty"`
}

// GlobalMachine is one machine of GET /1.0/machines (global status).
type GlobalMachine struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Provider  string `json:"provider"`
	State     string `json:"state"`
	Directory string `json:"directory"`
	Address   string `json:"address,omitempty"`
	Container string `json:"container"`
	Box       string `json:"box,omitempty"`
	Stale     string `json:"stale,omitempty"`
	// RemoveHint names the engine commands that remove a stale entry's
	// container that is still there.
	RemoveHint string `json:"remove_hint,omitempty"`
	// ContainerExists: a stale entry whose container is still there.
	ContainerExists bool `json:"container_exists,omitempty"`
}

// Certificate is a trusted client certificate.
type Certificate struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"` // sha256 of the DER, hex
	Certificate string    `json:"certificate"` // PEM
	Added       time.Time `json:"added"`
}

// CertificatesPost trusts a client certificate (PEM).
type CertificatesPost struct {
	Name        string `json:"name"`
	Certificate string `json:"certificate"`
}

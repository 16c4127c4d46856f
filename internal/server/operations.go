package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/hostcmd"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

// opSpec describes an operation to start.
type opSpec struct {
	desc      string
	owner     *caller
	project   string              // the project's id, or ""
	resources map[string][]string // URLs of what it acts on
	machines  []*machine.Machine  // whose state changes become lifecycle events
	run       func(ctx context.Context, env *machine.Env) error
	// lifecycle adds action-specific lifecycle events on success.
	lifecycle []api.LifecycleEvent
	// after runs once the operation ended, whatever its result.
	after func()
}

// operation is one background task.
type operation struct {
	ops  *operations
	spec opSpec
	id   string

	mu        sync.Mutex
	created   time.Time
	updated   time.Time
	status    int
	err       error
	events    []api.ProgressEvent
	cancel    context.CancelFunc
	done      chan struct{}
	journaled string // the journal file while it runs
}

// operations runs and keeps operations.
type operations struct {
	s       *Server
	dir     string // the journal: one file per running operation
	slots   chan struct{}
	keep    time.Duration
	baseCtx context.Context
	stopAll context.CancelFunc

	mu      sync.Mutex
	byID    map[string]*operation
	closing bool
	running sync.WaitGroup
}

// journalEntry is what the journal keeps of a running operation, so that
// the next server can say it was interrupted.
type journalEntry struct {
	ID          string              `json:"id"`
	Description string              `json:"description"`
	Created     time.Time           `json:"created"`
	Project     string              `json:"project,omitempty"`
	Resources   map[string][]string `json:"resources"`
	Owner       int                 `json:"owner"`
	Admin       bool                `json:"admin"`
}

func newOperations(s *Server, dir string, max int, keep time.Duration) (*operations, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &operations{s: s, dir: dir, slots: make(chan struct{}, max), keep: keep, baseCtx: ctx, stopAll: cancel, byID: map[string]*operation{}}
	// Operations a killed server left running: list them as failed.
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		b, err := fsutil.ReadRegular(f, 1<<20)
		os.Remove(f)
		if err != nil {
			continue
		}
		var j journalEntry
		if json.Unmarshal(b, &j) != nil || j.ID == "" {
			continue
		}
		op := &operation{
			ops:     o,
			id:      j.ID,
			spec:    opSpec{desc: j.Description, project: j.Project, resources: j.Resources, owner: &caller{uid: j.Owner, known: true, tls: j.Admin && j.Owner != 0, trusted: j.Admin}},
			created: j.Created,
			updated: time.Now().UTC(),
			status:  api.StatusFailure,
			err:     errdefs.Newf(errdefs.Canceled, "interrupted: the server stopped while this operation ran (killed, or the host went down); run the action again: den recovers the machine"),
			done:    make(chan struct{}),
		}
		close(op.done)
		o.byID[op.id] = op
		s.log.Warn("operation interrupted by a previous server", "id", j.ID, "description", j.Description)
	}
	return o, nil
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// errShuttingDown refuses new operations while the server stops.
var errShuttingDown = errdefs.Newf(errdefs.HostNotReady, "the server is shutting down: try again when it is back")

// start begins an operation and returns it at once (Pending until a slot
// is free, then Running).
func (o *operations) start(spec opSpec) (*operation, error) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return nil, errShuttingDown
	}
	o.gc()
	now := time.Now().UTC()
	ctx, cancel := context.WithCancel(o.baseCtx)
	op := &operation{ops: o, spec: spec, id: newID(), created: now, updated: now, status: api.StatusPending, cancel: cancel, done: make(chan struct{})}
	o.byID[op.id] = op
	o.running.Add(1)
	o.mu.Unlock()

	op.journal()
	op.publishState()
	go op.run(ctx)
	return op, nil
}

// gc forgets finished operations older than keep. o.mu is held.
func (o *operations) gc() {
	for id, op := range o.byID {
		op.mu.Lock()
		old := op.status >= api.StatusSuccess && time.Since(op.updated) > o.keep
		op.mu.Unlock()
		if old {
			delete(o.byID, id)
		}
	}
}

func (o *operations) get(id string) (*operation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	op, ok := o.byID[id]
	return op, ok
}

// list returns the operations, oldest first.
func (o *operations) list() []*operation {
	o.mu.Lock()
	o.gc()
	out := make([]*operation, 0, len(o.byID))
	for _, op := range o.byID {
		out = append(out, op)
	}
	o.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// drain refuses new operations, waits up to grace for the running ones,
// then cancels them and waits until they end (or ctx does).
func (o *operations) drain(ctx context.Context, grace time.Duration) {
	o.mu.Lock()
	o.closing = true
	o.mu.Unlock()
	done := make(chan struct{})
	go func() { o.running.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	case <-ctx.Done():
	}
	o.s.log.Info("cancelling the operations still running")
	o.stopAll()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// url is the operation's path in the API.
func (op *operation) url() string { return "/" + api.Version + "/operations/" + op.id }

// journal records the running operation.
func (op *operation) journal() {
	j := journalEntry{ID: op.id, Description: op.spec.desc, Created: op.created, Project: op.spec.project, Resources: op.spec.resources, Owner: op.spec.owner.uid, Admin: op.spec.owner.admin()}
	b, err := json.Marshal(j)
	if err != nil {
		return
	}
	path := filepath.Join(op.ops.dir, op.id+".json")
	if fsutil.WriteFileAtomic(path, b, 0o600) == nil {
		op.journaled = path
	}
}

// run waits for a slot, runs the operation and records how it ended.
func (op *operation) run(ctx context.Context) {
	o := op.ops
	defer o.running.Done()
	defer op.cancel()
	select {
	case o.slots <- struct{}{}:
		defer func() { <-o.slots }()
	case <-ctx.Done():
	}
	var err error
	if ctx.Err() != nil {
		err = ctx.Err()
	} else {
		op.setStatus(api.StatusRunning, nil)
		before := o.s.states(ctx, op.spec.machines)
		env := o.s.env.WithReporter(ui.NewEvents(op.emit)).WithCaller(triggerCaller(op.spec))
		err = safeRun(func() error { return op.spec.run(ctx, env) })
		o.s.lifecycle(op, before, err)
	}
	if op.spec.after != nil {
		op.spec.after()
	}
	status := api.StatusSuccess
	switch {
	case err != nil && errdefs.KindOf(err) == errdefs.Canceled && ctx.Err() != nil:
		status = api.StatusCancelled
	case err != nil:
		status = api.StatusFailure
	}
	if op.journaled != "" {
		os.Remove(op.journaled)
	}
	op.setStatus(status, err)
	close(op.done)
	o.s.log.Info("operation ended", "id", op.id, "description", op.spec.desc, "status", api.StatusText(status), "err", err)
}

// safeRun turns a panic in a domain call into an error, so one bad
// request cannot take the server down.
func safeRun(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return fn()
}

// emit records one progress line and publishes it.
func (op *operation) emit(e ui.Event) {
	op.mu.Lock()
	defer op.mu.Unlock()
	pe := api.ProgressEvent{Operation: op.url(), Seq: len(op.events) + 1, Kind: string(e.Kind), Machine: e.Machine, Text: e.Text, Done: e.Done, Total: e.Total}
	op.events = append(op.events, pe)
	op.updated = time.Now().UTC()
	op.ops.s.hub.publish(op.eventFor(api.EventProgress, pe))
}

// setStatus changes the status and publishes an operation event.
func (op *operation) setStatus(status int, err error) {
	op.mu.Lock()
	op.status, op.err, op.updated = status, err, time.Now().UTC()
	op.mu.Unlock()
	op.publishState()
}

func (op *operation) publishState() {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ops.s.hub.publish(op.eventFor(api.EventOperation, op.apiLocked(false)))
}

// requestCancel cancels a running operation at its next safe point.
func (op *operation) requestCancel() bool {
	op.mu.Lock()
	if op.status >= api.StatusSuccess || op.cancel == nil {
		op.mu.Unlock()
		return false
	}
	if op.status == api.StatusRunning {
		op.status = api.StatusCancelling
	}
	op.mu.Unlock()
	op.cancel()
	op.publishState()
	return true
}

// eventFor wraps metadata for the hub. op.mu is held.
func (op *operation) eventFor(typ string, metadata any) *hubEvent {
	b, _ := json.Marshal(metadata)
	return &hubEvent{
		ev:        api.Event{Type: typ, Timestamp: time.Now().UTC(), Project: op.spec.project, Metadata: b},
		owner:     op.spec.owner,
		project:   op.spec.project,
		operation: op.id,
		final:     typ == api.EventOperation && op.status >= api.StatusSuccess,
	}
}

// api returns the operation as the API shows it.
func (op *operation) api(withEvents bool) api.Operation {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.apiLocked(withEvents)
}

func (op *operation) apiLocked(withEvents bool) api.Operation {
	a := api.Operation{
		ID:          op.id,
		Class:       "task",
		Description: op.spec.desc,
		CreatedAt:   op.created,
		UpdatedAt:   op.updated,
		Status:      api.StatusText(op.status),
		StatusCode:  op.status,
		Resources:   op.spec.resources,
		Metadata:    map[string]any{},
		MayCancel:   op.status < api.StatusSuccess,
	}
	if a.Resources == nil {
		a.Resources = map[string][]string{}
	}
	if op.err != nil {
		a.Err = op.err.Error()
		d := errorDetail(op.err)
		a.ErrDetail = &d
		a.ErrCode = errdefs.HTTPStatus(errdefs.Kind(d.Kind))
		if d.ExitStatus != 0 {
			a.Metadata["exit_status"] = d.ExitStatus
		}
	}
	if withEvents {
		a.Events = slices.Clone(op.events)
	}
	return a
}

// visibleTo tells whether c may see the operation.
func (op *operation) visibleTo(c *caller) bool {
	if c.admin() {
		return true
	}
	o := op.spec.owner
	return o != nil && !o.admin() && o.known && !o.tls && o.uid == c.uid
}

// wait waits until the operation ends, ctx ends or timeout passes
// (negative: no limit).
func (op *operation) wait(ctx context.Context, timeout time.Duration) {
	var tc <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-op.done:
	case <-ctx.Done():
	case <-tc:
	}
}

// triggerCaller is who the operation's host triggers run as: the user on
// the other end of the socket; for a trusted certificate (the server's
// administrator, with no account here) or root, the owner of the project
// folder, so project code never runs as root for anyone.
func triggerCaller(spec opSpec) machine.Caller {
	c := spec.owner
	uid, gid := -1, -1
	if c != nil && c.known && !c.tls && c.uid != 0 {
		uid, gid = c.uid, c.gid
	} else if len(spec.machines) > 0 {
		if fi, err := os.Stat(spec.machines[0].Project.Dir); err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	if uid < 0 {
		return machine.Caller{UserErr: errors.New("den serve runs host triggers as the caller or the project's owner, and knows neither here")}
	}
	u, err := hostcmd.Lookup(uint32(uid), uint32(gid))
	return machine.Caller{User: u, UserErr: err}
}

package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/machine"
)

// handlerFunc is a route: it answers, or returns an error for fail.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// route is one API route, for the mux and for the OpenAPI check.
type route struct {
	method, pattern string
	long            bool // a stream or a wait: its own bound, not the request semaphore
	open            bool // untrusted callers may use it
	fn              handlerFunc
}

// EnvHeader carries the client's environment, which den.hcl's env() reads
// (base64 of a JSON object); without it env() sees an empty environment,
// never the server's.
const EnvHeader = "X-Den-Environment"

func (s *Server) routeTable() []route {
	v := "/" + api.Version
	return []route{
		{method: "GET", pattern: "/{$}", open: true, fn: func(w http.ResponseWriter, r *http.Request, c *caller) error {
			s.reply(w, []string{v})
			return nil
		}},
		{method: "GET", pattern: v, open: true, fn: s.getServer},
		{method: "GET", pattern: v + "/events", long: true, fn: func(w http.ResponseWriter, r *http.Request, c *caller) error {
			s.handleEvents(w, r)
			return nil
		}},
		{method: "GET", pattern: v + "/operations", fn: s.listOperations},
		{method: "GET", pattern: v + "/operations/{id}", fn: s.getOperation},
		{method: "DELETE", pattern: v + "/operations/{id}", fn: s.cancelOperation},
		{method: "GET", pattern: v + "/operations/{id}/wait", long: true, fn: s.waitOperation},
		{method: "GET", pattern: v + "/projects", fn: s.listProjects},
		{method: "POST", pattern: v + "/projects", fn: s.postProject},
		{method: "GET", pattern: v + "/projects/{pid}", fn: s.getProject},
		{method: "DELETE", pattern: v + "/projects/{pid}", fn: s.deleteProject},
		{method: "PUT", pattern: v + "/projects/{pid}/state", fn: s.putState},
		{method: "GET", pattern: v + "/projects/{pid}/machines", fn: s.listMachines},
		{method: "GET", pattern: v + "/projects/{pid}/machines/{name}", fn: s.getMachine},
		{method: "DELETE", pattern: v + "/projects/{pid}/machines/{name}", fn: s.deleteMachine},
		{method: "GET", pattern: v + "/projects/{pid}/machines/{name}/state", fn: s.getMachineState},
		{method: "PUT", pattern: v + "/projects/{pid}/machines/{name}/state", fn: s.putState},
		{method: "GET", pattern: v + "/projects/{pid}/machines/{name}/logs", fn: s.listLogs},
		{method: "GET", pattern: v + "/projects/{pid}/machines/{name}/logs/{file}", fn: s.getLog},
		{method: "POST", pattern: v + "/projects/{pid}/machines/{name}/package", fn: s.postPackage},
		{method: "GET", pattern: v + "/projects/{pid}/snapshots", fn: s.listSnapshots},
		{method: "POST", pattern: v + "/projects/{pid}/snapshots", fn: s.postSnapshots},
		{method: "DELETE", pattern: v + "/projects/{pid}/snapshots/{snap}", fn: s.deleteSnapshot},
		{method: "POST", pattern: v + "/projects/{pid}/snapshots/{snap}", fn: s.postSnapshot},
		{method: "GET", pattern: v + "/projects/{pid}/machines/{name}/snapshots", fn: s.listSnapshots},
		{method: "POST", pattern: v + "/projects/{pid}/machines/{name}/snapshots", fn: s.postSnapshots},
		{method: "DELETE", pattern: v + "/projects/{pid}/machines/{name}/snapshots/{snap}", fn: s.deleteSnapshot},
		{method: "POST", pattern: v + "/projects/{pid}/machines/{name}/snapshots/{snap}", fn: s.postSnapshot},
		{method: "GET", pattern: v + "/machines", fn: s.globalStatus},
		{method: "POST", pattern: v + "/machines/prune", fn: s.pruneGlobal},
		{method: "GET", pattern: v + "/boxes", fn: s.listBoxes},
		{method: "POST", pattern: v + "/boxes", fn: s.postBoxes},
		{method: "DELETE", pattern: v + "/boxes/{box...}", fn: s.deleteBox},
		{method: "GET", pattern: v + "/certificates", fn: s.listCertificates},
		{method: "POST", pattern: v + "/certificates", fn: s.postCertificate},
		{method: "DELETE", pattern: v + "/certificates/{fp}", fn: s.deleteCertificate},
	}
}

// Routes lists "METHOD PATTERN" of every route (for the OpenAPI check).
func (s *Server) Routes() []string {
	var out []string
	for _, rt := range s.routeTable() {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return out
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	// Everything else: an envelope, not Go's plain text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
			if m == r.Method {
				continue
			}
			rr := r.Clone(r.Context())
			rr.Method = m
			if _, pattern := mux.Handler(rr); pattern != "/" && pattern != "" {
				s.write(w, http.StatusMethodNotAllowed, api.Response{Type: api.TypeError, ErrorCode: 405, Error: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path), Metadata: json.RawMessage(`{"kind":"invalid"}`)})
				return
			}
		}
		s.write(w, http.StatusNotFound, api.Response{Type: api.TypeError, ErrorCode: 404, Error: "not found: " + r.URL.Path, Metadata: json.RawMessage(`{"kind":"not-found"}`)})
	})
	return mux
}

// wrap adds to a route: the caller, the authorization gate, the request
// bound (a semaphore: at most MaxRequests at once, others wait up to
// QueueWait, then 503) and panic recovery.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.callerOf(r)
		if !rt.open && !c.authenticated() {
			s.fail(w, r, forbid("not authorized: %s (trust a client certificate with 'den serve trust add')", c))
			return
		}
		sem := s.reqSem
		if rt.long {
			sem = s.longSem
		}
		t := time.NewTimer(s.cfg.QueueWait)
		select {
		case sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			s.fail(w, r, errdefs.Newf(errdefs.HostNotReady, "server busy: %d requests at once; try again", cap(sem)))
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
		defer func() { <-sem }()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				s.fail(w, r, fmt.Errorf("internal error: %v", p))
			}
		}()
		if err := rt.fn(w, r, c); err != nil {
			s.fail(w, r, err)
		}
	})
}

// --- server ---

func (s *Server) getServer(w http.ResponseWriter, r *http.Request, c *caller) error {
	info := api.Server{
		APIVersion:    api.Version,
		APIStatus:     "stable",
		APIExtensions: api.Extensions,
		Auth:          "untrusted",
		AuthMethods:   []string{"unix", "tls"},
	}
	if c.authenticated() {
		info.Auth, info.AuthUser, info.AuthAdmin = "trusted", c.String(), c.admin()
		hostname, _ := os.Hostname()
		env := &api.Environment{
			ServerName:    hostname,
			ServerVersion: s.cfg.Version,
			ServerPID:     os.Getpid(),
			DenHome:       s.home.Path(),
			Addresses:     s.cfg.Addresses,
		}
		for _, p := range s.env.Providers() {
			env.Providers = append(env.Providers, p.Name())
		}
		if s.cert != nil {
			env.Certificate, env.CertFingerprint = string(s.cert.pem), s.cert.fingerprint
		}
		info.Environment = env
	}
	s.reply(w, info)
	return nil
}

// --- operations ---

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request, c *caller) error {
	recursion := r.URL.Query().Get("recursion") == "1"
	urls := []string{}
	objs := []api.Operation{}
	for _, op := range s.ops.list() {
		if !op.visibleTo(c) {
			continue
		}
		urls = append(urls, op.url())
		if recursion {
			objs = append(objs, op.api(false))
		}
	}
	if recursion {
		s.reply(w, objs)
	} else {
		s.reply(w, urls)
	}
	return nil
}

func (s *Server) operation(r *http.Request, c *caller) (*operation, error) {
	id := r.PathValue("id")
	op, ok := s.ops.get(id)
	if !ok || !op.visibleTo(c) {
		return nil, errdefs.Newf(errdefs.NotFound, "operation %q not found", id)
	}
	return op, nil
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request, c *caller) error {
	op, err := s.operation(r, c)
	if err != nil {
		return err
	}
	s.reply(w, op.api(true))
	return nil
}

func (s *Server) cancelOperation(w http.ResponseWriter, r *http.Request, c *caller) error {
	op, err := s.operation(r, c)
	if err != nil {
		return err
	}
	if !op.requestCancel() {
		return errdefs.Newf(errdefs.Exists, "operation %s has already ended (%s)", op.id, op.api(false).Status)
	}
	s.reply(w, op.api(false))
	return nil
}

// waitOperation is GET /1.0/operations/<id>/wait?timeout=SECONDS (-1 or
// none: until it ends).
func (s *Server) waitOperation(w http.ResponseWriter, r *http.Request, c *caller) error {
	op, err := s.operation(r, c)
	if err != nil {
		return err
	}
	timeout := time.Duration(-1)
	if t := r.URL.Query().Get("timeout"); t != "" {
		secs, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return errdefs.Newf(errdefs.Invalid, "timeout %q: want seconds, or -1 for no limit", t)
		}
		if secs >= 0 {
			timeout = time.Duration(secs * float64(time.Second))
		}
	}
	op.wait(r.Context(), timeout)
	if r.Context().Err() != nil {
		return nil // the peer went away
	}
	s.reply(w, op.api(true))
	return nil
}

// --- projects ---

// envOf is the client's environment for env() in den.hcl.
func envOf(r *http.Request) (func(string) string, error) {
	m := map[string]string{}
	if h := r.Header.Get(EnvHeader); h != "" {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			return nil, errdefs.Newf(errdefs.Invalid, "%s: not base64: %v", EnvHeader, err)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, errdefs.Newf(errdefs.Invalid, "%s: not a JSON object of strings: %v", EnvHeader, err)
		}
	}
	return func(k string) string { return m[k] }, nil
}

// loadProject reads den.hcl of the project e for r's caller.
func (s *Server) loadProject(r *http.Request, e projectEntry) (*config.Project, error) {
	getenv, err := envOf(r)
	if err != nil {
		return nil, err
	}
	return config.LoadWith(filepath.Join(e.Path, config.FileName), config.LoadOptions{Name: config.FileName, Getenv: getenv})
}

// project finds the project of the request's {pid} that c may use, and
// loads its den.hcl. A project c may not use is not found: another
// user's machines are invisible.
func (s *Server) project(r *http.Request, c *caller) (projectEntry, *config.Project, error) {
	id := r.PathValue("pid")
	e, ok := s.projects.get(id)
	if !ok || checkProjectAccess(c, e.Path) != nil {
		return e, nil, errdefs.Newf(errdefs.NotFound, "project %q not found (register its folder with POST /1.0/projects)", id)
	}
	p, err := s.loadProject(r, e)
	return e, p, err
}

// machines selects the machines of the request: {name} when the route
// has it, else names (all without).
func machines(r *http.Request, p *config.Project, names []string) ([]*machine.Machine, error) {
	if n := r.PathValue("name"); n != "" {
		names = []string{n}
	}
	return machine.Select(p, names)
}

func (s *Server) projectURL(id string) string { return "/" + api.Version + "/projects/" + id }

func (s *Server) machineURL(pid, name string) string {
	return s.projectURL(pid) + "/machines/" + name
}

// apiProject describes a project and its machines.
func (s *Server) apiProject(ctx context.Context, e projectEntry, p *config.Project) (api.Project, error) {
	out := api.Project{ID: e.ID, Path: e.Path, File: filepath.Join(e.Path, config.FileName), Machines: []api.Machine{}}
	var st syscall_Stat
	if statOwner(e.Path, &st) == nil {
		out.Owner = st.uid
	}
	if p == nil {
		return out, nil
	}
	ms, _ := machine.Select(p, nil)
	for _, m := range ms {
		am, err := s.apiMachine(ctx, e, m)
		if err != nil {
			return out, err
		}
		out.Machines = append(out.Machines, am)
	}
	return out, nil
}

func (s *Server) apiMachine(ctx context.Context, e projectEntry, m *machine.Machine) (api.Machine, error) {
	sts, err := s.env.Status(ctx, []*machine.Machine{m})
	if err != nil {
		return api.Machine{}, err
	}
	st := sts[0]
	c := m.Config
	am := api.Machine{Name: m.Name(), Project: e.ID, State: st.State, Address: st.Address, Container: st.Container, Box: st.Box, Provider: st.Provider, Hostname: c.Hostname, Limits: api.Limits{Memory: c.Memory, CPUs: c.CPUs}}
	for _, f := range c.Forwards {
		am.Forwards = append(am.Forwards, f.String())
	}
	return am, nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	if path := q.Get("path"); path != "" {
		if !filepath.IsAbs(path) {
			return errdefs.Newf(errdefs.Invalid, "path %q is not absolute: name the project folder from /", path)
		}
		e, ok := s.projects.get(ProjectID(filepath.Clean(path)))
		if !ok || checkProjectAccess(c, e.Path) != nil {
			return errdefs.Newf(errdefs.NotFound, "no registered project in %s", path)
		}
		p, err := s.loadProject(r, e)
		if err != nil {
			return err
		}
		ap, err := s.apiProject(r.Context(), e, p)
		if err != nil {
			return err
		}
		s.reply(w, ap)
		return nil
	}
	recursion := q.Get("recursion") == "1"
	urls := []string{}
	objs := []api.Project{}
	for _, e := range s.projects.all() {
		if checkProjectAccess(c, e.Path) != nil {
			continue
		}
		urls = append(urls, s.projectURL(e.ID))
		if recursion {
			p, _ := s.loadProject(r, e)
			ap, _ := s.apiProject(r.Context(), e, p)
			objs = append(objs, ap)
		}
	}
	if recursion {
		s.reply(w, objs)
	} else {
		s.reply(w, urls)
	}
	return nil
}

// postProject registers a project folder (idempotent) and returns it.
func (s *Server) postProject(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.ProjectsPost
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Path == "" || !filepath.IsAbs(req.Path) {
		return errdefs.Newf(errdefs.Invalid, "path %q is not absolute: name the project folder from / (it is a path on the server's host)", req.Path)
	}
	path := filepath.Clean(req.Path)
	fi, err := os.Stat(path)
	switch {
	case err != nil && os.IsNotExist(err):
		return errdefs.Newf(errdefs.Invalid, "project folder %s does not exist", path)
	case err != nil:
		return errdefs.Newf(errdefs.Invalid, "project folder %s: %v", path, err)
	case !fi.IsDir():
		return errdefs.Newf(errdefs.Invalid, "%s is not a folder: name the folder that holds den.hcl", path)
	}
	if err := checkProjectAccess(c, path); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(path, config.FileName)); err != nil {
		return errdefs.Newf(errdefs.Invalid, "no %s in %s: run 'den init' there first", config.FileName, path)
	}
	e, err := s.projects.add(path)
	if err != nil {
		return err
	}
	p, err := s.loadProject(r, e)
	if err != nil {
		return err
	}
	ap, err := s.apiProject(r.Context(), e, p)
	if err != nil {
		return err
	}
	s.reply(w, ap)
	return nil
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request, c *caller) error {
	e, p, err := s.project(r, c)
	if err != nil {
		return err
	}
	ap, err := s.apiProject(r.Context(), e, p)
	if err != nil {
		return err
	}
	s.reply(w, ap)
	return nil
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("pid")
	e, ok := s.projects.get(id)
	if !ok || checkProjectAccess(c, e.Path) != nil {
		return errdefs.Newf(errdefs.NotFound, "project %q not found", id)
	}
	if err := s.projects.remove(id); err != nil {
		return err
	}
	s.reply(w, map[string]string{})
	return nil
}

// --- machines ---

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request, c *caller) error {
	e, p, err := s.project(r, c)
	if err != nil {
		return err
	}
	ms, _ := machine.Select(p, nil)
	if r.URL.Query().Get("recursion") == "1" {
		out := []api.Machine{}
		for _, m := range ms {
			am, err := s.apiMachine(r.Context(), e, m)
			if err != nil {
				return err
			}
			out = append(out, am)
		}
		s.reply(w, out)
		return nil
	}
	urls := []string{}
	for _, m := range ms {
		urls = append(urls, s.machineURL(e.ID, m.Name()))
	}
	s.reply(w, urls)
	return nil
}

func (s *Server) oneMachine(r *http.Request, c *caller) (projectEntry, *config.Project, *machine.Machine, error) {
	e, p, err := s.project(r, c)
	if err != nil {
		return e, nil, nil, err
	}
	ms, err := machines(r, p, nil)
	if err != nil {
		return e, p, nil, err
	}
	return e, p, ms[0], nil
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request, c *caller) error {
	e, _, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	am, err := s.apiMachine(r.Context(), e, m)
	if err != nil {
		return err
	}
	s.reply(w, am)
	return nil
}

func (s *Server) getMachineState(w http.ResponseWriter, r *http.Request, c *caller) error {
	_, _, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	// One Inspect: the state and the limits from one look at the
	// machine (Status would look again).
	info, err := s.env.Inspect(r.Context(), m)
	if err != nil {
		return err
	}
	out := api.MachineState{Status: info.State.String(), MemoryLimit: info.MemoryLimit, CPUs: info.CPUs}
	if rec, err := m.Record(); err == nil && rec != nil { // as status shows it
		out.Address = rec.IP()
	}
	s.reply(w, out)
	return nil
}

func (s *Server) deleteMachine(w http.ResponseWriter, r *http.Request, c *caller) error {
	e, p, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	ms := []*machine.Machine{m}
	return s.startOp(w, c, e, p, ms, "Destroying machine "+m.Name(), func(ctx context.Context, env *machine.Env) error {
		return env.Destroy(ctx, ms)
	}, nil)
}

// upOptions turns the API's provisioning fields into the domain's.
func upOptions(mode string, with []string, parallel bool) (machine.UpOptions, error) {
	opts := machine.UpOptions{With: with, Parallel: parallel}
	switch mode {
	case api.ProvisionAuto:
	case api.ProvisionForce:
		opts.Provision = machine.ProvisionForce
	case api.ProvisionNever:
		if len(with) > 0 {
			return opts, errdefs.Newf(errdefs.Invalid, "provision_with and provision %q exclude each other", mode)
		}
		opts.Provision = machine.ProvisionNever
	default:
		return opts, errdefs.Newf(errdefs.Invalid, "provision %q: want \"\" (automatic), \"force\" or \"never\"", mode)
	}
	return opts, nil
}

// putState runs an action on the project's machines (or the one in the
// path) as an operation.
func (s *Server) putState(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.StatePut
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Timeout < 0 {
		return errdefs.Newf(errdefs.Invalid, "timeout %v: want seconds, 0 or more", req.Timeout)
	}
	timeout := 30 * time.Second
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout * float64(time.Second))
	}
	e, p, err := s.project(r, c)
	if err != nil {
		return err
	}
	if r.PathValue("name") != "" && len(req.Machines) > 0 {
		return errdefs.Newf(errdefs.Invalid, "machines: the path names the machine already")
	}
	ms, err := machines(r, p, req.Machines)
	if err != nil {
		return err
	}
	up, err := upOptions(req.Provision, req.ProvisionWith, !req.NoParallel)
	if err != nil {
		return err
	}
	names := machineNames(ms)
	var run func(ctx context.Context, env *machine.Env) error
	starts := false // the action boots machines: den.hcl's policy applies
	desc := ""
	switch req.Action {
	case api.ActionUp:
		starts, desc = true, "Bringing up "+names
		run = func(ctx context.Context, env *machine.Env) error { return env.Up(ctx, ms, up) }
	case api.ActionReload:
		starts, desc = true, "Reloading "+names
		run = func(ctx context.Context, env *machine.Env) error { return env.Reload(ctx, ms, up, timeout) }
	case api.ActionProvision:
		if req.Provision != "" {
			return errdefs.Newf(errdefs.Invalid, "provision: every provisioner runs (or those provision_with names); provision %q does not apply", req.Provision)
		}
		starts, desc = true, "Provisioning "+names
		run = func(ctx context.Context, env *machine.Env) error {
			return env.Provision(ctx, ms, machine.ProvisionOptions{Only: req.ProvisionWith, Force: true})
		}
	case api.ActionHalt:
		desc = "Halting " + names
		run = func(ctx context.Context, env *machine.Env) error { return env.Halt(ctx, ms, req.Force, timeout) }
	case api.ActionSuspend:
		desc = "Suspending " + names
		run = func(ctx context.Context, env *machine.Env) error { return env.Suspend(ctx, ms) }
	case api.ActionResume:
		desc = "Resuming " + names
		run = func(ctx context.Context, env *machine.Env) error { return env.Resume(ctx, ms) }
	case api.ActionDestroy:
		desc = "Destroying " + names
		run = func(ctx context.Context, env *machine.Env) error { return env.Destroy(ctx, ms) }
	case api.ActionPush:
		desc = "Pushing a snapshot of " + names
		run = func(ctx context.Context, env *machine.Env) error { return env.SnapshotPush(ctx, ms) }
	case api.ActionPop:
		if req.NoStart && (req.Provision == api.ProvisionForce || len(req.ProvisionWith) > 0) {
			return errdefs.Newf(errdefs.Invalid, "no_start and provisioning exclude each other: provisioners run on a started machine")
		}
		starts, desc = !req.NoStart, "Popping a snapshot of "+names
		opts := machine.RestoreOptions{NoStart: req.NoStart, NoDelete: req.NoDelete, Up: up}
		run = func(ctx context.Context, env *machine.Env) error { return env.SnapshotPop(ctx, ms, opts) }
	case "":
		return errdefs.Newf(errdefs.Invalid, "action is missing: up, halt, reload, provision, suspend, resume, destroy, snapshot-push or snapshot-pop")
	default:
		return errdefs.Newf(errdefs.Invalid, "unknown action %q: up, halt, reload, provision, suspend, resume, destroy, snapshot-push or snapshot-pop", req.Action)
	}
	if req.Action != api.ActionHalt && req.Action != api.ActionReload && (req.Force || req.Timeout != 0) {
		return errdefs.Newf(errdefs.Invalid, "force and timeout apply to halt and reload only")
	}
	if starts {
		if err := s.policy(c, p, ms); err != nil {
			return err
		}
	}
	return s.startOp(w, c, e, p, ms, desc, run, nil)
}

func machineNames(ms []*machine.Machine) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name()
	}
	return strings.Join(names, ", ")
}

// startOp starts an operation on machines of a project and answers with
// it. When it ends, .den/ goes to the project folder's owner.
func (s *Server) startOp(w http.ResponseWriter, c *caller, e projectEntry, p *config.Project, ms []*machine.Machine, desc string, run func(context.Context, *machine.Env) error, lifecycle []api.LifecycleEvent) error {
	res := map[string][]string{"projects": {s.projectURL(e.ID)}}
	for _, m := range ms {
		res["machines"] = append(res["machines"], s.machineURL(e.ID, m.Name()))
	}
	op, err := s.ops.start(opSpec{
		desc: desc, owner: c, project: e.ID, resources: res, machines: ms, run: run, lifecycle: lifecycle,
		after: func() {
			if err := machine.ChownState(p); err != nil {
				s.log.Warn("give .den/ to the project's owner", "project", p.Dir, "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	s.replyAsync(w, op)
	return nil
}

// states reads the machines' states, for lifecycle events.
func (s *Server) states(ctx context.Context, ms []*machine.Machine) map[string]string {
	out := map[string]string{}
	if len(ms) == 0 {
		return out
	}
	sts, _ := s.env.Status(ctx, ms)
	for _, st := range sts {
		out[st.Name] = st.State
	}
	return out
}

// lifecycle publishes what changed for each machine of op, and op's own
// lifecycle events when it succeeded.
func (s *Server) lifecycle(op *operation, before map[string]string, err error) {
	ms := op.spec.machines
	if len(ms) > 0 {
		after := s.states(context.Background(), ms)
		for _, m := range ms {
			for _, action := range transitions(before[m.Name()], after[m.Name()]) {
				s.publishLifecycle(op, api.LifecycleEvent{Action: action, Source: s.machineURL(op.spec.project, m.Name())})
			}
		}
	}
	if err == nil {
		for _, l := range op.spec.lifecycle {
			s.publishLifecycle(op, l)
		}
	}
}

// transitions names what a state change means.
func transitions(from, to string) []string {
	if from == to || from == "" || to == "" {
		return nil
	}
	var out []string
	if from == "not created" {
		out = append(out, "machine-created")
	}
	switch to {
	case "running":
		if from == "frozen" {
			out = append(out, "machine-resumed")
		} else {
			out = append(out, "machine-started")
		}
	case "stopped":
		if from != "not created" {
			out = append(out, "machine-stopped")
		}
	case "frozen":
		out = append(out, "machine-suspended")
	case "not created":
		out = append(out, "machine-deleted")
	}
	return out
}

func (s *Server) publishLifecycle(op *operation, l api.LifecycleEvent) {
	l.Operation = op.url()
	l.Requestor = op.spec.owner.String()
	b, _ := json.Marshal(l)
	s.hub.publish(&hubEvent{ev: api.Event{Type: api.EventLifecycle, Timestamp: time.Now().UTC(), Project: op.spec.project, Metadata: b}, owner: op.spec.owner, project: op.spec.project, operation: op.id})
}

package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fetch"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/version"
	"github.com/den-dev/den/provider"
)

type syscall_Stat struct{ uid int }

func statOwner(path string, st *syscall_Stat) error {
	var s syscall.Stat_t
	if err := syscall.Stat(path, &s); err != nil {
		return err
	}
	st.uid = int(s.Uid)
	return nil
}

// --- snapshots ---

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request, c *caller) error {
	_, p, err := s.project(r, c)
	if err != nil {
		return err
	}
	ms, err := machines(r, p, r.URL.Query()["machine"])
	if err != nil {
		return err
	}
	rows, err := s.env.SnapshotList(r.Context(), ms)
	if err != nil {
		return err
	}
	out := []api.Snapshot{}
	for _, row := range rows {
		out = append(out, api.Snapshot{Machine: row.Machine, Name: row.Name, Created: row.Created, Size: row.Size, Shared: row.Shared})
	}
	s.reply(w, out)
	return nil
}

func (s *Server) postSnapshots(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.SnapshotsPost
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := provider.CheckSnapshotName(req.Name); err != nil {
		return errdefs.With(errdefs.Invalid, err)
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
	var lc []api.LifecycleEvent
	for _, m := range ms {
		lc = append(lc, api.LifecycleEvent{Action: "snapshot-created", Source: s.machineURL(e.ID, m.Name()) + "/snapshots/" + req.Name})
	}
	return s.startOp(w, c, e, p, ms, fmt.Sprintf("Saving snapshot %s of %s", req.Name, machineNames(ms)), func(ctx context.Context, env *machine.Env) error {
		return env.SnapshotSave(ctx, ms, req.Name, req.Force)
	}, lc)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request, c *caller) error {
	snap := r.PathValue("snap")
	if err := provider.CheckSnapshotName(snap); err != nil {
		return errdefs.With(errdefs.Invalid, err)
	}
	e, p, err := s.project(r, c)
	if err != nil {
		return err
	}
	ms, err := machines(r, p, r.URL.Query()["machine"])
	if err != nil {
		return err
	}
	var lc []api.LifecycleEvent
	for _, m := range ms {
		lc = append(lc, api.LifecycleEvent{Action: "snapshot-deleted", Source: s.machineURL(e.ID, m.Name()) + "/snapshots/" + snap})
	}
	return s.startOp(w, c, e, p, ms, fmt.Sprintf("Deleting snapshot %s of %s", snap, machineNames(ms)), func(ctx context.Context, env *machine.Env) error {
		return env.SnapshotDelete(ctx, ms, snap)
	}, lc)
}

// postSnapshot acts on one snapshot: {"action": "restore"}.
func (s *Server) postSnapshot(w http.ResponseWriter, r *http.Request, c *caller) error {
	snap := r.PathValue("snap")
	if err := provider.CheckSnapshotName(snap); err != nil {
		return errdefs.With(errdefs.Invalid, err)
	}
	var req api.SnapshotPost
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Action != "restore" {
		return errdefs.Newf(errdefs.Invalid, "action %q: the one action on a snapshot is \"restore\"", req.Action)
	}
	if req.NoStart && (req.Provision == api.ProvisionForce || len(req.ProvisionWith) > 0) {
		return errdefs.Newf(errdefs.Invalid, "no_start and provisioning exclude each other: provisioners run on a started machine")
	}
	up, err := upOptions(req.Provision, req.ProvisionWith, true)
	if err != nil {
		return err
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
	if !req.NoStart {
		if err := s.policy(c, p, ms); err != nil {
			return err
		}
	}
	var lc []api.LifecycleEvent
	for _, m := range ms {
		lc = append(lc, api.LifecycleEvent{Action: "snapshot-restored", Source: s.machineURL(e.ID, m.Name()) + "/snapshots/" + snap})
	}
	opts := machine.RestoreOptions{NoStart: req.NoStart, Up: up}
	return s.startOp(w, c, e, p, ms, fmt.Sprintf("Restoring snapshot %s of %s", snap, machineNames(ms)), func(ctx context.Context, env *machine.Env) error {
		return env.SnapshotRestore(ctx, ms, snap, opts)
	}, lc)
}

// --- package, logs ---

func (s *Server) postPackage(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.PackagePost
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Output == "" || !filepath.IsAbs(req.Output) {
		return errdefs.Newf(errdefs.Invalid, "output %q is not absolute: name the box file to write from / (a path on the server's host)", req.Output)
	}
	out := filepath.Clean(req.Output)
	comp := "zstd"
	if req.Compression != "" {
		comp = req.Compression
	}
	compression, err := box.ParseCompression(comp)
	if err != nil {
		return errdefs.With(errdefs.Invalid, err)
	}
	e, p, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	if err := can(c, filepath.Dir(out), mayWrite|mayEnter); err != nil {
		return forbid("%s cannot write in %s (%v): den will not write the box file there for them", c, filepath.Dir(out), err)
	}
	opts := machine.PackageOptions{Output: out, Compression: compression, Version: req.Version}
	ms := []*machine.Machine{m}
	return s.startOp(w, c, e, p, ms, "Packaging "+m.Name()+" into "+out, func(ctx context.Context, env *machine.Env) error {
		err := env.Package(ctx, m, opts)
		if err == nil && !c.admin() {
			// The box file belongs to who asked for it.
			os.Lchown(out, c.uid, c.gid)
		}
		return err
	}, []api.LifecycleEvent{{Action: "machine-packaged", Source: s.machineURL(e.ID, m.Name())}})
}

// logFiles are the logs of a machine the API serves, by name.
func (s *Server) logFiles(ctx context.Context, m *machine.Machine) map[string]string {
	out := map[string]string{"forward.log": m.State.ForwardLog()}
	if info, err := s.env.Inspect(ctx, m); err == nil && info.LogFile != "" {
		out["lxc.log"] = info.LogFile
	}
	return out
}

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request, c *caller) error {
	e, _, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	urls := []string{}
	for name, path := range s.logFiles(r.Context(), m) {
		if _, err := os.Lstat(path); err == nil {
			urls = append(urls, s.machineURL(e.ID, m.Name())+"/logs/"+name)
		}
	}
	s.reply(w, urls)
	return nil
}

// getLog serves one log as text (not an envelope, as LXD's logs).
func (s *Server) getLog(w http.ResponseWriter, r *http.Request, c *caller) error {
	_, _, m, err := s.oneMachine(r, c)
	if err != nil {
		return err
	}
	name := r.PathValue("file")
	path, ok := s.logFiles(r.Context(), m)[name]
	if !ok {
		return errdefs.Newf(errdefs.NotFound, "no log %q: the logs are lxc.log and forward.log", name)
	}
	f, err := fsutil.OpenRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return errdefs.Newf(errdefs.NotFound, "log %s: %v", name, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.Copy(w, io.LimitReader(f, 64<<20))
	return nil
}

// --- global status ---

func (s *Server) visibleGlobal(ctx context.Context, c *caller) ([]machine.GlobalEntry, error) {
	all, err := s.env.GlobalStatus(ctx)
	if err != nil {
		return nil, err
	}
	var out []machine.GlobalEntry
	for _, g := range all {
		if c.admin() || checkProjectAccess(c, g.Directory) == nil {
			out = append(out, g)
		}
	}
	return out, nil
}

func apiGlobal(gs []machine.GlobalEntry) []api.GlobalMachine {
	out := []api.GlobalMachine{}
	for _, g := range gs {
		out = append(out, api.GlobalMachine{ID: g.ID, Name: g.Name, Provider: g.Provider, State: g.State, Directory: g.Directory, Address: g.Address, Container: g.Container, Box: g.Box, Stale: g.Stale, RemoveHint: g.RemoveHint, ContainerExists: g.ContainerExists})
	}
	return out
}

func (s *Server) globalStatus(w http.ResponseWriter, r *http.Request, c *caller) error {
	gs, err := s.visibleGlobal(r.Context(), c)
	if err != nil {
		return err
	}
	s.reply(w, apiGlobal(gs))
	return nil
}

// pruneGlobal drops the stale index entries the caller can see and
// returns them.
func (s *Server) pruneGlobal(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := decode(r, &struct{}{}); err != nil {
		return err
	}
	gs, err := s.visibleGlobal(r.Context(), c)
	if err != nil {
		return err
	}
	var stale []machine.GlobalEntry
	for _, g := range gs {
		if g.Stale != "" {
			stale = append(stale, g)
		}
	}
	dropped, err := s.env.PruneGlobal(r.Context(), stale)
	if err != nil {
		return err
	}
	s.reply(w, apiGlobal(dropped))
	return nil
}

// --- boxes ---

func (s *Server) listBoxes(w http.ResponseWriter, r *http.Request, c *caller) error {
	boxes, err := s.env.Store.List()
	if err != nil {
		return err
	}
	out := []api.Box{}
	for _, b := range boxes {
		size, _ := b.Size()
		out = append(out, api.Box{Name: b.Name, Version: b.Version, Size: size, Created: b.Created, User: b.Meta.LoginUser(), Path: b.Dir})
	}
	s.reply(w, out)
	return nil
}

// postBoxes adds a box: from a JSON request naming a URL (or, for an
// administrator, a path on this host), or from a box file uploaded as the
// body (application/octet-stream; name, version, force in the query).
func (s *Server) postBoxes(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.BoxesPost
	var upload string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		q := r.URL.Query()
		req = api.BoxesPost{Name: q.Get("name"), Version: q.Get("version"), Force: q.Get("force") == "1" || q.Get("force") == "true"}
		if req.Name == "" {
			return errdefs.Newf(errdefs.Invalid, "an uploaded box file needs ?name=NAME")
		}
		if err := box.CheckName(req.Name); err != nil {
			return errdefs.With(errdefs.Invalid, err)
		}
		dir := filepath.Join(StateDir(s.home), "uploads")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err := os.CreateTemp(dir, "box-*.box")
		if err != nil {
			return err
		}
		upload = f.Name()
		_, err = io.Copy(f, r.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(upload)
			return errdefs.Newf(errdefs.Invalid, "upload of the box file broke off: %v", err)
		}
		req.Source = upload
	} else {
		if err := decode(r, &req); err != nil {
			return err
		}
		if req.Source == "" {
			return errdefs.Newf(errdefs.Invalid, "source is missing: a box file or catalog URL, or upload the box file as the body")
		}
		if !strings.HasPrefix(req.Source, "http://") && !strings.HasPrefix(req.Source, "https://") {
			if !c.admin() {
				return forbid("%s may add boxes from http(s) URLs or by uploading the file; a path on the server's host is for its administrator", c)
			}
			if !filepath.IsAbs(req.Source) && !strings.HasPrefix(req.Source, "file://") {
				return errdefs.Newf(errdefs.Invalid, "source %q is not absolute: name the box file from / (a path on the server's host)", req.Source)
			}
		}
		if req.Name != "" {
			if err := box.CheckName(req.Name); err != nil {
				return errdefs.With(errdefs.Invalid, err)
			}
		}
	}
	breq := box.Request{Name: req.Name, Source: req.Source, Version: req.Version, Force: req.Force}
	var err error
	if breq.Constraints, err = version.ParseConstraints(req.BoxVersion); err != nil {
		os.Remove(upload)
		return errdefs.Newf(errdefs.Invalid, "box_version: %v", err)
	}
	if breq.Checksum, err = fetch.ParseChecksum(req.Checksum); err != nil {
		os.Remove(upload)
		return errdefs.Newf(errdefs.Invalid, "checksum: %v", err)
	}
	op, err := s.ops.start(opSpec{
		desc: "Adding box " + req.Name, owner: c, resources: map[string][]string{"boxes": {"/" + api.Version + "/boxes"}},
		run: func(ctx context.Context, env *machine.Env) error {
			b, err := env.Store.Acquire(ctx, env.UI, breq)
			if err == nil {
				env.UI.Say(b.Name, "Added box %s version %s.", b.Name, b.Version)
			}
			return err
		},
		lifecycle: []api.LifecycleEvent{{Action: "box-added", Source: "/" + api.Version + "/boxes"}},
		after: func() {
			if upload != "" {
				os.Remove(upload)
			}
		},
	})
	if err != nil {
		os.Remove(upload)
		return err
	}
	s.replyAsync(w, op)
	return nil
}

// deleteBox removes a box (?version=V, ?force=1): the store is shared by
// every user, so only an administrator may.
func (s *Server) deleteBox(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !c.admin() {
		return forbid("%s may not remove boxes: the box store is shared by every user of this den serve", c)
	}
	name := r.PathValue("box")
	if err := box.CheckName(name); err != nil {
		return errdefs.With(errdefs.Invalid, err)
	}
	q := r.URL.Query()
	ver := q.Get("version")
	force, _ := strconv.ParseBool(q.Get("force"))
	op, err := s.ops.start(opSpec{
		desc: "Removing box " + name, owner: c, resources: map[string][]string{"boxes": {"/" + api.Version + "/boxes/" + name}},
		run: func(ctx context.Context, env *machine.Env) error {
			return env.RemoveBox(ctx, name, ver, force)
		},
		lifecycle: []api.LifecycleEvent{{Action: "box-removed", Source: "/" + api.Version + "/boxes/" + name}},
	})
	if err != nil {
		return err
	}
	s.replyAsync(w, op)
	return nil
}

// --- certificates ---

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !c.admin() {
		return forbid("%s may not see trusted certificates", c)
	}
	certs, err := s.trust.List()
	if err != nil {
		return err
	}
	s.reply(w, certs)
	return nil
}

func (s *Server) postCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !c.admin() {
		return forbid("%s may not trust certificates", c)
	}
	var req api.CertificatesPost
	if err := decode(r, &req); err != nil {
		return err
	}
	cert, err := s.trust.Add(req.Name, []byte(req.Certificate))
	if err != nil {
		return err
	}
	s.reply(w, cert)
	return nil
}

func (s *Server) deleteCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !c.admin() {
		return forbid("%s may not remove trusted certificates", c)
	}
	if err := s.trust.Remove(r.PathValue("fp")); err != nil {
		return err
	}
	s.reply(w, map[string]string{})
	return nil
}

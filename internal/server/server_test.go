package server

// Tests of the API against the domain with the in-memory fake provider:
// a real server on a real unix socket in a temporary folder, the Go
// client and raw HTTP as callers. No root, box or container needed (the
// tests of callers who are not root chown a folder and skip without root).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/box"
	"github.com/den-dev/den/client"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/fake"
)

// fakeNoAddr is the fake provider without its address ability, so no
// test touches the host-wide address lock in /run.
type fakeNoAddr struct {
	provider.Provider
	provider.Snapshotter
	provider.Dialer
}

func noAddr(p *fake.Provider) fakeNoAddr { return fakeNoAddr{p, p, p} }

// testServer is a server on a socket, with a project folder.
type testServer struct {
	t    *testing.T
	srv  *Server
	prov *fake.Provider
	sock string
	dir  string // a project folder
	c    *client.Client
	l    net.Listener
}

// as serves the same server on another socket whose callers are c.
func (ts *testServer) as(c *caller) *client.Client {
	ts.t.Helper()
	path := filepath.Join(filepath.Dir(ts.sock), fmt.Sprintf("as-%d.sock", c.uid))
	l, err := net.Listen("unix", path)
	if err != nil {
		ts.t.Fatal(err)
	}
	hs := ts.srv.newHTTPServer(ts.srv.handler, func(ctx context.Context, _ net.Conn) context.Context { return withCaller(ctx, c) })
	go hs.Serve(l)
	cl, _ := client.ConnectUnix(path)
	return cl
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	base := t.TempDir()
	home := layout.Home(filepath.Join(base, "home"))
	prov := fake.New(filepath.Join(home.Path(), "fake"))
	env := machine.NewEnv(machine.Options{Home: home, Providers: []provider.Provider{noAddr(prov)}})
	env.ReadyTimeout = 10 * time.Second
	env.Store.LockWait = 100 * time.Millisecond
	addBox(t, env, "test/box", "1.0")
	cfg.Env = env
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, prov: prov, sock: filepath.Join(base, "den.sock"), dir: filepath.Join(base, "app")}
	if err := os.Mkdir(ts.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ts.l, err = ListenUnix(ts.sock, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeUnix(ts.l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx, time.Second)
		<-done
	})
	ts.c, _ = client.ConnectUnix(ts.sock)
	return ts
}

// addBox installs a tiny box: a login user den (1000), /etc/ssh.
func addBox(t *testing.T, env *machine.Env, name, version string) {
	t.Helper()
	tmp, err := env.Store.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(tmp, "rootfs")
	files := map[string]string{
		"etc/passwd":       "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000::/home/den:/bin/bash\n",
		"etc/group":        "root:x:0:\nden:x:1000:\n",
		"etc/ssh/sshd.cfg": "",
		"home/den/.bashrc": "# rc\n",
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	meta := box.Metadata{Provider: box.FormatProvider, Version: box.FormatVersion, Den: &box.DenMetadata{Version: version, User: "den"}}
	if _, err := env.Store.Import(name, version, meta, rootfs); err != nil {
		t.Fatal(err)
	}
}

func (ts *testServer) project(hcl string) *api.Project {
	ts.t.Helper()
	if err := os.WriteFile(filepath.Join(ts.dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
		ts.t.Fatal(err)
	}
	p, err := ts.c.RegisterProject(context.Background(), ts.dir)
	if err != nil {
		ts.t.Fatal(err)
	}
	return p
}

// raw sends a request and returns the status and decoded envelope.
func (ts *testServer) raw(method, path, body string) (int, api.Response) {
	ts.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", ts.sock)
	}}}
	req, _ := http.NewRequest(method, "http://den"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r api.Response
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		ts.t.Fatalf("%s %s: not an envelope: %q", method, path, b)
	}
	return resp.StatusCode, r
}

func TestServerInfoAndEnvelope(t *testing.T) {
	ts := newTestServer(t, Config{})
	code, r := ts.raw("GET", "/1.0", "")
	if code != 200 || r.Type != "sync" || r.StatusCode != 200 {
		t.Fatalf("GET /1.0: %d %+v", code, r)
	}
	var info api.Server
	json.Unmarshal(r.Metadata, &info)
	if info.Auth != "trusted" || !info.AuthAdmin || !slices.Contains(info.APIExtensions, "projects_by_path") || info.Environment == nil {
		t.Errorf("server info %+v: want trusted root with extensions and environment", info)
	}
	code, r = ts.raw("GET", "/", "")
	if code != 200 || string(r.Metadata) != `["/1.0"]` {
		t.Errorf("GET /: %d %s", code, r.Metadata)
	}
	code, r = ts.raw("GET", "/1.0/nothing", "")
	if code != 404 || r.Type != "error" || r.ErrorCode != 404 {
		t.Errorf("unknown path: %d %+v", code, r)
	}
	code, r = ts.raw("PATCH", "/1.0/operations", "")
	if code != 405 || r.Type != "error" || r.ErrorCode != 405 {
		t.Errorf("wrong method: %d %+v", code, r)
	}
}

// TestBadInput sends what a careless or hostile client would: each gets
// a clear error envelope and changes nothing.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, Config{})
	p := ts.project("box = \"test/box\"\n")
	notFolder := filepath.Join(ts.dir, "den.hcl")
	empty := t.TempDir()
	state := "/1.0/projects/" + p.ID + "/state"
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"malformed JSON", "POST", "/1.0/projects", `{"path": `, 400, "malformed request body"},
		{"not an object", "POST", "/1.0/projects", `[1,2]`, 400, "malformed request body"},
		{"unknown field", "POST", "/1.0/projects", `{"path": "/tmp", "paht": "x"}`, 400, "unknown field \"paht\""},
		{"trailing data", "POST", "/1.0/projects", `{"path": "/tmp"} {}`, 400, "data after the JSON object"},
		{"relative path", "POST", "/1.0/projects", `{"path": "app"}`, 400, "is not absolute"},
		{"empty path", "POST", "/1.0/projects", `{}`, 400, "is not absolute"},
		{"missing folder", "POST", "/1.0/projects", `{"path": "/nonexistent/den"}`, 400, "does not exist"},
		{"not a folder", "POST", "/1.0/projects", fmt.Sprintf(`{"path": %q}`, notFolder), 400, "is not a folder"},
		{"no den.hcl", "POST", "/1.0/projects", fmt.Sprintf(`{"path": %q}`, empty), 400, "no den.hcl"},
		{"lookup relative", "GET", "/1.0/projects?path=app", "", 400, "is not absolute"},
		{"unknown project", "GET", "/1.0/projects/0123456789abcdef", "", 404, "not found"},
		{"unknown machine", "GET", "/1.0/projects/" + p.ID + "/machines/web", "", 404, "no machine \"web\""},
		{"no action", "PUT", state, `{}`, 400, "action is missing"},
		{"unknown action", "PUT", state, `{"action": "explode"}`, 400, "unknown action"},
		{"wrong type", "PUT", state, `{"action": 3}`, 400, "malformed request body"},
		{"bad provision mode", "PUT", state, `{"action": "up", "provision": "sometimes"}`, 400, "provision \"sometimes\""},
		{"exclusive flags", "PUT", state, `{"action": "up", "provision": "never", "provision_with": ["a"]}`, 400, "exclude each other"},
		{"negative timeout", "PUT", state, `{"action": "halt", "timeout": -1}`, 400, "timeout"},
		{"force on up", "PUT", state, `{"action": "up", "force": true}`, 400, "halt and reload only"},
		{"bad snapshot name", "POST", "/1.0/projects/" + p.ID + "/snapshots", `{"name": "../x"}`, 400, "snapshot"},
		{"relative package output", "POST", "/1.0/projects/" + p.ID + "/machines/default/package", `{"output": "x.box"}`, 400, "is not absolute"},
		{"huge body", "POST", "/1.0/projects", `{"path": "` + strings.Repeat("a", 2<<20) + `"}`, 400, "over"},
		{"bad wait timeout", "GET", "/1.0/operations/x/wait?timeout=soon", "", 404, "not found"},
		{"box from a path, relative", "POST", "/1.0/boxes", `{"source": "x.box"}`, 400, "not absolute"},
		{"bad event type", "GET", "/1.0/events?type=gossip", "", 400, "unknown event type"},
	}
	before, _ := os.ReadFile(filepath.Join(StateDir(ts.srv.home), "projects.json"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, r := ts.raw(tc.method, tc.path, tc.body)
			if code != tc.code || r.Type != "error" || r.ErrorCode != tc.code || !strings.Contains(r.Error, tc.want) {
				t.Errorf("%s %s: %d %q (error_code %d), want %d with %q", tc.method, tc.path, code, r.Error, r.ErrorCode, tc.code, tc.want)
			}
		})
	}
	after, _ := os.ReadFile(filepath.Join(StateDir(ts.srv.home), "projects.json"))
	if string(before) != string(after) {
		t.Errorf("bad requests changed the registered projects:\n%s\n%s", before, after)
	}
	if ops := ts.srv.ops.list(); len(ops) != 0 {
		t.Errorf("bad requests started %d operations", len(ops))
	}
	if _, err := os.Stat(filepath.Join(ts.dir, ".den")); err == nil {
		t.Error("bad requests made .den/")
	}
}

// collect subscribes to /1.0/events and gathers events until stop.
func collect(t *testing.T, c *client.Client, types string) (func() []api.Event, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []api.Event
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		close(ready)
		c.Events(ctx, types, nil, func(e api.Event) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		})
	}()
	<-ready
	time.Sleep(100 * time.Millisecond) // the websocket is up
	return func() []api.Event {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}, func() {
			cancel()
			<-done
		}
}

func TestUpHaltDestroy(t *testing.T) {
	ts := newTestServer(t, Config{})
	p := ts.project("box = \"test/box\"\nmemory = \"256M\"\nprovision \"shell\" {\n  inline = [\"echo hello from the guest\"]\n}\n")
	events, stop := collect(t, ts.c, "lifecycle,operation")
	ctx := context.Background()
	op, err := ts.c.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	var lines []api.ProgressEvent
	final, err := op.Follow(ctx, func(e api.ProgressEvent) { lines = append(lines, e) })
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if final.Status != "Success" || len(final.Events) != len(lines) {
		t.Errorf("final %s with %d events, followed %d", final.Status, len(final.Events), len(lines))
	}
	for i, l := range lines {
		if l.Seq != i+1 {
			t.Fatalf("progress out of order: event %d has seq %d", i, l.Seq)
		}
	}
	texts := ""
	for _, l := range lines {
		texts += l.Machine + ": " + l.Text + "\n"
	}
	for _, want := range []string{"default: Creating machine from box test/box", "default: Starting machine...", "default: Machine booted and ready!"} {
		if !strings.Contains(texts, want) {
			t.Errorf("progress lacks %q:\n%s", want, texts)
		}
	}
	st, err := ts.c.MachineState(ctx, p.ID, "default")
	if err != nil || st.Status != "running" {
		t.Fatalf("state %+v, %v", st, err)
	}
	m, err := ts.c.Machine(ctx, p.ID, "default")
	if err != nil || m.Limits.Memory != 256<<20 || m.Box != "test/box" || m.State != "running" {
		t.Errorf("machine %+v, %v", m, err)
	}
	for _, action := range []string{api.ActionSuspend, api.ActionResume, api.ActionHalt, api.ActionDestroy} {
		op, err := ts.c.Action(ctx, p.ID, api.StatePut{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Wait(ctx, -1); err != nil {
			t.Fatalf("%s: %v", action, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	var actions []string
	for _, e := range events() {
		if e.Type == api.EventLifecycle {
			var l api.LifecycleEvent
			json.Unmarshal(e.Metadata, &l)
			actions = append(actions, l.Action)
		}
	}
	want := []string{"machine-created", "machine-started", "machine-suspended", "machine-resumed", "machine-stopped", "machine-deleted"}
	if !slices.Equal(actions, want) {
		t.Errorf("lifecycle events %v, want %v", actions, want)
	}
	// Operation events: each operation Pending or Running, then Success.
	var statuses []string
	for _, e := range events() {
		if e.Type == api.EventOperation {
			var o api.Operation
			json.Unmarshal(e.Metadata, &o)
			if o.ID == op.Op.ID {
				statuses = append(statuses, o.Status)
			}
		}
	}
	if len(statuses) < 2 || statuses[len(statuses)-1] != "Success" {
		t.Errorf("the first operation's events: %v", statuses)
	}
}

func TestProvisionerFailureOnWait(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.prov.Run = func(machine, cmd string, stdout func(string)) int {
		if strings.Contains(cmd, "den-provision") || strings.Contains(cmd, "sh") {
			stdout("about to fail")
			return 3
		}
		return 0
	}
	p := ts.project("box = \"test/box\"\nprovision \"shell\" {\n  name = \"breaks\"\n  inline = [\"exit 3\"]\n}\n")
	ctx := context.Background()
	op, err := ts.c.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	code, r := ts.raw("GET", "/1.0/operations/"+op.Op.ID+"/wait?timeout=30", "")
	var o api.Operation
	json.Unmarshal(r.Metadata, &o)
	if code != 200 || o.Status != "Failure" || o.ErrDetail == nil || o.ErrDetail.Kind != "guest-failed" || o.ErrDetail.ExitStatus != 3 || o.ErrDetail.Provisioner != "breaks" || o.ErrCode != 422 {
		t.Fatalf("wait: %d %+v (detail %+v)", code, o, o.ErrDetail)
	}
	if !strings.Contains(o.Err, "exit status 3") {
		t.Errorf("err %q does not name the exit status", o.Err)
	}
}

// TestCancel cancels an up while a provisioner runs: the operation ends
// Cancelled at the domain's next safe point and the next up recovers.
func TestCancel(t *testing.T) {
	ts := newTestServer(t, Config{})
	var slow sync.Once
	release := make(chan struct{})
	ts.prov.Run = func(machine, cmd string, stdout func(string)) int {
		block := false
		slow.Do(func() { block = true })
		if block {
			stdout("working")
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		return 0
	}
	defer close(release)
	p := ts.project("box = \"test/box\"\nprovision \"shell\" {\n  inline = [\"sleep 60\"]\n}\n")
	ctx := context.Background()
	op, err := ts.c.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the provisioner to start, then cancel.
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := ts.c.GetOperation(ctx, op.Op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(o.Op.Events, func(e api.ProgressEvent) bool { return e.Text == "working" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the provisioner never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, r := ts.raw("DELETE", "/1.0/operations/"+op.Op.ID, "")
	if code != 200 {
		t.Fatalf("DELETE: %d %+v", code, r)
	}
	final, err := op.Wait(ctx, 20*time.Second)
	if err == nil || final.Status != "Cancelled" || final.ErrDetail.Kind != "canceled" {
		t.Fatalf("after cancel: %+v, %v", final, err)
	}
	code, _ = ts.raw("DELETE", "/1.0/operations/"+op.Op.ID, "")
	if code != 409 {
		t.Errorf("cancelling an ended operation: %d, want 409", code)
	}
	op2, err := ts.c.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op2.Wait(ctx, -1); err != nil {
		t.Fatalf("up after a cancelled up: %v", err)
	}
	st, _ := ts.c.MachineState(ctx, p.ID, "default")
	if st.Status != "running" {
		t.Errorf("state after recovery: %s", st.Status)
	}
}

// TestManyRequests sends 1,000 requests at once through a semaphore of
// 8: every one is answered, and no goroutine is left behind.
func TestManyRequests(t *testing.T) {
	ts := newTestServer(t, Config{MaxRequests: 8, QueueWait: time.Minute})
	p := ts.project("box = \"test/box\"\n")
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	path := "/1.0/projects/" + p.ID + "/machines/default/state"
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("unix", ts.sock)
			if err != nil {
				mu.Lock()
				codes[-1]++
				mu.Unlock()
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: den\r\nConnection: close\r\n\r\n", path)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			code := -2
			if err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1000 {
		t.Errorf("answers %v, want 1000 × 200", codes)
	}
	settle(t, before)
}

// settle waits for the goroutines to fall back to about n.
func settle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n+5 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerVanishes drops connections mid-request, mid-body and during a
// wait: the server carries on, changes nothing and leaks nothing.
func TestPeerVanishes(t *testing.T) {
	ts := newTestServer(t, Config{})
	p := ts.project("box = \"test/box\"\n")
	before := runtime.NumGoroutine()
	send := func(s string) {
		conn, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, s)
		time.Sleep(20 * time.Millisecond)
		conn.Close()
	}
	send("GET /1.0 HTT")
	send("PUT /1.0/projects/" + p.ID + "/state HTTP/1.1\r\nHost: den\r\nContent-Length: 100\r\n\r\n{\"action\": \"up\"")
	send("GET /1.0/events HTTP/1.1\r\nHost: den\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	// A wait on a long operation whose client goes away.
	ts.prov.Run = func(machine, cmd string, stdout func(string)) int { time.Sleep(300 * time.Millisecond); return 0 }
	op, err := ts.c.Action(context.Background(), p.ID, api.StatePut{Action: api.ActionUp, Provision: api.ProvisionNever})
	if err != nil {
		t.Fatal(err)
	}
	send("GET /1.0/operations/" + op.Op.ID + "/wait HTTP/1.1\r\nHost: den\r\n\r\n")
	if _, err := op.Wait(context.Background(), -1); err != nil {
		t.Fatal(err)
	}
	if n := len(ts.srv.ops.list()); n != 1 {
		t.Errorf("%d operations, want the one up (the cut-off PUT started none)", n)
	}
	code, _ := ts.raw("GET", "/1.0", "")
	if code != 200 {
		t.Errorf("server after vanished peers: %d", code)
	}
	settle(t, before+1) // the client's idle connection may remain
}

// TestJournal lists an operation a killed server left running as failed.
func TestJournal(t *testing.T) {
	ts := newTestServer(t, Config{})
	dir := filepath.Join(StateDir(ts.srv.home), "operations")
	j := journalEntry{ID: "11111111-2222-4333-8444-555555555555", Description: "Bringing up default", Created: time.Now(), Owner: 0}
	b, _ := json.Marshal(j)
	os.WriteFile(filepath.Join(dir, j.ID+".json"), b, 0o600)
	srv2, err := New(Config{Env: ts.srv.env})
	if err != nil {
		t.Fatal(err)
	}
	op, ok := srv2.ops.get(j.ID)
	if !ok {
		t.Fatal("the interrupted operation is not listed")
	}
	a := op.api(false)
	if a.Status != "Failure" || !strings.Contains(a.Err, "interrupted") {
		t.Errorf("interrupted operation: %+v", a)
	}
	if _, err := os.Stat(filepath.Join(dir, j.ID+".json")); err == nil {
		t.Error("the journal entry stays")
	}
}

// TestShutdownCancels stops the server while an operation runs past the
// grace period: it is cancelled, ends, and the journal is empty.
func TestShutdownCancels(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.prov.Run = func(machine, cmd string, stdout func(string)) int { time.Sleep(3 * time.Second); return 0 }
	p := ts.project("box = \"test/box\"\nprovision \"shell\" {\n  inline = [\"sleep 60\"]\n}\n")
	op, err := ts.c.Action(context.Background(), p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx, 100*time.Millisecond)
	o, _ := ts.srv.ops.get(op.Op.ID)
	if a := o.api(false); a.StatusCode < api.StatusSuccess {
		t.Errorf("operation still %s after Shutdown", a.Status)
	}
	t.Logf("shutdown took %v", time.Since(start))
	files, _ := filepath.Glob(filepath.Join(StateDir(ts.srv.home), "operations", "*.json"))
	if len(files) != 0 {
		t.Errorf("journal after a clean shutdown: %v", files)
	}
	if _, err := ts.srv.ops.start(opSpec{owner: &caller{known: true}, run: func(context.Context, *machine.Env) error { return nil }}); err == nil {
		t.Error("a stopping server started an operation")
	}
}

var _ = ui.Discard

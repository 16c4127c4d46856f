package main

// End-to-end tests of den serve: the server as a separate process on a
// socket in a temporary folder, real containers, two users made by the
// test driving their own projects with the normal CLI, curl and the Go
// client as API callers, HTTPS with client certificates, cancellation and
// kill -9 of the server in the middle of an up.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/client"
	"github.com/den-dev/den/internal/fsutil"
)

// serveWorld is a running den serve and what the tests made for it.
type serveWorld struct {
	t      *testing.T
	dir    string // world-readable: the socket, den's binary, projects
	bin    string
	sock   string
	group  string
	listen string // HTTPS address
	cmd    *exec.Cmd
	log    string
}

func newServeWorld(t *testing.T) *serveWorld {
	t.Helper()
	needE2E(t)
	dir, err := os.MkdirTemp("/var/tmp", "den-serve-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	w := &serveWorld{t: t, dir: dir, bin: filepath.Join(dir, "den"), sock: filepath.Join(dir, "den.sock"), log: filepath.Join(dir, "serve.log"), group: "dent" + strconv.Itoa(os.Getpid()%100000)}
	t.Cleanup(func() {
		w.stop()
		exec.Command("groupdel", w.group).Run()
		if err := fsutil.RemoveTree(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	data, err := os.ReadFile(e2e.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.listen = l.Addr().String()
	l.Close()
	w.start()
	return w
}

// start runs den serve and waits for its socket.
func (w *serveWorld) start() {
	w.t.Helper()
	logf, err := os.OpenFile(w.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	defer logf.Close()
	w.cmd = exec.Command(w.bin, "serve", "--socket", w.sock, "--group", w.group, "--listen", w.listen, "--shutdown-timeout", "5s")
	w.cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", w.sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(w.log)
			w.t.Fatalf("den serve did not listen:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends den serve with SIGTERM (SIGKILL after a minute).
func (w *serveWorld) stop() {
	if w.cmd == nil || w.cmd.Process == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		w.cmd.Process.Kill()
		<-done
	}
	w.cmd = nil
}

// kill9 kills den serve at once.
func (w *serveWorld) kill9() {
	w.cmd.Process.Kill()
	w.cmd.Wait()
	w.cmd = nil
}

// newUser makes a user in the socket's group with a project folder.
func (w *serveWorld) newUser(name string) *user.User {
	w.t.Helper()
	exec.Command("groupadd", "--system", w.group).Run() // den serve made it; make sure
	home := filepath.Join(w.dir, name)
	out, err := exec.Command("useradd", "--home-dir", home, "--no-create-home", "--shell", "/bin/sh", "--groups", w.group, name).CombinedOutput()
	if err != nil {
		w.t.Fatalf("useradd %s: %v %s", name, err, out)
	}
	w.t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.Mkdir(home, 0o755); err != nil {
		w.t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chown(home, uid, gid)
	return u
}

// project writes a project folder of u (nil: root) with den.hcl.
func (w *serveWorld) project(u *user.User, name, hcl string) string {
	w.t.Helper()
	parent := w.dir
	if u != nil {
		parent = u.HomeDir
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(hcl), 0o644)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello "+name+"\n"), 0o644)
	if u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "den.hcl"), filepath.Join(dir, "hello.txt")} {
			os.Chown(p, uid, gid)
		}
	}
	w.t.Cleanup(func() {
		// Whatever a test left running: destroy it as root, without the server.
		if _, err := os.Stat(filepath.Join(dir, ".den")); err != nil {
			return // never made
		}
		cmd := exec.Command(e2e.bin, "destroy", "-f")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
		if out, err := cmd.CombinedOutput(); err != nil {
			w.t.Errorf("cleanup destroy in %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// den runs the den CLI as u in dir, with the server's socket.
func (w *serveWorld) den(u *user.User, dir string, args ...string) result {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "DEN_SOCKET=" + w.sock, "HOME=" + u.HomeDir, "USER=" + u.Username}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	g, _ := user.LookupGroup(w.group)
	sg, _ := strconv.Atoi(g.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(sg)}}}
	return runCmd(w.t, cmd, u.Username+": ")
}

// curl runs curl on the socket and decodes the envelope.
func (w *serveWorld) curl(args ...string) api.Response {
	w.t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--unix-socket", w.sock}, args...)...).Output()
	if err != nil {
		w.t.Fatalf("curl %v: %v", args, err)
	}
	var r api.Response
	if err := json.Unmarshal(out, &r); err != nil {
		w.t.Fatalf("curl %v: not an envelope: %s", args, out)
	}
	return r
}

func (w *serveWorld) client() *client.Client {
	c, _ := client.ConnectUnix(w.sock)
	return c
}

// TestE2EServeUsers: two users each bring up, use, halt and destroy their
// own project through den serve with the normal CLI; neither reaches the
// other's project or beyond what they could reach themselves; root sees
// both.
func TestE2EServeUsers(t *testing.T) {
	w := newServeWorld(t)
	suffix := strconv.Itoa(os.Getpid() % 100000)
	alice, bob := w.newUser("dena"+suffix), w.newUser("denb"+suffix)
	pa := w.project(alice, "app", "box = \"debian/bookworm\"\nmemory = \"256M\"\nprovision \"shell\" {\n  inline = [\"echo provisioned as $(id -un)\"]\n}\n")
	pb := w.project(bob, "api", "box = \"debian/bookworm\"\n")

	// Both up at once, each through the socket as themselves.
	done := make(chan result, 1)
	go func() { done <- w.den(bob, pb, "up") }()
	ra := w.den(alice, pa, "up")
	rb := <-done
	for _, r := range []result{ra, rb} {
		if r.code != 0 || !strings.Contains(r.out, "Machine booted and ready!") {
			t.Fatalf("up through den serve: %d\n%s%s", r.code, r.out, r.err)
		}
	}
	if !strings.Contains(ra.out, "default: provisioned as root") {
		t.Errorf("provisioner output missing from the CLI's progress:\n%s", ra.out)
	}
	// ssh directly with the machine's key, which .den/ now gives the user.
	r := w.den(alice, pa, "ssh", "-c", "cat /den/hello.txt; exit 3")
	if r.code != 3 || !strings.Contains(r.out, "hello app") {
		t.Errorf("ssh -c: %d %q (want the file and exit status 3)", r.code, r.out)
	}
	if r := w.den(alice, pa, "status"); r.code != 0 || !strings.Contains(r.out, "running") {
		t.Errorf("status: %d %s", r.code, r.out)
	}
	// exec and upload work for her too (over the machine's ssh).
	if r := w.den(alice, pa, "exec", "--", "sh", "-c", "id -un; pwd; exit 4"); r.code != 4 || !strings.Contains(r.out, "/den\n") {
		t.Errorf("exec: %d %q %q", r.code, r.out, r.err)
	}
	if r := w.den(alice, pa, "upload", filepath.Join(pa, "hello.txt"), "/tmp/up.txt"); r.code != 0 {
		t.Errorf("upload: %d %q", r.code, r.err)
	}
	if r := w.den(alice, pa, "ssh", "-c", "cat /tmp/up.txt"); !strings.Contains(r.out, "hello app") {
		t.Errorf("the uploaded file holds %q", r.out)
	}

	// Neither reaches the other's project.
	r = w.den(alice, pb, "halt")
	if r.code == 0 || !strings.Contains(r.err, "may not use the project") {
		t.Errorf("alice halting bob's project: %d %s", r.code, r.err)
	}
	r = w.den(bob, pa, "destroy", "-f")
	if r.code == 0 {
		t.Errorf("bob destroying alice's project succeeded")
	}
	// Nor beyond what they could reach: /etc as a synced folder, an LXC
	// hook (den.hcl itself refuses it), a key off the allowlist, a low port.
	bad := w.project(alice, "bad", "box = \"debian/bookworm\"\nsynced_folder \"/etc\" {\n  guest = \"/host-etc\"\n}\nforward {\n  guest = 80\n  host  = 80\n}\n")
	r = w.den(alice, bad, "up")
	if r.code != 1 || !strings.Contains(r.err, "den.hcl:2:15: error: Synced folder not allowed") || !strings.Contains(r.err, "den.hcl:5:1: error: Privileged port") {
		t.Errorf("up with /etc synced and port 80: %d\n%s", r.code, r.err)
	}
	hook := w.project(alice, "hook", "box = \"debian/bookworm\"\nlxc {\n  config = { \"lxc.hook.pre-start\" = \"/bin/sh -c 'id > /tmp/pwned'\" }\n}\n")
	r = w.den(alice, hook, "up")
	if r.code != 1 || !strings.Contains(r.err, "LXC key set by den") {
		t.Errorf("up with an lxc.hook key: %d\n%s", r.code, r.err)
	}
	profile := w.project(alice, "profile", "box = \"debian/bookworm\"\nlxc {\n  config = { \"lxc.apparmor.profile\" = \"unconfined\" }\n}\n")
	r = w.den(alice, profile, "up")
	if r.code != 1 || !strings.Contains(r.err, "LXC key not allowed") {
		t.Errorf("up with lxc.apparmor.profile: %d\n%s", r.code, r.err)
	}
	// Bob sees his machine only; root (curl on the socket) sees both.
	r = w.den(bob, pb, "global-status", "--json")
	if !strings.Contains(r.out, pb) || strings.Contains(r.out, pa) {
		t.Errorf("bob's global-status shows another user's machines or not his:\n%s", r.out)
	}
	env := w.curl("den/1.0/machines")
	if env.Type != "sync" || !strings.Contains(string(env.Metadata), pa) || !strings.Contains(string(env.Metadata), pb) {
		t.Errorf("root's GET /1.0/machines: %+v", env)
	}

	for _, x := range []struct {
		u   *user.User
		dir string
	}{{alice, pa}, {bob, pb}} {
		if r := w.den(x.u, x.dir, "halt"); r.code != 0 {
			t.Errorf("halt: %d %s", r.code, r.err)
		}
		if r := w.den(x.u, x.dir, "destroy", "-f"); r.code != 0 || !strings.Contains(r.out, "Destroying machine") {
			t.Errorf("destroy: %d %s", r.code, r.err)
		}
	}
	if names := lxcNames(t); strings.Contains(names, "app") || strings.Contains(names, "api") {
		t.Errorf("containers left: %s", names)
	}
}

// selfSigned makes a client certificate and key.
func selfSigned(t *testing.T, dir, name string) (string, string, tls.Certificate) {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(priv)
	crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	os.WriteFile(crt, certPEM, 0o644)
	os.WriteFile(key, keyPEM, 0o600)
	pair, _ := tls.X509KeyPair(certPEM, keyPEM)
	return crt, key, pair
}

// TestE2EServeAPI: curl gets the envelope; HTTPS with a trusted
// certificate lists and starts machines, one without is refused; an up's
// events arrive on the websocket in order; /wait returns a failing
// provisioner's exit status; a cancelled up leaves a machine the next up
// recovers.
func TestE2EServeAPI(t *testing.T) {
	w := newServeWorld(t)
	ctx := context.Background()
	env := w.curl("den/1.0")
	var info api.Server
	json.Unmarshal(env.Metadata, &info)
	if env.Type != "sync" || env.StatusCode != 200 || info.Auth != "trusted" || info.Environment == nil {
		t.Fatalf("curl GET /1.0: %+v", env)
	}

	// HTTPS: the server's certificate, a trusted and an untrusted client.
	crt, key, pair := selfSigned(t, w.dir, "ci-robot")
	ucrt, ukey, _ := selfSigned(t, w.dir, "stranger")
	add := exec.Command(w.bin, "serve", "trust", "add", crt)
	add.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("trust add: %v %s", err, out)
	}
	serverCrt := filepath.Join(e2e.home, "serve", "server.crt")
	https := func(crt, key, path string) (int, string) {
		out, _ := exec.Command("curl", "-sS", "--cacert", serverCrt, "--cert", crt, "--key", key, "-w", "\n%{http_code}", "https://"+w.listen+path).Output()
		s := strings.TrimSpace(string(out))
		i := strings.LastIndex(s, "\n")
		code, _ := strconv.Atoi(s[i+1:])
		return code, s[:i]
	}
	if code, body := https(crt, key, "/1.0/machines"); code != 200 {
		t.Errorf("trusted certificate: %d %s", code, body)
	}
	if code, body := https(ucrt, ukey, "/1.0/machines"); code != 403 || !strings.Contains(body, "not authorized") {
		t.Errorf("untrusted certificate: %d %s", code, body)
	}
	if code, body := https(ucrt, ukey, "/1.0"); code != 200 || !strings.Contains(body, `"auth":"untrusted"`) {
		t.Errorf("untrusted GET /1.0: %d %s", code, body)
	}
	certPEM, _ := os.ReadFile(serverCrt)
	tc, err := client.ConnectHTTPS(w.listen, pair, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := w.project(nil, "tlsproj", "box = \"debian/bookworm\"\nprovision \"shell\" {\n  inline = [\"echo one\", \"echo two\"]\n}\n")
	p, err := tc.RegisterProject(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Events of the up, in order, on the websocket (as root on the socket).
	type seen struct {
		typ, what string
	}
	var got []seen
	evctx, stopEvents := context.WithCancel(ctx)
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		w.client().Events(evctx, "", []string{p.ID}, func(e api.Event) {
			switch e.Type {
			case api.EventProgress:
				var pe api.ProgressEvent
				json.Unmarshal(e.Metadata, &pe)
				got = append(got, seen{e.Type, strconv.Itoa(pe.Seq) + " " + pe.Text})
			case api.EventLifecycle:
				var l api.LifecycleEvent
				json.Unmarshal(e.Metadata, &l)
				got = append(got, seen{e.Type, l.Action})
			case api.EventOperation:
				var o api.Operation
				json.Unmarshal(e.Metadata, &o)
				got = append(got, seen{e.Type, o.Status})
			}
		})
	}()
	time.Sleep(200 * time.Millisecond)
	op, err := tc.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx, 120*time.Second); err != nil {
		t.Fatalf("up over HTTPS: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	stopEvents()
	<-evDone
	seq, order := 0, ""
	for _, s := range got {
		order += s.typ + ":" + s.what + "\n"
		if s.typ == api.EventProgress {
			n, _ := strconv.Atoi(strings.Fields(s.what)[0])
			if n != seq+1 {
				t.Errorf("progress event %d after %d: out of order or lost", n, seq)
			}
			seq = n
		}
	}
	for _, want := range []string{"operation:Pending", "operation:Running", "Creating machine", "Machine booted and ready!", "lifecycle:machine-created", "lifecycle:machine-started", "operation:Success"} {
		i := strings.Index(order, want)
		if i < 0 {
			t.Errorf("events lack %q:\n%s", want, order)
			continue
		}
		order = order[i:]
	}

	// The machine runs on while the server is stopped; a new server finds
	// it as it was.
	m, err := w.client().Machine(ctx, p.ID, "default")
	if err != nil {
		t.Fatal(err)
	}
	w.stop()
	if out, _ := exec.Command("lxc-info", "-P", e2e.lxcpath, "-n", m.Container, "-s").CombinedOutput(); !strings.Contains(string(out), "RUNNING") {
		t.Errorf("machine %s after den serve stopped: %s", m.Container, out)
	}
	w.start()
	if st, err := w.client().MachineState(ctx, p.ID, "default"); err != nil || st.Status != "running" {
		t.Errorf("after a restart of den serve: %+v %v", st, err)
	}
	logs := w.curl("den/1.0/projects/" + p.ID + "/machines/default/logs")
	if !strings.Contains(string(logs.Metadata), "lxc.log") {
		t.Errorf("machine logs: %s", logs.Metadata)
	}

	// /wait returns a failing provisioner with its exit status.
	fail := w.project(nil, "failing", "box = \"debian/bookworm\"\nprovision \"shell\" {\n  name = \"breaks\"\n  inline = [\"exit 7\"]\n}\n")
	fp, err := w.client().RegisterProject(ctx, fail)
	if err != nil {
		t.Fatal(err)
	}
	env = w.curl("-X", "PUT", "-d", `{"action": "up"}`, "den/1.0/projects/"+fp.ID+"/state")
	if env.Type != "async" || env.Operation == "" {
		t.Fatalf("PUT state: %+v", env)
	}
	env = w.curl("den" + env.Operation + "/wait?timeout=120")
	var o api.Operation
	json.Unmarshal(env.Metadata, &o)
	if o.Status != "Failure" || o.ErrDetail == nil || o.ErrDetail.ExitStatus != 7 || o.ErrDetail.Kind != "guest-failed" || o.ErrDetail.Provisioner != "breaks" {
		t.Errorf("wait on a failing provisioner: %+v %+v", o, o.ErrDetail)
	}

	// Cancel an up during a long provisioner; the next up recovers.
	slow := w.project(nil, "slow", "box = \"debian/bookworm\"\nprovision \"shell\" {\n  inline = [\"if [ ! -e /var/tmp/slept ]; then touch /var/tmp/slept; echo sleeping; sleep 60; fi\"]\n}\n")
	sp, err := w.client().RegisterProject(ctx, slow)
	if err != nil {
		t.Fatal(err)
	}
	sop, err := w.client().Action(ctx, sp.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	waitForText(t, w.client(), sop.Op.ID, "sleeping")
	start := time.Now()
	if err := sop.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	final, err := sop.Wait(ctx, 60*time.Second)
	if err == nil || final.Status != "Cancelled" {
		t.Fatalf("cancelled up: %+v %v", final, err)
	}
	t.Logf("cancel took %v", time.Since(start))
	sop2, err := w.client().Action(ctx, sp.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sop2.Wait(ctx, 120*time.Second); err != nil {
		t.Fatalf("up after a cancelled up: %v", err)
	}
	st, err := w.client().MachineState(ctx, sp.ID, "default")
	if err != nil || st.Status != "running" {
		t.Errorf("after recovery: %+v %v", st, err)
	}
}

// waitForText waits until operation id reported text.
func waitForText(t *testing.T, c *client.Client, id, text string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		op, err := c.GetOperation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range op.Op.Events {
			if strings.Contains(e.Text, text) {
				return
			}
		}
		if op.Op.StatusCode >= api.StatusSuccess {
			t.Fatalf("operation ended (%s: %s) before %q", op.Op.Status, op.Op.Err, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("operation never said %q", text)
}

// TestE2EServeKill9: kill -9 of the server at points of an up, then a
// restart: the interrupted operation is listed as such, the next up
// recovers the machine, and after destroy nothing is left: no container,
// mount, address or forwarder.
func TestE2EServeKill9(t *testing.T) {
	w := newServeWorld(t)
	ctx := context.Background()
	for _, at := range []string{"Creating machine", "Forwarding ports", "Starting machine", "Waiting for machine to boot"} {
		t.Run(strings.ReplaceAll(at, " ", "_"), func(t *testing.T) {
			port := freePort(t)
			dir := w.project(nil, "k9-"+strings.Fields(at)[0], fmt.Sprintf("box = \"debian/bookworm\"\nforward {\n  guest = 22\n  host  = %d\n}\n", port))
			p, err := w.client().RegisterProject(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			op, err := w.client().Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
			if err != nil {
				t.Fatal(err)
			}
			waitForText(t, w.client(), op.Op.ID, at)
			w.kill9()
			w.start()
			old, err := w.client().GetOperation(ctx, op.Op.ID)
			if err != nil || old.Op.Status != "Failure" || !strings.Contains(old.Op.Err, "interrupted") {
				t.Errorf("the interrupted up after a restart: %+v %v", old.Op, err)
			}
			up, err := w.client().Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Wait(ctx, 120*time.Second); err != nil {
				t.Errorf("up after kill -9 at %q: %v\n%s", at, err, eventsText(up))
			}
			des, err := w.client().Action(ctx, p.ID, api.StatePut{Action: api.ActionDestroy})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := des.Wait(ctx, 120*time.Second); err != nil {
				t.Errorf("destroy after kill -9 at %q: %v", at, err)
			}
			checkNoOrphans(t, dir, port)
		})
	}
}

func eventsText(op *client.Operation) string {
	var b strings.Builder
	for _, e := range op.Op.Events {
		fmt.Fprintf(&b, "  %s: %s\n", e.Machine, e.Text)
	}
	return b.String()
}

// checkNoOrphans: no container of the project, nothing mounted under
// DEN_HOME, no index entry, nothing listening on its forwarded port.
func checkNoOrphans(t *testing.T, dir string, port int) {
	t.Helper()
	entries, _ := os.ReadDir(e2e.lxcpath)
	base := strings.ToLower(filepath.Base(dir))
	for _, en := range entries {
		if strings.Contains(en.Name(), base) {
			t.Errorf("container folder left: %s", en.Name())
		}
	}
	f, _ := os.Open("/proc/self/mountinfo")
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], e2e.home) {
			t.Errorf("mount left: %s", fields[4])
		}
	}
	index, _ := os.ReadFile(filepath.Join(e2e.home, "index.json"))
	if strings.Contains(string(index), dir) {
		t.Errorf("index entry (address) left for %s:\n%s", dir, index)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on forwarded port %d", port)
	}
}

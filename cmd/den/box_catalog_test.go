package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

// archives holds the box files written by testdata/archives/gen.go.
const archives = "../../testdata/archives"

// boxServer serves box files and catalogs over http, the way a box host
// would, and records the requests it gets.
type boxServer struct {
	*httptest.Server
	t     *testing.T
	boxes map[string][]byte // path -> box file
	drop  map[string]bool   // path -> drop the first transfer half way
	plain map[string]bool   // path -> ignore Range, always send everything

	mu       sync.Mutex
	requests map[string][]http.Header // path -> headers of each request
}

// serverModTime is the Last-Modified time of every box file served.
var serverModTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newBoxServer(t *testing.T) *boxServer {
	t.Helper()
	s := &boxServer{t: t, boxes: map[string][]byte{}, drop: map[string]bool{}, plain: map[string]bool{}, requests: map[string][]http.Header{}}
	for path, file := range map[string]string{
		"/boxes/app-1.0.0.box": "good.box",
		"/boxes/app-1.1.0.box": "good-zstd.box",
		"/boxes/drop.box":      "good-xz.box",
		"/boxes/plain.box":     "good-plain.box",
	} {
		data, err := os.ReadFile(filepath.Join(archives, file))
		if err != nil {
			t.Fatal(err)
		}
		s.boxes[path] = data
	}
	s.drop["/boxes/drop.box"] = true
	s.plain["/boxes/plain.box"] = true
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// sum returns the hex digest of a served box file.
func (s *boxServer) sum(typ, path string) string {
	switch typ {
	case "sha512":
		h := sha512.Sum512(s.boxes[path])
		return hex.EncodeToString(h[:])
	default:
		h := sha256.Sum256(s.boxes[path])
		return hex.EncodeToString(h[:])
	}
}

// catalogs are the catalogs the server has, by path.
func (s *boxServer) catalog(path string) (any, bool) {
	type provider struct {
		Name         string `json:"name"`
		URL          string `json:"url"`
		ChecksumType string `json:"checksum_type,omitempty"`
		Checksum     string `json:"checksum,omitempty"`
	}
	type version struct {
		Version   string     `json:"version"`
		Providers []provider `json:"providers"`
	}
	type catalog struct {
		Name        string    `json:"name"`
		Description string    `json:"description"`
		Versions    []version `json:"versions"`
	}
	u := s.URL
	switch path {
	case "/app.json": // two versions; the newer one also for another provider
		return catalog{Name: "test/app", Description: "a box in two versions", Versions: []version{
			{Version: "1.0.0", Providers: []provider{{"lxc", u + "/boxes/app-1.0.0.box", "sha256", s.sum("sha256", "/boxes/app-1.0.0.box")}}},
			{Version: "1.1.0", Providers: []provider{
				{"virtualbox", u + "/boxes/nope.box", "", ""},
				{"lxc", "boxes/app-1.1.0.box", "sha512", s.sum("sha512", "/boxes/app-1.1.0.box")}, // relative to the catalog
			}},
		}}, true
	case "/bad.json": // a wrong checksum
		return catalog{Name: "test/bad", Versions: []version{
			{Version: "2.0", Providers: []provider{{"lxc", u + "/boxes/app-1.0.0.box", "sha256", strings.Repeat("0", 64)}}},
		}}, true
	case "/drop.json": // a download that drops half way
		return catalog{Name: "test/drop", Versions: []version{
			{Version: "3.0", Providers: []provider{{"lxc", u + "/boxes/drop.box", "sha256", s.sum("sha256", "/boxes/drop.box")}}},
		}}, true
	}
	return nil, false
}

func (s *boxServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path] = append(s.requests[r.URL.Path], r.Header.Clone())
	n := len(s.requests[r.URL.Path])
	s.mu.Unlock()

	if c, ok := s.catalog(r.URL.Path); ok {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c)
		return
	}
	data, ok := s.boxes[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(data)))
	w.Header().Set("Content-Type", "application/octet-stream")
	switch {
	case s.drop[r.URL.Path] && n == 1:
		// Promise the whole file, send half, then drop the connection.
		w.Header().Set("Last-Modified", serverModTime.Format(http.TimeFormat))
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case s.plain[r.URL.Path]:
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	default:
		http.ServeContent(w, r, filepath.Base(r.URL.Path), serverModTime, bytes.NewReader(data))
	}
}

// requestsTo returns the headers of the requests made for path.
func (s *boxServer) requestsTo(path string) []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.requests[path]...)
}

// denHome gives the test a fresh DEN_HOME and returns it.
func denHome(t *testing.T) layout.Home {
	t.Helper()
	home := t.TempDir()
	t.Setenv("DEN_HOME", home)
	return layout.Home(home)
}

// runDen runs den in this process with args, returning its stdout and
// stderr.
func runDen(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	app := newApp()
	runErr := app.RunContext(context.Background(), intersperse(app, append([]string{"den"}, args...)))
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	stdout, _ := os.ReadFile(out.Name())
	stderr, _ := os.ReadFile(errf.Name())
	t.Logf("den %s -> %v\n%s%s", strings.Join(args, " "), runErr, stdout, stderr)
	return string(stdout), string(stderr), runErr
}

// mustRun is runDen that fails the test on an error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := runDen(t, args...)
	if err != nil {
		t.Fatalf("den %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// installed lists the store as "name version" lines.
func installed(t *testing.T, home layout.Home) []string {
	t.Helper()
	boxes, err := box.NewStore(home.Path()).List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		out = append(out, b.Name+" "+b.Version)
	}
	return out
}

// tempLeft lists what is left in the store's temp area.
func tempLeft(t *testing.T, home layout.Home) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(home.Path(), "boxes", ".tmp"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// writeIndex writes a machine index naming the given box versions in use.
func writeIndex(t *testing.T, home layout.Home, entries ...machine.IndexEntry) {
	t.Helper()
	data, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home.Index(), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBoxAddCatalog(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	catalog := srv.URL + "/app.json"

	mustRun(t, "box", "add", catalog)
	if got := installed(t, home); fmt.Sprint(got) != "[test/app 1.1.0]" {
		t.Fatalf("after add: %v, want the newest version", got)
	}
	b, err := box.NewStore(home.Path()).Get("test/app", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if b.Info.Catalog != catalog || b.Info.Source != srv.URL+"/boxes/app-1.1.0.box" {
		t.Errorf("recorded catalog %q source %q", b.Info.Catalog, b.Info.Source)
	}

	mustRun(t, "box", "add", "test/app", catalog, "--box-version", "< 1.1")
	if got := installed(t, home); fmt.Sprint(got) != "[test/app 1.0.0 test/app 1.1.0]" {
		t.Fatalf("after add --box-version: %v", got)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"installed already", []string{catalog}, "installed already"},
		{"name differs", []string{"other/name", catalog}, `is for box "test/app", not "other/name"`},
		{"no version matches", []string{catalog, "--box-version", ">= 2"}, `no version for provider "lxc" matching ">= 2"; available: 1.0.0 (lxc); 1.1.0 (virtualbox, lxc)`},
		{"bad constraint", []string{catalog, "--box-version", "=> 1"}, `unknown operator "=>"`},
		{"checksum for a catalog", []string{catalog, "--checksum", "sha256:" + strings.Repeat("0", 64)}, "--checksum is for box files only"},
		{"box file without a name", []string{srv.URL + "/boxes/plain.box"}, "is a box file, not a catalog: name the box"},
		{"not found", []string{"x/y", srv.URL + "/missing.box"}, "404 Not Found"},
		{"other scheme", []string{"x/y", "ftp://example.com/x.box"}, "not a ftp URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runDen(t, append([]string{"box", "add"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if got := installed(t, home); fmt.Sprint(got) != "[test/app 1.0.0 test/app 1.1.0]" {
		t.Errorf("failed adds changed the store: %v", got)
	}
	if left := tempLeft(t, home); len(left) > 0 {
		t.Errorf("left in boxes/.tmp: %v", left)
	}
	list := mustRun(t, "box", "list")
	if !strings.Contains(list, "test/app  1.0.0") || !strings.Contains(list, "test/app  1.1.0") {
		t.Errorf("box list:\n%s", list)
	}
}

func TestBoxAddWrongChecksum(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	mustRun(t, "box", "add", srv.URL+"/app.json", "--box-version", "1.0.0")
	before := mustRun(t, "box", "list", "--json")

	for _, args := range [][]string{
		{srv.URL + "/bad.json"}, // the catalog's checksum is wrong
		{"test/plain", srv.URL + "/boxes/plain.box", "--checksum", "sha256:" + strings.Repeat("a", 64)},
		{"test/file", filepath.Join(archives, "good.box"), "--checksum", "md5:" + strings.Repeat("b", 32)},
	} {
		_, _, err := runDen(t, append([]string{"box", "add"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "nothing was added") {
			t.Errorf("add %v: err = %v, want a checksum mismatch", args, err)
		}
	}
	if after := mustRun(t, "box", "list", "--json"); after != before {
		t.Errorf("box list changed:\n%s\nwas\n%s", after, before)
	}
	if left := tempLeft(t, home); len(left) > 0 {
		t.Errorf("left in boxes/.tmp: %v", left)
	}

	// The right checksums are accepted, and a box file keeps --version.
	mustRun(t, "box", "add", "test/plain", srv.URL+"/boxes/plain.box", "--checksum", "sha256:"+srv.sum("sha256", "/boxes/plain.box"), "--version", "0.5")
	sum := sha256.Sum256(srv.boxes["/boxes/app-1.0.0.box"])
	mustRun(t, "box", "add", "test/file", filepath.Join(archives, "good.box"), "--checksum", "SHA256:"+hex.EncodeToString(sum[:]))
	if got := installed(t, home); fmt.Sprint(got) != "[test/app 1.0.0 test/file 1.0.0 test/plain 0.5]" {
		t.Errorf("store: %v", got)
	}
	// Each add of a URL reads its start (box file or catalog?), then
	// downloads it.
	if n := len(srv.requestsTo("/boxes/plain.box")); n != 4 {
		t.Errorf("%d requests for plain.box, want 4 (a probe and a download for each add)", n)
	}
}

func TestBoxAddResumesDroppedDownload(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	mustRun(t, "box", "add", srv.URL+"/drop.json")
	if got := installed(t, home); fmt.Sprint(got) != "[test/drop 3.0]" {
		t.Fatalf("store: %v", got)
	}
	reqs := srv.requestsTo("/boxes/drop.box")
	if len(reqs) != 2 {
		t.Fatalf("%d requests for the box, want 2", len(reqs))
	}
	if r := reqs[0].Get("Range"); r != "" {
		t.Errorf("first request has Range %q", r)
	}
	half := len(srv.boxes["/boxes/drop.box"]) / 2
	if r, want := reqs[1].Get("Range"), fmt.Sprintf("bytes=%d-", half); r != want {
		t.Errorf("second request has Range %q, want %q", r, want)
	}
	if ir := reqs[1].Get("If-Range"); ir == "" {
		t.Errorf("second request has no If-Range")
	}
	if left := tempLeft(t, home); len(left) > 0 {
		t.Errorf("left in boxes/.tmp: %v", left)
	}
}

// project writes a den.hcl in a new folder, makes it the current folder
// and returns it.
func project(t *testing.T, hcl string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dir
}

func outdatedJSON(t *testing.T, args ...string) []box.OutdatedRow {
	t.Helper()
	out := mustRun(t, append([]string{"box", "outdated", "--json"}, args...)...)
	var rows []box.OutdatedRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("outdated --json: %v\n%s", err, out)
	}
	return rows
}

func TestBoxOutdatedAndUpdate(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	mustRun(t, "box", "add", srv.URL+"/app.json", "--box-version", "~> 1.0.0")
	mustRun(t, "box", "add", "test/file", filepath.Join(archives, "good.box"))
	dir := project(t, `
box = "test/app"

machine "web" {
}

machine "pinned" {
  box_version = "< 1.1"
}

machine "file" {
  box = "test/file"
}
`)
	writeIndex(t, home, machine.IndexEntry{Container: "den-app-web-abc123", Project: dir, Machine: "web", Box: "test/app", BoxVersion: "1.0.0"})

	rows := outdatedJSON(t)
	want := []struct{ machine, status, current, latest string }{
		{"web", box.StatusOutdated, "1.0.0", "1.1.0"},
		{"pinned", box.StatusUpToDate, "1.0.0", "1.0.0"},
		{"file", box.StatusNoCatalog, "1.0.0", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows: %+v", rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Machine != w.machine || r.Status != w.status || r.Current != w.current || r.Latest != w.latest {
			t.Errorf("row %d = %+v, want %+v", i, r, w)
		}
	}
	if !strings.Contains(rows[0].Message, "version 1.1.0 is available") || rows[0].Catalog != srv.URL+"/app.json" {
		t.Errorf("outdated row: %+v", rows[0])
	}
	if rows[2].Message != "box test/file 1.0.0: no catalog: added from a file." {
		t.Errorf("no-catalog row: %q", rows[2].Message)
	}

	global := outdatedJSON(t, "--global")
	if len(global) != 2 || global[0].Box != "test/app" || global[0].Status != box.StatusOutdated || global[1].Status != box.StatusNoCatalog {
		t.Errorf("--global: %+v", global)
	}
	text := mustRun(t, "box", "outdated")
	if !strings.Contains(text, "==> web: box test/app is outdated: version 1.1.0 is available (the machine was made from 1.0.0); run 'den box update' to add it.") {
		t.Errorf("outdated:\n%s", text)
	}

	out := mustRun(t, "box", "update")
	if got := installed(t, home); fmt.Sprint(got) != "[test/app 1.0.0 test/app 1.1.0 test/file 1.0.0]" {
		t.Errorf("after update: %v", got)
	}
	for _, want := range []string{
		"==> web: The machine was made from test/app 1.0.0 and keeps using it until 'den destroy' and 'den up'",
		`==> pinned: Box test/app 1.0.0 is the newest version matching "< 1.1"; up to date.`,
		"==> file: Box test/file: no catalog: added from a file; nothing to update.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("update output lacks %q:\n%s", want, out)
		}
	}
	rows = outdatedJSON(t)
	if rows[0].Status != box.StatusOutdated || !strings.Contains(rows[0].Message, "keeps 1.0.0 until 'den destroy'") {
		t.Errorf("after update, web: %+v", rows[0])
	}

	// update --box: the newest from the recorded catalog.
	out = mustRun(t, "box", "update", "--box", "test/app")
	if !strings.Contains(out, "Box test/app 1.1.0, the newest version in its catalog, is installed; nothing to update.") {
		t.Errorf("update --box:\n%s", out)
	}
	if _, _, err := runDen(t, "box", "update", "--box", "test/file"); err == nil || !strings.Contains(err.Error(), `box "test/file" has no catalog to update from (added from a file)`) {
		t.Errorf("update --box test/file: %v", err)
	}
}

func TestBoxPrune(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	mustRun(t, "box", "add", "test/app", filepath.Join(archives, "good.box"), "--version", "0.9")
	mustRun(t, "box", "add", srv.URL+"/app.json", "--box-version", "1.0.0")
	mustRun(t, "box", "add", srv.URL+"/app.json")
	mustRun(t, "box", "add", "test/other", filepath.Join(archives, "good.box"), "--version", "1")
	mustRun(t, "box", "add", "test/other", filepath.Join(archives, "good.box"), "--version", "2")
	writeIndex(t, home, machine.IndexEntry{Container: "den-app-web-abc123", Project: "/src/app", Machine: "web", Box: "test/app", BoxVersion: "1.0.0"})
	all := "[test/app 0.9 test/app 1.0.0 test/app 1.1.0 test/other 1 test/other 2]"

	out := mustRun(t, "box", "prune", "--dry-run")
	for _, want := range []string{
		"==> test/app: Would remove 0.9 (dry run).",
		"==> test/app: Keeping 1.0.0 (in use by machine web of /src/app).",
		"==> test/app: Keeping 1.1.0 (the newest).",
		"==> test/other: Would remove 1 (dry run).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prune --dry-run lacks %q:\n%s", want, out)
		}
	}
	if got := fmt.Sprint(installed(t, home)); got != all {
		t.Errorf("dry run removed boxes: %s", got)
	}

	mustRun(t, "box", "prune", "--name", "test/app")
	if got := fmt.Sprint(installed(t, home)); got != "[test/app 1.0.0 test/app 1.1.0 test/other 1 test/other 2]" {
		t.Errorf("after prune --name test/app: %s", got)
	}
	if _, _, err := runDen(t, "box", "prune", "--keep-active-boxes=false"); err == nil || !strings.Contains(err.Error(), "add --force") {
		t.Errorf("prune --keep-active-boxes=false without --force: %v", err)
	}
	mustRun(t, "box", "prune")
	if got := fmt.Sprint(installed(t, home)); got != "[test/app 1.0.0 test/app 1.1.0 test/other 2]" {
		t.Errorf("after prune: %s", got)
	}
	if out := mustRun(t, "box", "prune"); !strings.Contains(out, "Nothing to prune.") {
		t.Errorf("second prune:\n%s", out)
	}
}

func TestEnsureBoxVersions(t *testing.T) {
	srv := newBoxServer(t)
	home := denHome(t)
	var out bytes.Buffer
	store := box.NewStore(home.Path())
	u := &ui.UI{Out: &out, Err: &out}
	ctx := context.Background()
	r := config.Machine{Name: "default", Box: "test/app"}
	ensureBox := func(ctx context.Context, _ any, m *config.Machine) (*box.Box, error) {
		return store.Ensure(ctx, u, box.Want{Label: m.Name, Name: m.Box, Constraint: m.BoxVersion, URL: m.BoxURL, Where: "den.hcl:1:7"})
	}
	env := struct{ Store *box.Store }{store}

	// Missing, with box_url and box_version: the newest matching version
	// is added from the catalog.
	m := r
	m.BoxVersion, m.BoxURL = "< 1.1", srv.URL+"/app.json"
	b, err := ensureBox(ctx, env, &m)
	if err != nil || b.Version != "1.0.0" {
		t.Fatalf("ensureBox = %v, %v; want 1.0.0 added", b, err)
	}
	// Installed: taken without asking the server.
	n := len(srv.requestsTo("/app.json"))
	m.BoxVersion = ""
	if b, err := ensureBox(ctx, env, &m); err != nil || b.Version != "1.0.0" {
		t.Errorf("second ensureBox = %v, %v", b, err)
	}
	if len(srv.requestsTo("/app.json")) != n {
		t.Errorf("ensureBox fetched the catalog for an installed box")
	}
	// A constraint no installed version matches, without box_url.
	m = r
	m.BoxVersion = ">= 1.1"
	if _, err := ensureBox(ctx, env, &m); err == nil || !strings.HasPrefix(err.Error(), "den.hcl:1:7: ") || !strings.Contains(err.Error(), `box "test/app" has no installed version matching box_version ">= 1.1" (installed: 1.0.0)`) {
		t.Errorf("no match: %v", err)
	}
	// box_url naming a box file.
	m = r
	m.Box, m.BoxURL = "test/file", srv.URL+"/boxes/plain.box"
	if b, err := ensureBox(ctx, env, &m); err != nil || b.Version != "1.0.0" || b.Info.Source != m.BoxURL {
		t.Errorf("box_url box file: %v, %v", b, err)
	}
	// A box file that does not match box_version is not kept.
	m.Box, m.BoxVersion = "test/file2", ">= 2"
	if _, err := ensureBox(ctx, env, &m); err == nil || !strings.Contains(err.Error(), `holds test/file2 version 1.0.0, which does not match box_version ">= 2"`) {
		t.Errorf("box file not matching: %v", err)
	}
	if _, err := env.Store.Get("test/file2", ""); err == nil {
		t.Errorf("a box that does not match box_version was kept")
	}
	// A Debian box whose box_version rules out a fresh build is not built.
	m = r
	m.Box, m.BoxVersion = "debian/bookworm", "< 2"
	if _, err := ensureBox(ctx, env, &m); err == nil || !strings.Contains(err.Error(), "'den box build debian/bookworm' would make version") {
		t.Errorf("debian with box_version: %v", err)
	}
	// Unknown box, no box_url: the store's hint.
	m = r
	m.Box = "test/none"
	if _, err := ensureBox(ctx, env, &m); err == nil || !strings.Contains(err.Error(), "den box add test/none") {
		t.Errorf("missing box: %v", err)
	}
	if left := tempLeft(t, home); len(left) > 0 {
		t.Errorf("left in boxes/.tmp: %v", left)
	}
}

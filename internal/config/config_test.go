package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/config")

// fixtures is testdata/config, absolute.
func fixtures(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "config"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", filepath.Base(path), got, want)
	}
}

// testEnv sets the variables the env() fixtures read.
func testEnv(t *testing.T) {
	t.Setenv("DEN_TEST_MEMORY", "2G")
	t.Setenv("DEN_TEST_EMPTY", "")
	t.Setenv("DEN_TEST_BRIDGE", "test")
	for _, name := range []string{"DEN_TEST_BOX", "DEN_TEST_UNSET"} {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
}

// dump is a Project as JSON, with paths relative to base and ranges as file:line:col.
func dump(p *Project, base string) []byte {
	rel := func(path string) string {
		if r, err := filepath.Rel(base, path); err == nil && filepath.IsLocal(r) || r == "." {
			return r
		}
		return path
	}
	type folder struct {
		Host     string   `json:"host"`
		Guest    string   `json:"guest"`
		ReadOnly bool     `json:"read_only"`
		Type     string   `json:"type,omitempty"` // when not bind
		Exclude  []string `json:"exclude,omitempty"`
	}
	type lxd struct {
		Remote      string                       `json:"remote"`
		Project     string                       `json:"project,omitempty"`
		Profiles    []string                     `json:"profiles,omitempty"`
		StoragePool string                       `json:"storage_pool,omitempty"`
		Network     string                       `json:"network,omitempty"`
		Target      string                       `json:"target,omitempty"`
		Config      [][2]string                  `json:"config,omitempty"`
		Devices     map[string]map[string]string `json:"devices,omitempty"`
		Where       string                       `json:"where"`
		Ranges      map[string]string            `json:"ranges,omitempty"`
	}
	type provision struct {
		Type        string      `json:"type"`
		Name        string      `json:"name"`
		Run         string      `json:"run"`
		Inline      []string    `json:"inline,omitempty"`
		Path        string      `json:"path,omitempty"`
		Args        []string    `json:"args,omitempty"`
		Env         [][2]string `json:"env,omitempty"`
		Privileged  bool        `json:"privileged"`
		Source      string      `json:"source,omitempty"`
		Destination string      `json:"destination,omitempty"`
		DefRange    string      `json:"def_range"`
	}
	type run struct {
		Inline     []string    `json:"inline,omitempty"`
		Path       string      `json:"path,omitempty"`
		Args       []string    `json:"args,omitempty"`
		Env        [][2]string `json:"env,omitempty"`
		Privileged bool        `json:"privileged,omitempty"`
		DefRange   string      `json:"def_range"`
	}
	type trigger struct {
		Name      string   `json:"name"`
		When      string   `json:"when"`
		Command   string   `json:"command"`
		Run       *run     `json:"run,omitempty"`
		RunRemote *run     `json:"run_remote,omitempty"`
		OnError   string   `json:"on_error"`
		Machines  []string `json:"machines,omitempty"`
		DefRange  string   `json:"def_range"`
	}
	type autostart struct {
		Order int    `json:"order"`
		Delay string `json:"delay"`
	}
	dumpRun := func(r *TriggerRun) *run {
		if r == nil {
			return nil
		}
		d := &run{Inline: r.Inline, Args: r.Args, Privileged: r.Privileged, DefRange: loc(r.DefRange)}
		if r.Path != "" {
			d.Path = rel(r.Path)
		}
		for _, kv := range r.Env {
			d.Env = append(d.Env, [2]string{kv.Key, kv.Value})
		}
		return d
	}
	type machine struct {
		Name       string      `json:"name"`
		Box        string      `json:"box"`
		BoxRange   string      `json:"box_range"`
		BoxVersion string      `json:"box_version,omitempty"`
		BoxURL     string      `json:"box_url,omitempty"`
		Memory     int64       `json:"memory"`
		CPUs       int         `json:"cpus"`
		Hostname   string      `json:"hostname"`
		Bridge     string      `json:"bridge"`
		Network    string      `json:"network,omitempty"`
		PrivateIP  string      `json:"private_ip,omitempty"`
		Synced     []folder    `json:"synced"`
		LXCConfig  [][2]string `json:"lxc_config"`
		Provisions []provision `json:"provisions"`
		Forwards   []string    `json:"forwards"`
		DefRange   string      `json:"def_range"`
		Primary    bool        `json:"primary,omitempty"`
		SSH        *SSH        `json:"ssh,omitempty"`
		Triggers   []trigger   `json:"triggers,omitempty"`
		Autostart  *autostart  `json:"autostart,omitempty"`
		Provider   string      `json:"provider,omitempty"` // when not lxc
		LXD        *lxd        `json:"lxd,omitempty"`
		Storage    string      `json:"storage,omitempty"` // when set
	}
	out := struct {
		File     string    `json:"file"`
		Dir      string    `json:"dir"`
		Machines []machine `json:"machines"`
	}{File: rel(p.File), Dir: rel(p.Dir)}
	for _, m := range p.Machines {
		d := machine{
			Name: m.Name, Box: m.Box, BoxRange: loc(m.BoxRange), BoxVersion: m.BoxVersion, BoxURL: m.BoxURL, Memory: m.Memory, CPUs: m.CPUs,
			Hostname: m.Hostname, Bridge: m.Bridge, DefRange: loc(m.DefRange),
			Synced: []folder{}, LXCConfig: [][2]string{}, Provisions: []provision{}, Forwards: []string{},
			Primary: m.Primary,
		}
		if m.Network != NetworkBridge {
			d.Network = m.Network
		}
		if m.PrivateIP.IsValid() {
			d.PrivateIP = m.PrivateIP.String() + " at " + loc(m.PrivateRange)
		}
		if m.SSH.ForwardAgent || len(m.SSH.ForwardEnv) > 0 {
			d.SSH = &m.SSH
		}
		if filepath.IsAbs(m.BoxURL) {
			d.BoxURL = rel(m.BoxURL)
		}
		for _, f := range m.Synced {
			df := folder{Host: rel(f.Host), Guest: f.Guest, ReadOnly: f.ReadOnly, Exclude: f.Exclude}
			if f.Type != FolderBind {
				df.Type = f.Type
			}
			d.Synced = append(d.Synced, df)
		}
		if m.StorageRange.Filename != "" {
			d.Storage = m.Storage + " at " + loc(m.StorageRange)
			if m.Storage == "" {
				d.Storage = StorageAuto + " at " + loc(m.StorageRange)
			}
		}
		if m.Provider != "" {
			d.Provider = m.Provider + " at " + loc(m.ProviderRange)
		}
		if x := m.LXD; x != nil {
			dl := &lxd{Remote: x.Remote, Project: x.Project, Profiles: x.Profiles, StoragePool: x.StoragePool, Network: x.Network, Target: x.Target, Devices: x.Devices, Where: loc(x.Where), Ranges: map[string]string{}}
			for _, kv := range x.Config {
				dl.Config = append(dl.Config, [2]string{kv.Key, kv.Value})
			}
			for k, r := range x.Ranges {
				dl.Ranges[k] = loc(r)
			}
			d.LXD = dl
		}
		for _, kv := range m.LXCConfig {
			d.LXCConfig = append(d.LXCConfig, [2]string{kv.Key, kv.Value})
		}
		for _, pr := range m.Provisions {
			dp := provision{
				Type: pr.Type, Name: pr.Name, Run: pr.Run, Inline: pr.Inline, Args: pr.Args, Privileged: pr.Privileged,
				Destination: pr.Destination, DefRange: loc(pr.DefRange),
			}
			if pr.Path != "" {
				dp.Path = rel(pr.Path)
			}
			if pr.Source != "" {
				dp.Source = rel(pr.Source)
			}
			for _, kv := range pr.Env {
				dp.Env = append(dp.Env, [2]string{kv.Key, kv.Value})
			}
			d.Provisions = append(d.Provisions, dp)
		}
		for _, f := range m.Forwards {
			d.Forwards = append(d.Forwards, f.String()+" at "+loc(f.DefRange))
		}
		for _, tr := range m.Triggers {
			d.Triggers = append(d.Triggers, trigger{
				Name: tr.Name, When: tr.When, Command: tr.Command, Run: dumpRun(tr.Run), RunRemote: dumpRun(tr.RunRemote),
				OnError: tr.OnError, Machines: tr.Machines, DefRange: loc(tr.DefRange),
			})
		}
		if m.Autostart {
			d.Autostart = &autostart{Order: m.AutostartOrder, Delay: m.AutostartDelay.String()}
		}
		out.Machines = append(out.Machines, d)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// eachFixture runs f in a subtest for every *.hcl in testdata/config/sub,
// from that folder.
func eachFixture(t *testing.T, sub string, f func(t *testing.T, name string)) {
	t.Helper()
	t.Chdir(filepath.Join(fixtures(t), sub))
	names, _ := filepath.Glob("*.hcl")
	if len(names) == 0 {
		t.Fatalf("no fixtures in testdata/config/%s", sub)
	}
	for _, name := range names {
		t.Run(strings.TrimSuffix(name, ".hcl"), func(t *testing.T) { f(t, name) })
	}
}

// diagText is err's diagnostics as a person sees them; it fails the test
// unless err is a *DiagError whose message starts with name.
func diagText(t *testing.T, name string, err error) []byte {
	t.Helper()
	var de *DiagError
	if !errors.As(err, &de) {
		t.Fatalf("%T %v, want a *DiagError", err, err)
	}
	if !strings.HasPrefix(err.Error(), name+":") {
		t.Errorf("Error() = %q, want it to start with %q", err, name+":")
	}
	var b bytes.Buffer
	WriteDiagnostics(&b, de.Files, de.Diags, false)
	return b.Bytes()
}

func TestLoadValid(t *testing.T) {
	base := fixtures(t)
	testEnv(t)
	eachFixture(t, "valid", func(t *testing.T, name string) {
		p, err := Load(name)
		if err != nil {
			t.Fatalf("Load: %v\n%s", err, diagText(t, name, err))
		}
		golden(t, strings.TrimSuffix(name, ".hcl")+".golden", dump(p, base))
	})
}

func TestLoadInvalid(t *testing.T) {
	testEnv(t)
	eachFixture(t, "invalid", func(t *testing.T, name string) {
		p, err := Load(name)
		if err == nil {
			t.Fatalf("Load succeeded, want an error; got %d machines", len(p.Machines))
		}
		golden(t, strings.TrimSuffix(name, ".hcl")+".golden", diagText(t, name, err))
	})
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("box = \"x\"\nmemory = \"1Q\"\n"), 0o644)
	t.Chdir(dir)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"relative as given", "./den.hcl", "den.hcl:2:10: Invalid size"},
		{"absolute below cwd", filepath.Join(dir, FileName), "den.hcl:2:10: Invalid size"},
		{"absolute elsewhere", filepath.Join(dir, FileName), "den.hcl:2:10: Invalid size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "absolute elsewhere" {
				t.Chdir(t.TempDir())
				tc.want = filepath.Join(dir, tc.want)
			}
			_, err := Load(tc.path)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load(%q) = %v, want %q", tc.path, err, tc.want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := Load("nope.hcl")
		var de *DiagError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "Cannot read nope.hcl") {
			t.Fatalf("Load = %v, want a *DiagError naming nope.hcl", err)
		}
	})
}

func TestLoadProject(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My Project_2")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("/usr", filepath.Join(dir, "escape"))
	write := func(src string) string {
		t.Helper()
		p := filepath.Join(dir, FileName)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("default machine", func(t *testing.T) {
		p, err := Load(write(`box = "b"`))
		if err != nil {
			t.Fatal(err)
		}
		m, ok := p.Machine("default")
		if !ok || m.Hostname != "my-project-2" || m.Bridge != DefaultBridge || p.Dir != dir || p.File != filepath.Join(dir, FileName) {
			t.Errorf("got %+v, %+v", p, m)
		}
		if len(m.Synced) != 1 || m.Synced[0].Host != dir || m.Synced[0].Guest != "/den" || m.Synced[0].Type != FolderBind {
			t.Errorf("Synced = %+v, want the project at /den", m.Synced)
		}
		if _, ok := p.Machine("db"); ok {
			t.Error(`Machine("db") found a machine that does not exist`)
		}
	})

	t.Run("symlink out of the project", func(t *testing.T) {
		_, err := Load(write("box = \"b\"\nsynced_folder \"escape\" {\n  guest = \"/x\"\n}\n"))
		if err == nil || !strings.Contains(err.Error(), "Synced folder outside the project") {
			t.Errorf("Load = %v, want a symlink escape error", err)
		}
	})

	t.Run("absolute symlink allowed", func(t *testing.T) {
		_, err := Load(write(fmt.Sprintf("box = \"b\"\nsynced_folder %q {\n  guest = \"/x\"\n}\n", filepath.Join(dir, "escape"))))
		if err != nil {
			t.Errorf("Load = %v, want no error", err)
		}
	})

	t.Run("provision paths", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "sub", "setup.sh"), []byte("true\n"), 0o755)
		os.Symlink("/etc/hostname", filepath.Join(dir, "sub", "out.sh"))
		p, err := Load(write("box = \"b\"\nprovision \"shell\" {\n  path = \"sub/setup.sh\"\n}\nprovision \"file\" {\n  source = \"sub\"\n  destination = \"/x\"\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if ps := p.Machines[0].Provisions; ps[0].Path != filepath.Join(dir, "sub", "setup.sh") || ps[1].Source != filepath.Join(dir, "sub") {
			t.Errorf("Provisions = %+v, want absolute host paths", ps)
		}
		_, err = Load(write("box = \"b\"\nprovision \"shell\" {\n  path = \"sub/out.sh\"\n}\n"))
		if err == nil || !strings.Contains(err.Error(), "Path outside the project") {
			t.Errorf("Load = %v, want a symlink escape error", err)
		}
	})
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("none", func(t *testing.T) {
		_, err := Find(deep)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", deep)) || !strings.Contains(err.Error(), "den init") {
			t.Errorf("Find = %v, want an error naming %q and 'den init'", err, deep)
		}
	})
	os.WriteFile(filepath.Join(root, FileName), nil, 0o644)
	os.Mkdir(filepath.Join(root, "a", FileName), 0o755) // a folder is not a den.hcl
	for _, tc := range []struct{ name, dir string }{
		{"here", root},
		{"parent", filepath.Join(root, "a")},
		{"ancestor", deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Find(tc.dir)
			if want := filepath.Join(root, FileName); err != nil || got != want {
				t.Errorf("Find(%q) = %q, %v, want %q", tc.dir, got, err, want)
			}
		})
	}
	t.Run("relative", func(t *testing.T) {
		t.Chdir(deep)
		got, err := Find(".")
		if want := filepath.Join(root, FileName); err != nil || got != want {
			t.Errorf("Find(.) = %q, %v, want %q", got, err, want)
		}
	})
}

func TestTemplate(t *testing.T) {
	for _, box := range []string{"debian/bookworm", "", `odd "box" ${x} %{y} \ é`} {
		t.Run(box, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, Template(box), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := Load(path)
			var de *DiagError
			if strings.Contains(box, " ") && errors.As(err, &de) && len(de.Diags) == 1 && de.Diags[0].Summary == "Invalid box name" {
				// Not a box name, but read back exactly: the quoting holds.
				if !strings.Contains(de.Diags[0].Detail, fmt.Sprintf("%q", box)) {
					t.Errorf("Template(%q) reads back as: %s", box, de.Diags[0].Detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(Template(%q)): %v", box, err)
			}
			want := box
			if want == "" {
				want = DefaultBox
			}
			if m := p.Machines[0]; len(p.Machines) != 1 || m.Box != want || m.Memory != 0 || m.CPUs != 0 || len(m.Synced) != 1 {
				t.Errorf("Template(%q) loads as %+v", box, m)
			}
		})
	}
	t.Run("every setting shown", func(t *testing.T) {
		tpl := string(Template(""))
		for _, name := range append([]string{"box", "box_version", "box_url", "memory", "cpus", "hostname", "bridge", "guest", "read_only", "disabled", "config",
			"provider", "type", "exclude", "remote", "project", "profiles", "storage_pool", "network", "target", "devices",
			"name", "inline", "path", "args", "env", "privileged", "run", "source", "destination", "run_remote", "on_error", "machines", "autostart", "autostart_order", "autostart_delay", "storage"}, blockNames()...) {
			if !strings.Contains(tpl, name) {
				t.Errorf("Template does not mention %q", name)
			}
		}
	})
}

func blockNames() []string {
	var names []string
	for _, b := range settingsSchema.Blocks {
		names = append(names, b.Type)
	}
	return names
}

func TestSanitizeHostname(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web", "web"},
		{"My Project_2", "my-project-2"},
		{"--x--", "x"},
		{"ünï", "n"},
		{"___", "den"},
		{strings.Repeat("a", 62) + "-b", strings.Repeat("a", 62)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := sanitizeHostname(tc.in); got != tc.want || !validHostname(got) {
				t.Errorf("sanitizeHostname(%q) = %q, want %q (a valid hostname)", tc.in, got, tc.want)
			}
		})
	}
}

func TestMergeFolders(t *testing.T) {
	f := func(host, guest string) folder {
		return folder{SyncedFolder: SyncedFolder{Host: host, Guest: guest}, hasGuest: guest != ""}
	}
	off := func(fo folder) folder { fo.disabled = true; return fo }
	for _, tc := range []struct {
		name       string
		top, own   []folder
		wantGuests string
	}{
		{"default only", nil, nil, "/p:/den"},
		{"top adds", []folder{f("/a", "/a")}, nil, "/p:/den /a:/a"},
		{"project replaces default", []folder{f("/p", "/src")}, nil, "/p:/src"},
		{"same guest replaces default", []folder{f("/a", "/den")}, nil, "/a:/den"},
		{"machine replaces top by guest", []folder{f("/a", "/x")}, []folder{f("/b", "/x")}, "/p:/den /b:/x"},
		{"disabled by host", []folder{off(f("/p", ""))}, nil, ""},
		{"disabled by guest", []folder{f("/a", "/a")}, []folder{off(f("/q", "/a"))}, "/p:/den"},
		{"machine disables top", []folder{f("/a", "/a")}, []folder{off(f("/a", ""))}, "/p:/den"},
		{"machine project replaces default", []folder{f("/a", "/a")}, []folder{f("/p", "/code")}, "/a:/a /p:/code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range mergeFolders("/p", tc.top, tc.own) {
				got = append(got, s.Host+":"+s.Guest)
			}
			if g := strings.Join(got, " "); g != tc.wantGuests {
				t.Errorf("got %q, want %q", g, tc.wantGuests)
			}
		})
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("a = 1\n\tb = \"ü\"\r\nc = {\n}\n")
	files := map[string]*hcl.File{"den.hcl": {Bytes: src}}
	rng := func(sl, sc, sb, el, ec, eb int) *hcl.Range {
		return &hcl.Range{Filename: "den.hcl", Start: hcl.Pos{Line: sl, Column: sc, Byte: sb}, End: hcl.Pos{Line: el, Column: ec, Byte: eb}}
	}
	for _, tc := range []struct {
		name  string
		diag  *hcl.Diagnostic
		color bool
		want  string
	}{
		{"no subject", &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Boom", Detail: "line one\nline two"}, false,
			"den.hcl: error: Boom\n  line one\n  line two\n"},
		{"warning", &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Hm", Subject: rng(1, 5, 4, 1, 6, 5)}, false,
			"den.hcl:1:5: warning: Hm\n   1 | a = 1\n     |     ^\n"},
		{"tab, multi-byte, CRLF", &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Subject: rng(2, 6, 11, 2, 9, 15)}, false,
			"den.hcl:2:6: error: S\n   2 | \tb = \"ü\"\n     | \t    ^~~\n"},
		{"multi-line subject clamped", &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Subject: rng(3, 5, 21, 4, 2, 24)}, false,
			"den.hcl:3:5: error: S\n   3 | c = {\n     |     ^\n"},
		{"empty subject at end of file", &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Subject: rng(5, 1, 25, 5, 1, 25)}, false,
			"den.hcl:5:1: error: S\n   5 | \n     | ^\n"},
		{"color", &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Subject: rng(1, 1, 0, 1, 2, 1)}, true,
			"\x1b[1mden.hcl:1:1:\x1b[0m \x1b[1;31merror:\x1b[0m \x1b[1mS\x1b[0m\n   1 | a = 1\n     | \x1b[1;32m^\x1b[0m\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteDiagnostics(&b, files, hcl.Diagnostics{tc.diag}, tc.color)
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestDiagErrorCount(t *testing.T) {
	d := func(s string) *hcl.Diagnostic { return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: s} }
	for _, tc := range []struct {
		diags hcl.Diagnostics
		want  string
	}{
		{hcl.Diagnostics{d("A")}, "A"},
		{hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "W"}, d("A"), d("B")}, "A (and 1 more error)"},
		{hcl.Diagnostics{d("A"), d("B"), d("C")}, "A (and 2 more errors)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := (&DiagError{Diags: tc.diags}).Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLoadWith checks a server's way of loading: its own name for the file
// in diagnostics, env() from the client's environment, and the ranges a
// server's refusals quote.
func TestLoadWith(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "data"), 0o755)
	src := "box = env(\"DEN_TEST_BOX_NAME\", \"x/y\")\nmemory = env(\"DEN_TEST_MEM\")\nsynced_folder \"data\" {\n  guest = \"/data\"\n}\nlxc {\n  config = { \"lxc.tty.max\" = \"2\" }\n}\n"
	path := filepath.Join(dir, "den.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DEN_TEST_MEM": "64M"}
	p, err := LoadWith(path, LoadOptions{Name: "den.hcl", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	m := p.Machines[0]
	if m.Box != "x/y" || m.Memory != 64<<20 {
		t.Errorf("box %q memory %d, want x/y and 64M from the given environment", m.Box, m.Memory)
	}
	if len(m.Synced) != 2 || m.Synced[1].Range.Start.Line != 3 || m.Synced[1].Range.Filename != "den.hcl" {
		t.Errorf("synced folders %+v: want the second one located at den.hcl:3", m.Synced)
	}
	if len(m.LXCConfig) != 1 || m.LXCConfig[0].Range.Start.Line != 7 {
		t.Errorf("lxc config %+v: want the key located at line 7", m.LXCConfig)
	}
	env["DEN_TEST_MEM"] = "1"
	_, err = LoadWith(path, LoadOptions{Name: "den.hcl", Getenv: func(k string) string { return env[k] }})
	if err == nil || !strings.HasPrefix(err.Error(), "den.hcl:2:") {
		t.Errorf("error %v: want one located at den.hcl:2", err)
	}
}

// TestHostScriptWritable: a host trigger's script that a machine could
// rewrite is refused, however it is reached: in a read-write synced folder,
// through a symlink into one or through a symlink that lies in one, or with
// a hard link den cannot follow.
func TestHostScriptWritable(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "app")
	safe := filepath.Join(root, "safe")
	for _, d := range []string{filepath.Join(dir, "scripts"), filepath.Join(dir, "ro"), safe} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := func(path string) string {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\ntrue\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	script(filepath.Join(dir, "scripts", "in.sh"))
	script(filepath.Join(dir, "ro", "ro.sh"))
	outside := script(filepath.Join(safe, "out.sh"))
	os.Symlink(filepath.Join(dir, "scripts"), filepath.Join(safe, "into")) // a safe link into the project
	os.Symlink(safe, filepath.Join(dir, "scripts", "out"))                 // a link in the project, out of it
	os.Link(outside, filepath.Join(safe, "hard.sh"))                       // a second name
	script(filepath.Join(safe, "single.sh"))
	load := func(folders, path string) error {
		t.Helper()
		src := fmt.Sprintf("box = \"b\"\n%s\ntrigger \"after\" \"up\" {\n  run {\n    path = %q\n  }\n}\n", folders, path)
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(filepath.Join(dir, FileName))
		return err
	}
	roProject := "synced_folder \".\" {\n  guest = \"/den\"\n  read_only = true\n}\n"
	rwSub := roProject + "synced_folder \"scripts\" {\n  guest = \"/scripts\"\n}\n"
	for _, tc := range []struct {
		name, folders, path, want string
	}{
		{"in the default folder", "", "scripts/in.sh", `"scripts/in.sh" lies in the synced folder "."`},
		{"read-only project", roProject, "scripts/in.sh", ""},
		{"outside every folder", "", filepath.Join(safe, "single.sh"), ""},
		{"through a link into a folder", "", filepath.Join(safe, "into", "in.sh"), `leads through the symlink "` + filepath.Join(safe, "into") + `" into the synced folder "."`},
		{"through a link that lies in a folder", rwSub, filepath.Join(dir, "scripts", "out", "single.sh"), `lies in the synced folder "scripts", which machine "default" mounts read-write at /scripts`},
		{"a read-write sub-folder", rwSub, "ro/ro.sh", ""},
		{"hard link", "", filepath.Join(safe, "hard.sh"), "has 2 hard links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := load(tc.folders, tc.path)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Load = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "Script a machine can write")):
				t.Errorf("Load = %v, want the script refused", err)
			case tc.want != "":
				var de *DiagError
				errors.As(err, &de)
				if d := de.Diags[0].Detail; !strings.Contains(d, tc.want) {
					t.Errorf("detail %q does not say %q", d, tc.want)
				}
			}
		})
	}
	t.Run("a link that lies in a folder", func(t *testing.T) {
		link := filepath.Join(dir, "scripts", "out")
		p := &Project{Dir: dir, Machines: []*Machine{{Name: "web", Synced: []SyncedFolder{{Host: filepath.Join(dir, "scripts"), Guest: "/s"}}}}}
		// The walk meets the link itself inside the folder before it follows it.
		err := p.CheckHostScript(filepath.Join(link, "single.sh"))
		if err == nil || !strings.Contains(err.Error(), `lies in the synced folder "scripts"`) {
			t.Errorf("CheckHostScript = %v", err)
		}
		if err := p.CheckHostScript(filepath.Join(safe, "single.sh")); err != nil {
			t.Errorf("CheckHostScript of a safe script = %v", err)
		}
	})
}

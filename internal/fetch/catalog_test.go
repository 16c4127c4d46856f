package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/version"
)

// testCatalog has two versions: 1.0.0 for lxc and virtualbox, 2.0.0 for
// virtualbox only, 1.5.0 for lxc, listed out of order.
const testCatalog = `
{
  "name": "den/debian",
  "description": "Debian for den",
  "versions": [
    {"version": "1.0.0", "providers": [
      {"name": "virtualbox", "url": "https://example.test/1.0.0/vb.box"},
      {"name": "lxc", "url": "https://example.test/1.0.0/lxc.box", "checksum_type": "SHA256",
       "checksum": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}
    ]},
    {"version": "2.0.0", "providers": [
      {"name": "virtualbox", "url": "https://example.test/2.0.0/vb.box"}
    ]},
    {"version": "1.5.0", "providers": [
      {"name": "lxc", "url": "https://example.test/1.5.0/lxc.box"}
    ]}
  ]
}`

func TestCatalogSelect(t *testing.T) {
	c, err := ParseCatalog([]byte(testCatalog), "test.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "den/debian" || c.Description != "Debian for den" || len(c.Versions) != 3 {
		t.Fatalf("decoded %+v", c)
	}
	tests := []struct {
		provider, constraint string
		wantVersion, wantURL string
		wantErr              string
	}{
		{"lxc", "", "1.5.0", "https://example.test/1.5.0/lxc.box", ""},
		{"virtualbox", "", "2.0.0", "https://example.test/2.0.0/vb.box", ""},
		{"lxc", "< 1.5", "1.0.0", "https://example.test/1.0.0/lxc.box", ""},
		{"lxc", "~> 1.0.0", "1.0.0", "https://example.test/1.0.0/lxc.box", ""},
		{"virtualbox", "~> 1.0", "1.0.0", "https://example.test/1.0.0/vb.box", ""},
		{"lxc", ">= 2", "", "", `box "den/debian" has no version for provider "lxc" matching ">= 2"; available: 1.0.0 (virtualbox, lxc); 2.0.0 (virtualbox); 1.5.0 (lxc)`},
		{"docker", "", "", "", `no version for provider "docker"; available:`},
	}
	for _, tc := range tests {
		t.Run(tc.provider+" "+tc.constraint, func(t *testing.T) {
			cs, err := version.ParseConstraints(tc.constraint)
			if err != nil {
				t.Fatal(err)
			}
			v, p, err := c.Select(tc.provider, cs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Select error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Version != tc.wantVersion || p.URL != tc.wantURL || p.Name != tc.provider {
				t.Fatalf("Select = %s %+v, want %s %s", v.Version, p, tc.wantVersion, tc.wantURL)
			}
		})
	}
}

func TestCatalogProviderChecksum(t *testing.T) {
	c, err := ParseCatalog([]byte(testCatalog), "test.json")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.Versions[0].Providers[1].ParseChecksum()
	if err != nil {
		t.Fatal(err)
	}
	want := Checksum{Type: "sha256", Hex: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	if sum != want {
		t.Fatalf("ParseChecksum() = %+v, want %+v", sum, want)
	}
	sum, err = c.Versions[0].Providers[0].ParseChecksum()
	if err != nil || !sum.IsZero() {
		t.Fatalf("no checksum: %+v, %v", sum, err)
	}
	for _, p := range []CatalogProvider{
		{Name: "lxc", Checksum: "abcd"},
		{Name: "lxc", ChecksumType: "crc32", Checksum: "abcd"},
		{Name: "lxc", ChecksumType: "sha1", Checksum: "abcd"},
	} {
		if _, err := p.ParseChecksum(); err == nil || !strings.Contains(err.Error(), `provider "lxc"`) {
			t.Errorf("%+v: error = %v", p, err)
		}
	}
}

func TestCatalogSelectArchitecture(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	c := &Catalog{Name: "x", Versions: []CatalogVersion{{Version: "1", Providers: []CatalogProvider{
		{Name: "lxc", URL: "other", Architecture: other},
		{Name: "lxc", URL: "generic"},
		{Name: "lxc", URL: "host", Architecture: runtime.GOARCH},
	}}}}
	_, p, err := c.Select("lxc", nil)
	if err != nil || p.URL != "host" {
		t.Fatalf("Select = %+v, %v; want the host's architecture", p, err)
	}
	c.Versions[0].Providers = c.Versions[0].Providers[:2]
	_, p, err = c.Select("lxc", nil)
	if err != nil || p.URL != "generic" {
		t.Fatalf("Select = %+v, %v; want the entry without architecture", p, err)
	}
}

func TestParseCatalogErrors(t *testing.T) {
	const src = "https://x/y.json"
	tests := []struct{ name, json, want string }{
		{"not json", `{"name": `, "catalog https://x/y.json: unexpected end of JSON input"},
		{"no name", `{"versions": []}`, "catalog https://x/y.json: no name"},
		{"bad version", `{"name": "a", "versions": [{"version": "1"}, {"version": "one"}]}`,
			`catalog https://x/y.json: versions[1]: "one" is not a version`},
		{"no version", `{"name": "a", "versions": [{"providers": []}]}`, "catalog https://x/y.json: versions[0]: no version"},
		{"no url", `{"name": "a", "versions": [{"version": "1"}, {"version": "2", "providers": [{"name": "lxc"}]}]}`,
			"catalog https://x/y.json: versions[1].providers[0]: no url"},
		{"no provider name", `{"name": "a", "versions": [{"version": "1", "providers": [{"name": "lxc", "url": "u"}, {"url": "u"}]}]}`,
			"catalog https://x/y.json: versions[0].providers[1]: no name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.json), src)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIsCatalog(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{`{"name": "x"}`, true},
		{"\n  \t{", true},
		{"\xef\xbb\xbf{", true},
		{"\x1f\x8b\x08\x00", false}, // gzip: a .box file
		{"./metadata.json\x00", false},
		{"", false},
		{"   ", false},
		{"[1]", false},
	}
	for _, tc := range tests {
		if got := IsCatalog([]byte(tc.data)); got != tc.want {
			t.Errorf("IsCatalog(%q) = %v, want %v", tc.data, got, tc.want)
		}
	}
}

func TestFetchCatalog(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/box.json":
			if r.Header.Get("Accept") != "application/json" {
				t.Errorf("Accept = %q", r.Header.Get("Accept"))
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(testCatalog))
		case "/x.box":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte("\x1f\x8b\x08\x00box"))
		case "/huge.json":
			w.Write([]byte(`{"name": "` + strings.Repeat("a", MaxCatalogSize) + `"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	c, err := FetchCatalog(ctx, srv.URL+"/box.json", srv.Client())
	if err != nil || c.Name != "den/debian" {
		t.Fatalf("FetchCatalog = %+v, %v", c, err)
	}
	_, err = FetchCatalog(ctx, srv.URL+"/missing.json", srv.Client())
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(err.Error(), srv.URL+"/missing.json: 404 Not Found") {
		t.Errorf("missing: %v", err)
	}
	if _, err := FetchCatalog(ctx, srv.URL+"/x.box", srv.Client()); err == nil || !strings.Contains(err.Error(), "not a JSON catalog") {
		t.Errorf("box file: %v", err)
	}
	if _, err := FetchCatalog(ctx, srv.URL+"/huge.json", srv.Client()); err == nil || !strings.Contains(err.Error(), "larger than 10 MiB") {
		t.Errorf("huge: %v", err)
	}
	if _, err := FetchCatalog(ctx, "ftp://example.test/box.json", nil); err == nil || !strings.Contains(err.Error(), "not an http or https URL") {
		t.Errorf("ftp: %v", err)
	}
}

package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/den-dev/den/internal/version"
)

// MaxCatalogSize is the largest catalog FetchCatalog reads.
const MaxCatalogSize = 10 << 20

// Catalog is a Vagrant box catalog ("metadata"), the JSON document that
// Vagrant Cloud serves for a box and that "vagrant box add URL" accepts: the
// versions of one box and, for each, a download per provider.
type Catalog struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Versions    []CatalogVersion `json:"versions"`
}

// CatalogVersion is one version of a box in a Catalog.
type CatalogVersion struct {
	Version   string            `json:"version"`
	Providers []CatalogProvider `json:"providers"`
}

// CatalogProvider is the download of one box version for one provider.
type CatalogProvider struct {
	Name         string `json:"name"`
	URL          string `json:"url"`
	ChecksumType string `json:"checksum_type"`
	Checksum     string `json:"checksum"`
	Architecture string `json:"architecture,omitempty"` // such as "amd64"; optional
}

// IsCatalog reports whether data (the first bytes of a download, at least)
// looks like a JSON catalog rather than a box file: its first byte after
// white space (and a UTF-8 byte order mark) is "{".
func IsCatalog(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

// ParseCatalog decodes and checks a catalog. source (a URL or a path)
// names it in errors, such as
// "catalog https://x/y.json: versions[1].providers[0]: no url".
func ParseCatalog(data []byte, source string) (*Catalog, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", source, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", source, err)
	}
	return &c, nil
}

// check reports the first missing or malformed field of c.
func (c *Catalog) check() error {
	if strings.TrimSpace(c.Name) == "" {
		return errors.New("no name")
	}
	for i, v := range c.Versions {
		if strings.TrimSpace(v.Version) == "" {
			return fmt.Errorf("versions[%d]: no version", i)
		}
		if _, err := version.Parse(v.Version); err != nil {
			return fmt.Errorf("versions[%d]: %w", i, err)
		}
		for j, p := range v.Providers {
			switch {
			case strings.TrimSpace(p.Name) == "":
				return fmt.Errorf("versions[%d].providers[%d]: no name", i, j)
			case strings.TrimSpace(p.URL) == "":
				return fmt.Errorf("versions[%d].providers[%d]: no url", i, j)
			}
		}
	}
	return nil
}

// Select returns the highest version that satisfies cs and has a download
// for provider, with that download. When a version lists the provider
// more than once (one per architecture), the entry for the host's
// architecture (runtime.GOARCH) wins, then one without an architecture,
// then the first. The error lists the versions the catalog has.
func (c *Catalog) Select(provider string, cs version.Constraints) (CatalogVersion, CatalogProvider, error) {
	var (
		best    CatalogVersion
		bestP   CatalogProvider
		bestV   version.Version
		found   bool
		listing []string
	)
	for _, cv := range c.Versions {
		var names []string
		for _, p := range cv.Providers {
			names = append(names, p.Name)
		}
		listing = append(listing, fmt.Sprintf("%s (%s)", cv.Version, strings.Join(names, ", ")))
		v, err := version.Parse(cv.Version)
		if err != nil || !cs.Check(v) {
			continue
		}
		p, ok := pickProvider(cv.Providers, provider)
		if !ok {
			continue
		}
		if !found || version.Compare(v, bestV) > 0 {
			best, bestP, bestV, found = cv, p, v, true
		}
	}
	if found {
		return best, bestP, nil
	}
	want := fmt.Sprintf("for provider %q", provider)
	if len(cs) > 0 {
		want += fmt.Sprintf(" matching %q", cs.String())
	}
	have := "it lists no versions"
	if len(listing) > 0 {
		have = "available: " + strings.Join(listing, "; ")
	}
	return CatalogVersion{}, CatalogProvider{}, fmt.Errorf("box %q has no version %s; %s", c.Name, want, have)
}

// pickProvider finds the download for provider among ps, preferring the
// host's architecture.
func pickProvider(ps []CatalogProvider, provider string) (CatalogProvider, bool) {
	var first, generic *CatalogProvider
	for i := range ps {
		p := &ps[i]
		if p.Name != provider {
			continue
		}
		if p.Architecture == runtime.GOARCH {
			return *p, true
		}
		if first == nil {
			first = p
		}
		if generic == nil && p.Architecture == "" {
			generic = p
		}
	}
	switch {
	case generic != nil:
		return *generic, true
	case first != nil:
		return *first, true
	}
	return CatalogProvider{}, false
}

// ParseChecksum returns the expected digest of the download from
// checksum_type and checksum; an empty checksum gives the zero Checksum.
// (A method named Checksum would clash with the Checksum field.)
func (p CatalogProvider) ParseChecksum() (Checksum, error) {
	if strings.TrimSpace(p.Checksum) == "" {
		return Checksum{}, nil
	}
	if strings.TrimSpace(p.ChecksumType) == "" {
		return Checksum{}, fmt.Errorf("provider %q: checksum without checksum_type", p.Name)
	}
	c, err := NewChecksum(p.ChecksumType, p.Checksum)
	if err != nil {
		return Checksum{}, fmt.Errorf("provider %q: %w", p.Name, err)
	}
	return c, nil
}

// FetchCatalog downloads and parses the catalog at an http or https URL,
// reading at most MaxCatalogSize bytes. client nil means
// http.DefaultClient. A URL that serves something other than JSON (a box
// file, say) gives an error; callers that accept both can look at the
// first bytes themselves with IsCatalog.
func FetchCatalog(ctx context.Context, rawURL string, client *http.Client) (*Catalog, error) {
	u, err := parseHTTPURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	source := u.Redacted()
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", source, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "den")
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("catalog %s: %w", source, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("catalog %w", newStatusError(source, resp))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxCatalogSize+1))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", source, err)
	}
	if len(data) > MaxCatalogSize {
		return nil, fmt.Errorf("catalog %s: larger than %d MiB", source, MaxCatalogSize>>20)
	}
	if !IsCatalog(data) {
		return nil, fmt.Errorf("catalog %s: not a JSON catalog (Content-Type %q; a box file?)", source, resp.Header.Get("Content-Type"))
	}
	return ParseCatalog(data, source)
}

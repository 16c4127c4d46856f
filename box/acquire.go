package box

// Boxes from URLs and Vagrant catalogs: box add's sources, box_url and
// box_version for up, and the catalogs box outdated and update read.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fetch"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/internal/version"
)

// FormatProvider is the provider name of den's box format (vagrant-lxc's
// layout): the one den looks for in a catalog and writes into a box file's
// metadata.
const FormatProvider = "lxc"

// httpClient sends den's catalog and box requests: the default transport
// (proxy settings from the environment) with time limits on connecting and
// on waiting for a response, never on the length of a download.
var httpClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = time.Minute
	return t
}()}

// Request is what to add: the arguments of 'den box add', or a machine's
// box, box_version and box_url.
type Request struct {
	Name        string              // the box's name; "" takes the catalog's
	Source      string              // http(s) URL, file:// URL or path of a box file or catalog
	Constraints version.Constraints // which catalog versions will do; a box file must match too
	Checksum    fetch.Checksum      // expected digest of a box file (a catalog gives its own)
	Version     string              // store a box file as this version ("" = its metadata, else 0)
	Force       bool                // replace an installed version
	Reuse       bool                // an installed version is the answer, not an error
	MaxSize     int64               // the most the box may unpack to; 0 for DefaultMaxSize
}

// boxSource is a box file or catalog location: an http(s) URL, or a local
// path.
type boxSource struct {
	raw  string // as given
	url  *url.URL
	path string // absolute, for a local source
}

// parseSource sorts src into an http(s) URL or a local path (a file:// URL
// or a plain path, relative to the current folder).
func parseSource(src string) (boxSource, error) {
	if scheme, _, ok := strings.Cut(src, "://"); ok {
		u, err := url.Parse(src)
		if err != nil {
			return boxSource{}, fmt.Errorf("box source %q: %w", src, err)
		}
		switch strings.ToLower(scheme) {
		case "http", "https":
			if u.Host == "" {
				return boxSource{}, fmt.Errorf("box source %q: the URL has no host", src)
			}
			return boxSource{raw: src, url: u}, nil
		case "file":
			if u.Host != "" && u.Host != "localhost" {
				return boxSource{}, fmt.Errorf("box source %q: a file URL names a file on this host (file:///path)", src)
			}
			return boxSource{raw: src, path: filepath.Clean(u.Path)}, nil
		default:
			return boxSource{}, fmt.Errorf("box source %q: den takes a box file, a catalog, or an http(s) URL of one, not a %s URL", src, scheme)
		}
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return boxSource{}, fmt.Errorf("box source %q: %w", src, err)
	}
	return boxSource{raw: src, path: abs}, nil
}

// remote reports whether the source is an http(s) URL.
func (b boxSource) remote() bool { return b.url != nil }

// String is the source for messages: a URL without its password, or the
// path.
func (b boxSource) String() string {
	if b.remote() {
		return b.url.Redacted()
	}
	return b.path
}

// record is the source as den-box.json keeps it: the URL without any
// user name or password (den-box.json is world-readable), or the path.
func (b boxSource) record() string {
	if !b.remote() {
		return b.path
	}
	u := *b.url
	u.User = nil
	return u.String()
}

// resolve returns a download named in the catalog at b: a URL relative to
// a remote catalog, or a path relative to a local one. A remote catalog
// may name only http(s) downloads, never a file on this host.
func (b boxSource) resolve(ref string) (boxSource, error) {
	if b.remote() {
		r, err := url.Parse(ref)
		if err != nil {
			return boxSource{}, fmt.Errorf("catalog %s: download %q: %w", b, ref, err)
		}
		u := b.url.ResolveReference(r)
		if u.Scheme != "http" && u.Scheme != "https" {
			return boxSource{}, fmt.Errorf("catalog %s: download %q is not an http(s) URL; a remote catalog may not name files on this host", b, ref)
		}
		return boxSource{raw: u.String(), url: u}, nil
	}
	if _, _, ok := strings.Cut(ref, "://"); ok || filepath.IsAbs(ref) {
		return parseSource(ref)
	}
	return boxSource{raw: ref, path: filepath.Join(filepath.Dir(b.path), ref)}, nil
}

// catalogHead is how many bytes of a source decide whether it is a catalog.
const catalogHead = 512

// probe reads the start of src and returns its catalog, or nil when it is
// a box file. An http(s) source is a catalog when its body starts with "{"
// (after white space) or its Content-Type is JSON; a file, when it starts
// with "{".
func probe(ctx context.Context, src boxSource) (*fetch.Catalog, error) {
	var (
		body io.Reader
		json bool
	)
	if src.remote() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("box %s: %w", src, err)
		}
		req.Header.Set("Accept", "application/json, */*;q=0.5")
		req.Header.Set("User-Agent", "den")
		resp, err := httpClient.Do(req)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return nil, fmt.Errorf("box %s: %w", src, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, fmt.Errorf("box %s: %s", src, resp.Status)
		}
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		json = mt == "application/json" || strings.HasSuffix(mt, "+json")
		body = resp.Body
	} else {
		f, err := os.Open(src.path)
		if err != nil {
			return nil, fmt.Errorf("box file: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("box file %q is a folder", src.path)
		}
		body = f
	}
	head := make([]byte, catalogHead)
	n, err := io.ReadFull(body, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("box %s: %w", src, err)
	}
	head = head[:n]
	if !json && !fetch.IsCatalog(head) {
		return nil, nil
	}
	rest, err := io.ReadAll(io.LimitReader(body, fetch.MaxCatalogSize+1-int64(n)))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", src, err)
	}
	data := append(head, rest...)
	if len(data) > fetch.MaxCatalogSize {
		return nil, fmt.Errorf("catalog %s: larger than %d MiB", src, fetch.MaxCatalogSize>>20)
	}
	return fetch.ParseCatalog(data, src.String())
}

// Acquire adds the box req names: from a catalog, the newest version for
// provider lxc that req.Constraints allows (stored as that version), or a
// box file. A download goes into the store's temp area and is checked
// against its checksum before anything is unpacked; on any failure
// nothing is left behind.
func (s *Store) Acquire(ctx context.Context, u ui.Reporter, req Request) (*Box, error) {
	lk, err := s.Lock(ctx, false, "den box add")
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	if req.Name != "" {
		if err := CheckName(req.Name); err != nil {
			return nil, err
		}
	}
	src, err := parseSource(req.Source)
	if err != nil {
		return nil, err
	}
	if cloudName(req.Source) {
		hint := ""
		if _, ok := KnownBuild(req.Source); ok {
			hint = fmt.Sprintf("; 'den box build %s' builds it", req.Source)
		} else if b := closestBuild(req.Source); b != "" {
			hint = fmt.Sprintf("; for Debian, 'den box build %s' builds one", b)
		}
		return nil, errdefs.Newf(errdefs.NotFound, "%q looks like a Vagrant Cloud box name, and there is no such file here: den has no default catalog, so give the http(s) URL of a catalog or box file ('den box add URL', 'den box add NAME URL') or a box file ('den box add NAME FILE')%s", req.Source, hint)
	}
	cat, err := probe(ctx, src)
	if err != nil {
		return nil, err
	}
	if cat == nil {
		return s.addBoxFile(ctx, u, req, src)
	}

	name := cat.Name
	if req.Name != "" && req.Name != name {
		return nil, fmt.Errorf("catalog %s is for box %q, not %q; use that name (or leave the name out: den box add URL)", src, name, req.Name)
	}
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", src, err)
	}
	switch {
	case !req.Checksum.IsZero():
		return nil, errdefs.Newf(errdefs.Invalid, "%s is a catalog: it gives each download's checksum, so --checksum is for box files only", src)
	case req.Version != "":
		return nil, errdefs.Newf(errdefs.Invalid, "%s is a catalog: boxes from it keep the catalog's version; choose one with --box-version, not --version", src)
	}
	cv, cp, err := cat.Select(FormatProvider, req.Constraints)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", src, err)
	}
	if err := CheckVersion(cv.Version); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", src, err)
	}
	sum, err := cp.ParseChecksum()
	if err != nil {
		return nil, fmt.Errorf("catalog %s: version %s: %w", src, cv.Version, err)
	}
	if b, err := s.Get(name, cv.Version); err == nil && !req.Force {
		if req.Reuse {
			return b, nil
		}
		return nil, fmt.Errorf("box %q version %q is installed already; remove it first, or pass --force to add it again", name, cv.Version)
	}
	dl, err := src.resolve(cp.URL)
	if err != nil {
		return nil, err
	}
	u.Say(name, "Adding box %s version %s (provider %s) from catalog %s...", name, cv.Version, FormatProvider, src)
	b, err := s.fetchBox(ctx, u, name, dl, sum, AddOptions{Version: cv.Version, Force: req.Force, Source: dl.record(), Catalog: src.record(), MaxSize: req.MaxSize})
	if err != nil && req.Reuse {
		if b, gerr := s.Get(name, cv.Version); gerr == nil {
			return b, nil // another den added it meanwhile
		}
	}
	return b, err
}

// addBoxFile adds the box file at src as req.Name.
func (s *Store) addBoxFile(ctx context.Context, u ui.Reporter, req Request, src boxSource) (*Box, error) {
	if req.Name == "" {
		return nil, errdefs.Newf(errdefs.Invalid, "%s is a box file, not a catalog: name the box (den box add NAME %s)", src, req.Source)
	}
	if req.Version != "" {
		if err := CheckVersion(req.Version); err != nil {
			return nil, err
		}
		if _, err := s.Get(req.Name, req.Version); err == nil && !req.Force {
			if req.Reuse {
				return s.Get(req.Name, req.Version)
			}
			return nil, fmt.Errorf("box %q version %q is installed already; remove it first, or pass --force to add it again", req.Name, req.Version)
		}
	}
	before := s.installedSet(req.Name)
	u.Say(req.Name, "Adding box %s from %s...", req.Name, src)
	b, err := s.fetchBox(ctx, u, req.Name, src, req.Checksum, AddOptions{Version: req.Version, Force: req.Force, Source: src.record(), MaxSize: req.MaxSize})
	if err != nil {
		return nil, err
	}
	if len(req.Constraints) > 0 && !version.Satisfies(b.Version, req.Constraints) {
		// It does not do: take it out again, unless it was there before.
		if !before[b.Version] {
			if rerr := s.Remove(b.Name, b.Version); rerr != nil {
				u.Warn(b.Name, "could not remove version %s again: %v", b.Version, rerr)
			}
		}
		return nil, fmt.Errorf("box file %s holds %s version %s, which does not match box_version %q", src, b.Name, b.Version, req.Constraints.String())
	}
	return b, nil
}

// installedSet lists the installed versions of name.
func (s *Store) installedSet(name string) map[string]bool {
	out := map[string]bool{}
	boxes, _ := s.Versions(name)
	for _, b := range boxes {
		out[b.Version] = true
	}
	return out
}

// fetchBox downloads src when remote (verifying sum on the way), checks sum
// on a local file, then unpacks the box file into the store.
func (s *Store) fetchBox(ctx context.Context, u ui.Reporter, name string, src boxSource, sum fetch.Checksum, opts AddOptions) (*Box, error) {
	path := src.path
	if src.remote() {
		tmp, err := s.TempDir()
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp) // den's own folder in the store's temp area
		path = filepath.Join(tmp, "box")
		dp := &downloadProgress{u: u, name: name}
		err = fetch.Download(ctx, src.url.String(), path, fetch.Options{Checksum: sum, Client: httpClient, Progress: dp.update})
		dp.done()
		if err != nil {
			if errors.Is(err, fetch.ErrChecksumMismatch) {
				return nil, fmt.Errorf("%w; the download is damaged or the catalog is wrong, and nothing was added", err)
			}
			return nil, err
		}
		u.Detail(name, "Downloaded %s%s.", ui.Bytes(dp.last), verifiedNote(sum))
	} else if !sum.IsZero() {
		if err := sum.Verify(path); err != nil {
			if errors.Is(err, fetch.ErrChecksumMismatch) {
				return nil, fmt.Errorf("%w; nothing was added", err)
			}
			return nil, err
		}
		u.Detail(name, "Checksum %s verified.", sum.Type)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("box file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	prog := u.Progress(name, "Unpacking", st.Size())
	opts.Progress = func(done int64) { prog.Update(done, "") }
	opts.Warn = func(format string, args ...any) { u.Warn(name, format, args...) }
	b, err := s.Add(ctx, name, f, opts)
	prog.Done()
	if err != nil {
		return nil, err
	}
	u.Say(name, "Box added: %s version %s.", b.Name, b.Version)
	return b, nil
}

// verifiedNote says which checksum a download matched.
func verifiedNote(sum fetch.Checksum) string {
	if sum.IsZero() {
		return " (no checksum to verify)"
	}
	return ", " + sum.Type + " checksum verified"
}

// downloadProgress feeds fetch.Download's progress to a ui.Progress,
// starting a new one when the size becomes known or the download starts
// over.
type downloadProgress struct {
	u     ui.Reporter
	name  string
	p     ui.Bar
	total int64
	last  int64
}

func (d *downloadProgress) update(done, total int64) {
	if d.p == nil || total != d.total {
		if d.p != nil {
			d.p.Done()
		}
		d.p = d.u.Progress(d.name, "Downloading", max(total, 0))
		d.total = total
	}
	d.last = done
	d.p.Update(done, "")
}

func (d *downloadProgress) done() {
	if d.p != nil {
		d.p.Done()
	}
}

// Newest returns the newest installed version of name that matches cs,
// or nil when there is none.
func (s *Store) Newest(name string, cs version.Constraints) (*Box, error) {
	boxes, err := s.Versions(name)
	if err != nil {
		return nil, err
	}
	for i := len(boxes) - 1; i >= 0; i-- {
		if version.Satisfies(boxes[i].Version, cs) {
			return boxes[i], nil
		}
	}
	return nil, nil
}

// boxCatalog returns the catalog recorded for an installed box: the newest
// version's that has one.
func (s *Store) catalogOf(name string) (catalog string, newest *Box, err error) {
	boxes, err := s.Versions(name)
	if err != nil || len(boxes) == 0 {
		return "", nil, err
	}
	newest = boxes[len(boxes)-1]
	for i := len(boxes) - 1; i >= 0; i-- {
		if c := boxes[i].Info.Catalog; c != "" {
			return c, newest, nil
		}
	}
	return "", newest, nil
}

// noCatalog says why an installed box has no catalog to check.
func noCatalog(b *Box) string {
	if b != nil && b.Info.Source == "den box build" {
		return "no catalog: built by 'den box build' (build it again for a newer one)"
	}
	return "no catalog: added from a file"
}

// catalogCache keeps the catalogs (or the finding that a source is a box
// file) one command has read, so each is fetched once.
type catalogCache map[string]catalogResult

type catalogResult struct {
	cat *fetch.Catalog // nil for a box file
	err error
}

// get returns the catalog at src, or nil when src is a box file.
func (c catalogCache) get(ctx context.Context, src string) (*fetch.Catalog, error) {
	if r, ok := c[src]; ok {
		return r.cat, r.err
	}
	var r catalogResult
	s, err := parseSource(src)
	if err != nil {
		r.err = err
	} else {
		r.cat, r.err = probe(ctx, s)
	}
	c[src] = r
	return r.cat, r.err
}

// wantCatalog is where a machine's box gets new versions: the catalog
// recorded with the installed box, else den.hcl's box_url when it serves
// a catalog. It returns "" and a reason when there is none.
func (s *Store) wantCatalog(ctx context.Context, cache catalogCache, m Want) (string, string, error) {
	c, newest, err := s.catalogOf(m.Name)
	if err != nil {
		return "", "", err
	}
	if c != "" {
		return c, "", nil
	}
	if m.URL == "" {
		if newest == nil {
			return "", "no catalog: the box is not installed and den.hcl sets no box_url", nil
		}
		return "", noCatalog(newest), nil
	}
	cat, err := cache.get(ctx, m.URL)
	if err != nil {
		return "", "", err
	}
	if cat == nil {
		return "", "no catalog: box_url is a box file", nil
	}
	return m.URL, "", nil
}

// cloudName reports whether src is a box name such as "debian/bookworm64"
// (Vagrant Cloud's ORG/NAME) rather than a path that exists.
func cloudName(src string) bool {
	if strings.Contains(src, "://") || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.Count(src, "/") != 1 || CheckName(src) != nil {
		return false
	}
	_, err := os.Lstat(src)
	return errors.Is(err, os.ErrNotExist)
}

// closestBuild is the box den builds that name is closest to ("" when
// it is not a Debian name).
func closestBuild(name string) string {
	for _, b := range []string{"debian/trixie", "debian/bookworm"} {
		suite := strings.TrimPrefix(b, "debian/")
		if strings.Contains(name, suite) || (strings.HasPrefix(name, "debian/") && b == "debian/bookworm") {
			return b
		}
	}
	return ""
}

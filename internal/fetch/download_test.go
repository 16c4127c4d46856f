package fetch

import (
	"bytes"
	"context"
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
)

func TestMain(m *testing.M) {
	// Retries are tested for what they do, not for how long they wait.
	retryDelay = func(int) time.Duration { return 0 }
	os.Exit(m.Run())
}

// testBody returns n bytes that differ from one offset to the next, so a
// file glued from wrong pieces is noticed.
func testBody(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>8) ^ seed
	}
	return b
}

// recorder is a test server that keeps the headers of each request.
type recorder struct {
	mu   sync.Mutex
	reqs []http.Header
}

// add records r and returns how many requests came before it.
func (rec *recorder) add(r *http.Request) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, r.Header.Clone())
	return len(rec.reqs) - 1
}

// requests returns the recorded headers.
func (rec *recorder) requests() []http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]http.Header(nil), rec.reqs...)
}

// serve starts a server whose handler gets the index of each request.
func serve(t *testing.T, handle func(i int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(rec.add(r), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

// serveContent answers with body and etag, honouring Range and If-Range.
func serveContent(w http.ResponseWriter, r *http.Request, body []byte, etag string) {
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// dropAfter announces the whole body but sends only its first n bytes,
// then closes the connection.
func dropAfter(t *testing.T, w http.ResponseWriter, body []byte, n int, etag string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n", len(body))
	if etag != "" {
		fmt.Fprintf(buf, "ETag: %s\r\n", etag)
	}
	buf.WriteString("\r\n")
	buf.Write(body[:n])
	if err := buf.Flush(); err != nil {
		t.Errorf("flush: %v", err)
	}
}

// checkFile fails unless path holds want.
func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d bytes of the body", path, len(got), len(want))
	}
}

// checkAbsent fails if path exists.
func checkAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v)", path, err)
	}
}

// checkHeaders compares one header of each request with want ("" for
// absent).
func checkHeaders(t *testing.T, rec *recorder, name string, want ...string) {
	t.Helper()
	reqs := rec.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, h := range reqs {
		if got := h.Get(name); got != want[i] {
			t.Errorf("request %d: %s = %q, want %q", i, name, got, want[i])
		}
	}
}

func TestDownload(t *testing.T) {
	body := testBody(300_000, 1)
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		serveContent(w, r, body, `"v1"`)
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkAbsent(t, dest+".part")
	checkHeaders(t, rec, "Range", "")
	checkHeaders(t, rec, "Accept-Encoding", "identity")
}

func TestDownloadWrongChecksum(t *testing.T) {
	body := testBody(100_000, 2)
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		serveContent(w, r, body, "")
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	want := sha256Of([]byte("something else"))
	err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: want, Client: srv.Client()})
	var mismatch *MismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a *MismatchError", err)
	}
	for _, s := range []string{srv.URL + "/x.box", "expected " + want.String(), "got " + sha256Of(body).String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	checkAbsent(t, dest)
	checkAbsent(t, dest+".part")
	if n := len(rec.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (a mismatch is not retried)", n)
	}
}

func TestDownloadResumesAfterDrop(t *testing.T) {
	body := testBody(300_000, 3)
	const cut = 123_457
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			dropAfter(t, w, body, cut, `"v1"`)
			return
		}
		serveContent(w, r, body, `"v1"`)
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkAbsent(t, dest+".part")
	checkHeaders(t, rec, "Range", "", fmt.Sprintf("bytes=%d-", cut))
	checkHeaders(t, rec, "If-Range", "", `"v1"`)
}

func TestDownloadServerIgnoresRange(t *testing.T) {
	body := testBody(200_000, 4)
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			dropAfter(t, w, body, 50_000, "")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body) // 200 whatever the Range
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkHeaders(t, rec, "Range", "", "bytes=50000-")
}

func TestDownloadFileChangedBetweenAttempts(t *testing.T) {
	old, changed := testBody(200_000, 5), testBody(210_000, 6)
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			dropAfter(t, w, old, 70_000, `"old"`)
			return
		}
		serveContent(w, r, changed, `"new"`) // If-Range "old" fails: 200
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, changed)
	checkHeaders(t, rec, "If-Range", "", `"old"`)
}

func TestDownloadResumesLeftoverPart(t *testing.T) {
	body := testBody(250_000, 7)
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		serveContent(w, r, body, `"v1"`)
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	// An earlier run stopped after 100000 bytes.
	if err := os.WriteFile(dest+".part", body[:100_000], 0o644); err != nil {
		t.Fatal(err)
	}
	var first int64 = -1
	progress := func(done, total int64) {
		if first < 0 {
			first = done
		}
	}
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client(), Progress: progress}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkAbsent(t, dest+".part")
	checkHeaders(t, rec, "Range", "bytes=100000-")
	if first != 100_000 {
		t.Errorf("first progress done = %d, want the resumed 100000", first)
	}
}

func TestDownloadLeftoverPartOfAnotherFile(t *testing.T) {
	body := testBody(150_000, 8)
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		serveContent(w, r, body, "")
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	// An earlier run fetched the start of an older file from this URL.
	if err := os.WriteFile(dest+".part", testBody(60_000, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkHeaders(t, rec, "Range", "bytes=60000-", "")
}

func TestDownloadLeftoverPartComplete(t *testing.T) {
	body := testBody(80_000, 10)
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		serveContent(w, r, body, "")
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := os.WriteFile(dest+".part", body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkHeaders(t, rec, "Range", "bytes=80000-") // answered 416 bytes */80000
}

func TestDownloadPartialRanges(t *testing.T) {
	// A server that sends at most 64 KiB per 206, and drops the first
	// response, makes Download ask again for the rest until the end.
	body := testBody(200_000, 11)
	const chunk = 64 << 10
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			dropAfter(t, w, body, 10_000, "")
			return
		}
		var start int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start); err != nil {
			t.Errorf("request %d: Range %q", i, r.Header.Get("Range"))
			return
		}
		end := min(start+chunk, len(body)) - 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(body)))
		w.Header().Set("Content-Length", fmt.Sprint(end-start+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body[start : end+1])
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkHeaders(t, rec, "Range", "", "bytes=10000-", "bytes=75536-", "bytes=141072-")
}

func TestDownloadCancelKeepsPart(t *testing.T) {
	body := testBody(200_000, 12)
	const half = 100_000
	release := make(chan struct{})
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Header().Set("ETag", `"v1"`)
			w.Write(body[:half])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		serveContent(w, r, body, `"v1"`)
	})
	defer close(release) // before srv.Close, which waits for handlers
	dest := filepath.Join(t.TempDir(), "x.box")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(done, total int64) {
		if done >= half {
			cancel()
		}
	}
	err := Download(ctx, srv.URL+"/x.box", dest, Options{Client: srv.Client(), Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	checkAbsent(t, dest)
	checkFile(t, dest+".part", body[:half])

	// A later call resumes where the cancelled one stopped.
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Checksum: sha256Of(body), Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	checkHeaders(t, rec, "Range", "", "bytes=100000-")
}

func TestDownloadStatusErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		retries  int
		wantReqs int
	}{
		{"404 not retried", http.StatusNotFound, 0, 1},
		{"403 not retried", http.StatusForbidden, 0, 1},
		{"503 retried", http.StatusServiceUnavailable, 0, 4},
		{"503 two retries", http.StatusServiceUnavailable, 2, 3},
		{"503 no retries", http.StatusServiceUnavailable, -1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", tc.status)
			})
			dest := filepath.Join(t.TempDir(), "x.box")
			err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Client: srv.Client(), Retries: tc.retries})
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.status {
				t.Fatalf("err = %v, want a *StatusError %d", err, tc.status)
			}
			want := fmt.Sprintf("download %s/x.box: %d %s", srv.URL, tc.status, http.StatusText(tc.status))
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if n := len(rec.requests()); n != tc.wantReqs {
				t.Errorf("%d requests, want %d", n, tc.wantReqs)
			}
			checkAbsent(t, dest)
			checkAbsent(t, dest+".part")
		})
	}
}

func TestDownloadRetriesThenSucceeds(t *testing.T) {
	body := testBody(50_000, 13)
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i < 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		serveContent(w, r, body, "")
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Client: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	if n := len(rec.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestDownloadDropsExhaustRetries(t *testing.T) {
	body := testBody(50_000, 14)
	srv, rec := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		// Each response sends 1000 more bytes, then drops.
		start := 0
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n",
			start, len(body)-1, len(body), len(body)-start)
		buf.Write(body[start : start+1000])
		buf.Flush()
	})
	dest := filepath.Join(t.TempDir(), "x.box")
	err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Client: srv.Client(), Retries: 2})
	if err == nil || !strings.Contains(err.Error(), "transfer stopped after 3000 bytes") {
		t.Fatalf("err = %v", err)
	}
	checkHeaders(t, rec, "Range", "", "bytes=1000-", "bytes=2000-")
	checkAbsent(t, dest)
	checkFile(t, dest+".part", body[:3000]) // kept for a later call
}

func TestDownloadProgress(t *testing.T) {
	body := testBody(300_000, 15)
	tests := []struct {
		name      string
		chunked   bool
		wantTotal int64 // during the transfer
	}{
		{"known size", false, int64(len(body))},
		{"unknown size", true, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				if !tc.chunked {
					serveContent(w, r, body, "")
					return
				}
				for off := 0; off < len(body); off += 100_000 {
					w.Write(body[off:min(off+100_000, len(body))])
					w.(http.Flusher).Flush()
				}
			})
			var calls [][2]int64
			progress := func(done, total int64) { calls = append(calls, [2]int64{done, total}) }
			dest := filepath.Join(t.TempDir(), "x.box")
			if err := Download(context.Background(), srv.URL+"/x.box", dest, Options{Client: srv.Client(), Progress: progress}); err != nil {
				t.Fatal(err)
			}
			if len(calls) < 2 {
				t.Fatalf("progress calls: %v", calls)
			}
			n := int64(len(body))
			if last := calls[len(calls)-1]; last != [2]int64{n, n} {
				t.Errorf("last progress call %v, want done == total == %d", last, n)
			}
			if calls[0] != [2]int64{0, tc.wantTotal} {
				t.Errorf("first progress call %v, want [0 %d]", calls[0], tc.wantTotal)
			}
			for i := 1; i < len(calls); i++ {
				if calls[i][0] < calls[i-1][0] {
					t.Fatalf("done went back: %v", calls)
				}
				if i < len(calls)-1 && calls[i][1] != tc.wantTotal {
					t.Fatalf("call %d: total %d, want %d", i, calls[i][1], tc.wantTotal)
				}
			}
		})
	}
}

func TestDownloadRefusals(t *testing.T) {
	dir := t.TempDir()
	srv, rec := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("x"))
	})
	tests := []struct {
		name, url, dest, want string
		opts                  Options
	}{
		{name: "ftp", url: "ftp://example.test/x.box", dest: "x.box", want: `"ftp://example.test/x.box" is not an http or https URL`},
		{name: "file", url: "file:///tmp/x.box", dest: "x.box", want: "is not an http or https URL"},
		{name: "path", url: "/tmp/x.box", dest: "x.box", want: "is not an http or https URL"},
		{name: "no host", url: "http:///x.box", dest: "x.box", want: "has no host"},
		{name: "missing folder", url: srv.URL + "/x.box", dest: filepath.Join(dir, "nope", "x.box"), want: "no such file or directory"},
		{name: "bad checksum type", url: srv.URL + "/x.box", dest: filepath.Join(dir, "x.box"), opts: Options{Checksum: Checksum{Type: "crc", Hex: "00"}}, want: `unknown checksum type "crc"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Client = srv.Client()
			err := Download(context.Background(), tc.url, tc.dest, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
	checkAbsent(t, filepath.Join(dir, "nope"))
	checkAbsent(t, filepath.Join(dir, "x.box.part"))
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes */100", -1, -1, 100, true},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"bytes */*", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"bytes x-1/2", 0, 0, 0, false},
	}
	for _, tc := range tests {
		s, e, n, ok := parseContentRange(tc.in)
		if ok != tc.ok || (ok && (s != tc.start || e != tc.end || n != tc.total)) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v, want %d %d %d %v", tc.in, s, e, n, ok, tc.start, tc.end, tc.total, tc.ok)
		}
	}
}

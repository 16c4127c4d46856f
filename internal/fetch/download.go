package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options tunes Download. The zero Options is ready to use.
type Options struct {
	// Checksum is verified before dest appears; the zero Checksum checks
	// nothing.
	Checksum Checksum
	// Progress, when set, is called from Download's goroutine as bytes
	// arrive, with the bytes held so far (a resumed prefix included) and
	// the full size, or -1 while the size is unknown. done goes back to 0
	// when the download starts over. The last call after a success has
	// done == total.
	Progress func(done, total int64)
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Retries is how many more attempts follow a failed transfer (dropped
	// connection, 5xx, 408, 429); 0 means 3 and a negative number means
	// none.
	Retries int
}

// defaultRetries is the number of retries when Options.Retries is 0.
const defaultRetries = 3

// retryDelay is the pause before retry number n (1, 2, …); tests shorten it.
var retryDelay = func(n int) time.Duration { return time.Duration(n) * 200 * time.Millisecond }

// copyBufferSize is the size of the reads from a response body.
const copyBufferSize = 64 << 10

// StatusError reports an HTTP response whose status is not a success.
type StatusError struct {
	URL        string // without its password
	StatusCode int
	Status     string // such as "404 Not Found"
}

// Error returns "URL: STATUS", such as "https://x/y.box: 404 Not Found".
func (e *StatusError) Error() string {
	return e.URL + ": " + e.Status
}

// newStatusError describes resp, naming u.
func newStatusError(u string, resp *http.Response) *StatusError {
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	return &StatusError{URL: u, StatusCode: resp.StatusCode, Status: status}
}

// retryableStatus reports whether a response with this status may succeed
// when asked again.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// Download fetches an http or https URL into the file dest, whose folder
// must exist.
//
// Data goes to dest+".part", which is renamed to dest only after the whole
// body arrived and matched opts.Checksum; on a mismatch the .part is removed
// and dest is left alone (a *MismatchError is returned). A .part left by an
// earlier call, or by a transfer that dropped, is resumed with
// "Range: bytes=N-" (and If-Range when the server gave an ETag or a
// Last-Modified time); a server that answers with the whole file instead
// makes Download start over. If a resumed .part from an earlier call fails
// the checksum, Download downloads the whole file once more before giving
// up, since that prefix may belong to an older file.
//
// Transfers that fail are retried (see Options.Retries) after a short
// pause; other error statuses, such as 404, are returned at once as a
// *StatusError. When ctx ends, Download returns ctx's error and keeps the
// .part for a later call. Two calls for the same dest must not overlap.
func Download(ctx context.Context, rawURL, dest string, opts Options) error {
	u, err := parseHTTPURL(rawURL)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if dest == "" {
		return fmt.Errorf("download %s: no destination file", u.Redacted())
	}
	if !opts.Checksum.IsZero() && opts.Checksum.New() == nil {
		return fmt.Errorf("download %s: unknown checksum type %q (want one of %s)", u.Redacted(), opts.Checksum.Type, checksumTypeList)
	}
	d := &downloader{
		url:    u.Redacted(),
		rawURL: u.String(),
		part:   dest + ".part",
		opts:   opts,
		client: opts.Client,
		last:   [2]int64{-1, -1},
	}
	if d.client == nil {
		d.client = http.DefaultClient
	}
	if fi, err := os.Stat(d.part); err == nil && fi.Size() > 0 {
		d.oldPrefix = true
	}
	err = d.run(ctx, dest)
	if err != nil {
		// An empty .part is worth nothing to a later call.
		if fi, serr := os.Stat(d.part); serr == nil && fi.Size() == 0 {
			os.Remove(d.part)
		}
	}
	return err
}

// parseHTTPURL parses an http or https URL with a host.
func parseHTTPURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https URL", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %q has no host", rawURL)
	}
	return u, nil
}

// downloader is the state of one Download call.
type downloader struct {
	url       string // for messages, without its password
	rawURL    string
	part      string
	opts      Options
	client    *http.Client
	etag      string    // strong ETag of the last response, or ""
	validator string    // If-Range value: etag or Last-Modified, or ""
	oldPrefix bool      // the .part holds bytes from before this call
	hash      hash.Hash // digest of the .part after a complete attempt
	size      int64     // size of the .part after a complete attempt
	last      [2]int64  // the last values given to Progress
}

// outcome is how one request ended.
type outcome int

const (
	complete outcome = iota // the .part holds the whole file
	more                    // a 206 stopped before the end of the file: ask for the rest now
	restart                 // the .part was emptied: start again now
	retry                   // the transfer failed: try again after a pause
	fail                    // give up
)

// run makes requests until the .part is complete, then verifies it and
// renames it to dest.
func (d *downloader) run(ctx context.Context, dest string) error {
	retries := d.opts.Retries
	if retries == 0 {
		retries = defaultRetries
	} else if retries < 0 {
		retries = 0
	}
	failures := 0
	for {
		out, err := d.attempt(ctx)
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("download %s: %w", d.url, cerr)
		}
		switch out {
		case complete:
			err := d.finish(dest)
			var mismatch *MismatchError
			if errors.As(err, &mismatch) && d.oldPrefix {
				// The prefix came from an earlier call and may belong to
				// an older file: try once more from the first byte.
				d.oldPrefix = false
				continue
			}
			return err
		case more:
			continue
		case restart, retry:
			if failures >= retries {
				return err
			}
			failures++
			if out == retry {
				if err := sleep(ctx, retryDelay(failures)); err != nil {
					return fmt.Errorf("download %s: %w", d.url, err)
				}
			}
		default:
			return err
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// finish verifies the complete .part and renames it to dest. On a checksum
// mismatch the .part is removed.
func (d *downloader) finish(dest string) error {
	if !d.opts.Checksum.IsZero() {
		if err := d.opts.Checksum.check(d.hash, d.url); err != nil {
			if rerr := os.Remove(d.part); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return errors.Join(err, rerr)
			}
			return err
		}
	}
	if err := os.Rename(d.part, dest); err != nil {
		return fmt.Errorf("download %s: %w", d.url, err)
	}
	if d.last != [2]int64{d.size, d.size} {
		d.progress(d.size, d.size)
	}
	return nil
}

// progress reports to Options.Progress, if set.
func (d *downloader) progress(done, total int64) {
	d.last = [2]int64{done, total}
	if d.opts.Progress != nil {
		d.opts.Progress(done, total)
	}
}

// attempt makes one request and appends its body to the .part.
func (d *downloader) attempt(ctx context.Context) (outcome, error) {
	f, err := os.OpenFile(d.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}
	defer f.Close()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.rawURL, nil)
	if err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}
	// Without this, net/http asks for gzip and unpacks it, and byte
	// offsets no longer match the file on the server.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "den")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		if d.validator != "" {
			req.Header.Set("If-Range", d.validator)
		}
	}
	resp, err := d.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		err = fmt.Errorf("download %s: %w", d.url, err)
		var cert *tls.CertificateVerificationError
		if errors.As(err, &cert) {
			return fail, err
		}
		return retry, err
	}
	defer resp.Body.Close()

	// emptyPart starts the .part over.
	emptyPart := func() error {
		d.oldPrefix = false
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("download %s: %w", d.url, err)
		}
		return nil
	}
	total := int64(-1)
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent:
		start, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		etag := strongETag(resp.Header.Get("ETag"))
		switch {
		case !ok || start != offset:
			err = fmt.Errorf("download %s: asked for bytes from %d, got Content-Range %q", d.url, offset, resp.Header.Get("Content-Range"))
		case d.etag != "" && etag != "" && etag != d.etag:
			err = fmt.Errorf("download %s: file changed on the server (ETag %s, was %s)", d.url, etag, d.etag)
		}
		if err != nil {
			d.etag, d.validator = "", ""
			if terr := emptyPart(); terr != nil {
				return fail, terr
			}
			return restart, err
		}
		total = size
	case code >= 200 && code < 300:
		// The whole file: a server that ignores Range, or a file that
		// changed since the .part was begun (If-Range).
		if offset > 0 {
			if err := emptyPart(); err != nil {
				return fail, err
			}
			offset = 0
		}
		if resp.ContentLength >= 0 {
			total = resp.ContentLength
		}
	case code == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		// Either the .part is already whole (a call stopped after the
		// last byte) or it is longer than the file.
		_, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if ok && size == offset {
			if err := d.hashPrefix(f, offset); err != nil {
				return fail, err
			}
			d.size = offset
			d.progress(offset, offset)
			return complete, nil
		}
		if err := emptyPart(); err != nil {
			return fail, err
		}
		return restart, fmt.Errorf("download %s: server refused to resume at byte %d (%s)", d.url, offset, resp.Status)
	default:
		err := fmt.Errorf("download %w", newStatusError(d.url, resp))
		if retryableStatus(code) {
			return retry, err
		}
		return fail, err
	}
	d.remember(resp)

	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}
	if err := d.hashPrefix(f, offset); err != nil {
		return fail, err
	}
	done := offset
	d.progress(done, total)
	buf := make([]byte, copyBufferSize)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return fail, fmt.Errorf("download %s: %w", d.url, err)
			}
			if d.hash != nil {
				d.hash.Write(buf[:n])
			}
			done += int64(n)
			d.progress(done, total)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return retry, fmt.Errorf("download %s: transfer stopped after %d bytes: %w", d.url, done, rerr)
		}
	}
	if total >= 0 && done < total {
		if resp.StatusCode == http.StatusPartialContent && done > offset {
			return more, nil
		}
		return retry, fmt.Errorf("download %s: transfer stopped after %d of %d bytes", d.url, done, total)
	}
	if err := f.Sync(); err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}
	if err := f.Close(); err != nil {
		return fail, fmt.Errorf("download %s: %w", d.url, err)
	}
	d.size = done
	return complete, nil
}

// hashPrefix starts d.hash over with the first n bytes of f, when a
// checksum is wanted.
func (d *downloader) hashPrefix(f *os.File, n int64) error {
	d.hash = nil
	if d.opts.Checksum.IsZero() {
		return nil
	}
	d.hash = d.opts.Checksum.New()
	if _, err := io.Copy(d.hash, io.NewSectionReader(f, 0, n)); err != nil {
		return fmt.Errorf("download %s: reading %q: %w", d.url, d.part, err)
	}
	return nil
}

// remember keeps the validator of resp for If-Range on the next request.
func (d *downloader) remember(resp *http.Response) {
	d.etag = strongETag(resp.Header.Get("ETag"))
	d.validator = d.etag
	if d.validator == "" {
		d.validator = resp.Header.Get("Last-Modified")
	}
}

// strongETag returns etag unless it is weak (W/"…"), which If-Range does
// not allow.
func strongETag(etag string) string {
	if strings.HasPrefix(etag, "W/") {
		return ""
	}
	return etag
}

// parseContentRange parses "bytes START-END/SIZE" or "bytes */SIZE". An
// unknown size ("*") is -1; start and end are -1 in the second form.
func parseContentRange(s string) (start, end, size int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		size = n
	}
	if rng == "*" {
		return -1, -1, size, size >= 0
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || (size >= 0 && end >= size) {
		return 0, 0, 0, false
	}
	return start, end, size, true
}

// Package ui prints den's user-facing output in Vagrant's rhythm
// ("==> name: step") and draws progress only on a terminal.
package ui

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Reporter is how a domain operation reports what it does: steps, details,
// warnings, a machine's command output and the progress of long work. The
// CLI prints them in Vagrant's rhythm (UI); a server turns them into
// events (Events); tests record them. Every method is safe for concurrent
// use by the machines of one operation.
type Reporter interface {
	// Say reports a step of machine's work ("Starting machine...").
	Say(machine, format string, args ...any)
	// Detail reports a secondary line of a step (the SSH address).
	Detail(machine, format string, args ...any)
	// Warn reports something the user should know that does not stop the
	// work; machine may be "".
	Warn(machine, format string, args ...any)
	// Output returns a writer for a command's output in machine (stdout,
	// or stderr when stderr is set), line by line; Close flushes a last
	// partial line. One writer is for one goroutine.
	Output(machine string, stderr bool) io.WriteCloser
	// Progress starts a report of a long step of known total size (bytes;
	// 0 when unknown).
	Progress(machine, what string, total int64) Bar
}

// Bar is the progress of one long step.
type Bar interface {
	// Update reports done units so far, or a line of text when line != "".
	Update(done int64, line string)
	// Done ends the report.
	Done()
}

var _ Reporter = (*UI)(nil)

// UI writes user messages. It is safe for concurrent use, so several
// machines can report at once.
type UI struct {
	mu    sync.Mutex
	Out   io.Writer
	Err   io.Writer
	IsTTY bool // Out is a terminal: progress may redraw a line
}

// New returns a UI on stdout/stderr.
func New() *UI {
	return &UI{Out: os.Stdout, Err: os.Stderr, IsTTY: term.IsTerminal(int(os.Stdout.Fd()))}
}

// Say prints "==> name: msg"; continuation lines are indented under it.
func (u *UI) Say(name, format string, args ...any) {
	u.write(u.Out, "==> "+name+": ", format, args...)
}

// Detail prints "    name: msg" for secondary lines of a step.
func (u *UI) Detail(name, format string, args ...any) {
	u.write(u.Out, "    "+name+": ", format, args...)
}

// Warn prints a warning to stderr.
func (u *UI) Warn(name, format string, args ...any) {
	prefix := "den: warning: "
	if name != "" {
		prefix = "==> " + name + ": warning: "
	}
	u.write(u.Err, prefix, format, args...)
}

func (u *UI) write(w io.Writer, prefix, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	pad := strings.Repeat(" ", len(prefix))
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString(prefix)
		} else {
			b.WriteString(pad)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	io.WriteString(w, b.String())
}

// Output returns a writer that prints each line written to it as
// "    name: line" on u.Out, or on u.Err when stderr is set, for streaming a
// machine's command output. A trailing "\r" is dropped from each line; a
// last line without a newline is printed by Close. Each line is written
// whole under u's lock, so writers of several machines never mix within a
// line; one writer is for one goroutine.
func (u *UI) Output(name string, stderr bool) io.WriteCloser {
	w := u.Out
	if stderr {
		w = u.Err
	}
	return &lineWriter{u: u, w: w, prefix: "    " + name + ": "}
}

type lineWriter struct {
	u      *UI
	w      io.Writer
	prefix string
	buf    []byte // the partial line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	i := bytes.LastIndexByte(l.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	var b bytes.Buffer
	for _, line := range bytes.Split(l.buf[:i], []byte("\n")) {
		l.line(&b, line)
	}
	l.buf = append(l.buf[:0], l.buf[i+1:]...)
	if err := l.flush(&b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close prints the partial last line, if any.
func (l *lineWriter) Close() error {
	if len(l.buf) == 0 {
		return nil
	}
	var b bytes.Buffer
	l.line(&b, l.buf)
	l.buf = l.buf[:0]
	return l.flush(&b)
}

func (l *lineWriter) line(b *bytes.Buffer, line []byte) {
	b.WriteString(l.prefix)
	b.Write(bytes.TrimSuffix(line, []byte("\r")))
	b.WriteByte('\n')
}

func (l *lineWriter) flush(b *bytes.Buffer) error {
	l.u.mu.Lock()
	defer l.u.mu.Unlock()
	_, err := l.w.Write(b.Bytes())
	return err
}

// Progress reports the advance of one long step. On a terminal it redraws
// one line every 100 ms; otherwise it prints a plain line every 5 seconds.
type Progress struct {
	u     *UI
	name  string
	what  string
	total int64
	last  time.Time
	start time.Time
	drew  bool
}

// Progress starts a progress report for name's step what; total is the
// expected amount (bytes), or 0 when unknown.
func (u *UI) Progress(name, what string, total int64) Bar {
	now := time.Now()
	// The first report comes after one interval: a step that ends sooner
	// prints no progress at all (its own lines say it began and ended).
	return &Progress{u: u, name: name, what: what, total: total, start: now, last: now}
}

// Update reports done units so far, or a line of text when line != "".
func (p *Progress) Update(done int64, line string) {
	now := time.Now()
	every := 5 * time.Second
	if p.u.IsTTY {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	text := p.what
	switch {
	case line != "":
		text += ": " + line
	case p.total > 0:
		pct := float64(done) * 100 / float64(p.total)
		text += fmt.Sprintf(": %s %5.1f%% (%s of %s)", bar(pct, 24), pct, Bytes(done), Bytes(p.total))
	case done > 0:
		text += ": " + Bytes(done)
	}
	p.u.mu.Lock()
	defer p.u.mu.Unlock()
	if p.u.IsTTY {
		w, _, err := term.GetSize(int(os.Stdout.Fd()))
		full := "==> " + p.name + ": " + text
		if err == nil && w > 4 && len(full) > w-1 {
			full = full[:w-1]
		}
		fmt.Fprintf(p.u.Out, "\r\033[K%s", full)
		p.drew = true
		return
	}
	fmt.Fprintf(p.u.Out, "    %s: %s\n", p.name, text)
}

// Done ends the progress line.
func (p *Progress) Done() {
	p.u.mu.Lock()
	defer p.u.mu.Unlock()
	if p.drew {
		fmt.Fprint(p.u.Out, "\r\033[K")
	}
}

func bar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = max(0, min(n, width))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// Bytes formats a byte count with a binary unit ("1.5 GiB").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package config

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/hashicorp/hcl/v2"
)

// DiagError is the error Load returns: the diagnostics and the parsed files
// their source lines come from. Print it with WriteDiagnostics.
type DiagError struct {
	Files map[string]*hcl.File
	Diags hcl.Diagnostics
}

// ErrorKind makes a den.hcl diagnostic an errdefs.Invalid failure.
func (e *DiagError) ErrorKind() errdefs.Kind { return errdefs.Invalid }

// Error returns the first error as "den.hcl:3:5: summary", counting the rest.
func (e *DiagError) Error() string {
	var first *hcl.Diagnostic
	n := 0
	for _, d := range e.Diags {
		if d.Severity == hcl.DiagError {
			if first == nil {
				first = d
			}
			n++
		}
	}
	if first == nil {
		return "no errors"
	}
	var s string
	if r := first.Subject; r != nil && r.Filename != "" {
		s = fmt.Sprintf("%s: %s", loc(*r), first.Summary)
	} else {
		s = first.Summary
		if first.Detail != "" {
			s += ": " + first.Detail
		}
	}
	switch {
	case n == 2:
		s += " (and 1 more error)"
	case n > 2:
		s += fmt.Sprintf(" (and %d more errors)", n-1)
	}
	return s
}

const (
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
	ansiGreen  = "\x1b[1;32m"
	ansiReset  = "\x1b[0m"
)

// Location formats the start of r as file:line:col.
func Location(r hcl.Range) string { return loc(r) }

// WriteDiagnostics writes diags to w, each as "file:line:col: error: summary",
// the source line from files, a caret under the subject, then the detail
// indented; diagnostics are separated by a blank line. With color set it
// adds ANSI colours.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	for i, d := range diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		sev, code := "error", ansiRed
		if d.Severity == hcl.DiagWarning {
			sev, code = "warning", ansiYellow
		}
		r := d.Subject
		if r == nil || r.Filename == "" {
			fmt.Fprintf(&b, "%s %s %s\n", paint(ansiBold, soleFile(files)+":"), paint(code, sev+":"), paint(ansiBold, d.Summary))
		} else {
			fmt.Fprintf(&b, "%s %s %s\n", paint(ansiBold, loc(*r)+":"), paint(code, sev+":"), paint(ansiBold, d.Summary))
			if f := files[r.Filename]; f != nil {
				line, pad, marks := snippet(f.Bytes, *r)
				num := strconv.Itoa(r.Start.Line)
				width := max(4, len(num))
				fmt.Fprintf(&b, "%*s | %s\n", width, num, line)
				fmt.Fprintf(&b, "%*s | %s%s\n", width, "", pad, paint(ansiGreen, "^"+strings.Repeat("~", marks-1)))
			}
		}
		for _, l := range strings.Split(d.Detail, "\n") {
			if l != "" {
				fmt.Fprintf(&b, "  %s\n", l)
			}
		}
	}
	io.WriteString(w, b.String())
}

// snippet returns the source line r starts on, the whitespace that puts a
// caret under r's first character (tabs kept as tabs, one space per other
// character), and how many characters of r lie on that line (at least 1).
// It works on byte offsets, so multi-byte characters cannot misplace it.
func snippet(src []byte, r hcl.Range) (line, pad string, marks int) {
	start := min(max(r.Start.Byte, 0), len(src))
	ls := bytes.LastIndexByte(src[:start], '\n') + 1
	le := bytes.IndexByte(src[start:], '\n')
	if le < 0 {
		le = len(src)
	} else {
		le += start
	}
	text := bytes.TrimSuffix(src[ls:le], []byte("\r"))
	le = ls + len(text)
	start = min(start, le)
	end := min(max(r.End.Byte, start), le)

	var p strings.Builder
	for _, c := range string(src[ls:start]) {
		if c == '\t' {
			p.WriteByte('\t')
		} else {
			p.WriteByte(' ')
		}
	}
	return string(text), p.String(), max(1, utf8.RuneCount(src[start:end]))
}

// soleFile names the file of a diagnostic without a subject.
func soleFile(files map[string]*hcl.File) string {
	if len(files) == 1 {
		for name := range files {
			return name
		}
	}
	return FileName
}

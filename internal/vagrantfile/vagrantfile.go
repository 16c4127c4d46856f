// Package vagrantfile writes a den.hcl from a Vagrantfile (den init --from).
//
// A Vagrantfile is a Ruby program. Convert runs it with the host's Ruby,
// as vagrant would, but against a stand-in of Vagrant's configuration API
// (standin.rb, embedded) that records every setting it is given and the
// line that gave it; Vagrant itself is never loaded. The record comes back
// as JSON and is turned into den.hcl text here. Every setting den cannot
// carry over is returned as a Note with its line.
package vagrantfile

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/den-dev/den/internal/errdefs"
)

//go:embed standin.rb
var standin []byte

// DefaultTimeout is how long Convert lets a Vagrantfile run.
const DefaultTimeout = time.Minute

// Options tune Convert.
type Options struct {
	// Ruby is the ruby program; "" finds ruby on PATH.
	Ruby string
	// Dir is the folder the den.hcl is meant for: relative paths of the
	// Vagrantfile (synced folders, scripts, files) are written relative to
	// it. "" is the Vagrantfile's folder.
	Dir string
	// Output receives what the Vagrantfile's code and the commands it runs
	// print; nil discards it.
	Output io.Writer
	// Timeout bounds the Vagrantfile's run (DefaultTimeout when 0); at the
	// end of it Ruby and every process it started are killed.
	Timeout time.Duration
}

// Result is a converted Vagrantfile.
type Result struct {
	HCL   []byte // the den.hcl text
	Notes []Note // what was not carried over as it was, in Vagrantfile order
}

// NoteKind says what happened to a Vagrantfile setting.
type NoteKind int

// The kinds of Note.
const (
	Dropped  NoteKind = iota // not carried over: den has no equivalent
	Changed                  // carried over in another form
	Pending                  // written commented out: den.hcl does not read it yet
	Computed                 // not a setting: what the Vagrantfile did while it ran
)

// Note is a setting of the Vagrantfile that den.hcl does not carry as it
// was, or something the Vagrantfile did while it was read.
type Note struct {
	Kind    NoteKind
	File    string // the Ruby file, relative to the den.hcl's folder ("Vagrantfile")
	Line    int
	Setting string // as Vagrant names it, e.g. `vm.box_check_update`
	Reason  string
}

// String is "Vagrantfile:12: vm.box_check_update: reason".
func (n Note) String() string {
	where := n.File
	if n.Line > 0 {
		where = fmt.Sprintf("%s:%d", n.File, n.Line)
	}
	if n.Setting == "" {
		return where + ": " + n.Reason
	}
	return where + ": " + n.Setting + ": " + n.Reason
}

// Convert runs the Vagrantfile at path and returns the den.hcl that
// describes the same machines. It fails with an errdefs.HostNotReady error
// when Ruby is missing and an errdefs.Invalid one when the Vagrantfile
// uses Vagrant 1 syntax, raises an error or exits.
func Convert(ctx context.Context, path string, opts Options) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, errdefs.With(errdefs.NotFound, fmt.Errorf("cannot read the Vagrantfile: %w", err))
	} else if fi.IsDir() {
		abs = filepath.Join(abs, "Vagrantfile")
	}
	vfDir := filepath.Dir(abs)
	outDir := vfDir
	if opts.Dir != "" {
		if outDir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, err
		}
	}
	out, err := runRuby(ctx, abs, opts)
	if err != nil {
		return nil, err
	}
	c := newConv(vfDir, outDir, rel(outDir, abs))
	if err := c.check(out); err != nil {
		return nil, err
	}
	c.convert(out)
	return &Result{HCL: c.render(), Notes: c.sortedNotes()}, nil
}

// runRuby runs the stand-in on the Vagrantfile and decodes its record.
func runRuby(ctx context.Context, vagrantfile string, opts Options) (*output, error) {
	bin, err := lookRuby(opts.Ruby)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, bin, "-", vagrantfile)
	cmd.Dir = filepath.Dir(vagrantfile)
	cmd.Stdin = bytes.NewReader(standin)
	printed := opts.Output
	if printed == nil {
		printed = io.Discard
	}
	cmd.Stdout, cmd.Stderr = printed, printed
	cmd.ExtraFiles = []*os.File{w} // fd 3: the record
	for _, kv := range os.Environ() {
		// Options for another Ruby program (bundler's -rbundler/setup) must not
		// change how the stand-in runs.
		if !strings.HasPrefix(kv, "RUBYOPT=") && !strings.HasPrefix(kv, "RUBYLIB=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Ruby and what the Vagrantfile starts form a process group that a
	// timeout or Ctrl-C ends as a whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	w.Close()
	var record []byte
	read := make(chan error, 1)
	go func() {
		var err error
		record, err = io.ReadAll(io.LimitReader(r, 64<<20))
		read <- err
	}()
	waitErr := cmd.Wait()
	r.SetReadDeadline(time.Now().Add(time.Second)) // a child that kept fd 3 must not hold us
	readErr := <-read
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errdefs.Newf(errdefs.Invalid, "the Vagrantfile did not finish within %s; den stopped it and every process it started", timeout)
		}
		return nil, errdefs.With(errdefs.Canceled, ctx.Err())
	}
	if len(record) == 0 {
		if readErr != nil {
			return nil, fmt.Errorf("reading what the Vagrantfile set: %w", readErr)
		}
		return nil, errdefs.Newf(errdefs.Invalid, "%s stopped before the Vagrantfile was read (%v); its output is above", filepath.Base(bin), waitErr)
	}
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.UseNumber()
	var out output
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("reading what the Vagrantfile set: %w", err)
	}
	return &out, nil
}

// lookRuby finds the ruby program ("" is ruby on PATH).
func lookRuby(ruby string) (string, error) {
	if ruby == "" {
		ruby = "ruby"
	}
	bin, err := exec.LookPath(ruby)
	if err != nil {
		return "", errdefs.Newf(errdefs.HostNotReady,
			"den init --from needs Ruby to read a Vagrantfile (a Vagrantfile is a Ruby program), and %q is not installed: install it (apt-get install ruby) and run it again", ruby)
	}
	return bin, nil
}

// check turns the stand-in's error, or a Vagrantfile without a version 2
// configuration, into den's.
func (c *conv) check(out *output) error {
	e := out.Error
	switch {
	case e != nil && e.Kind == "v1":
		return errdefs.Newf(errdefs.Invalid,
			"%s uses Vagrant 1 syntax (%s), which den does not read. Rewrite it for Vagrant 2 "+
				"(Vagrant.configure(\"2\") do |config| ... end; forward_port becomes vm.network \"forwarded_port\", share_folder becomes vm.synced_folder, customize moves into a vm.provider block), then run den init --from again",
			c.vfName, e.Message+" at "+c.where(at{e.File, e.Line}))
	case e != nil && e.Kind == "exit":
		return errdefs.Newf(errdefs.Invalid, "%s: %s while den read it, so there is nothing to convert",
			c.where(at{e.File, e.Line}), e.Message)
	case e != nil:
		where := c.vfName
		if e.File != "" {
			where = c.where(at{e.File, e.Line})
		}
		return errdefs.Newf(errdefs.Invalid, "%s: the Vagrantfile raised %s: %s (den ran it as vagrant would; vagrant would stop here too)",
			where, e.Class, e.Message)
	case out.Version == "":
		return errdefs.Newf(errdefs.Invalid, "%s has no Vagrant.configure(\"2\") block: there is nothing to convert", c.vfName)
	}
	return nil
}

// rel is p relative to dir when below it, else p.
func rel(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && filepath.IsLocal(r) {
		return r
	}
	return p
}

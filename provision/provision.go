// Package provision runs a machine's shell and file provisioners over a
// Communicator and records which ones succeeded.
package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
)

// Communicator runs commands in a machine and copies files into it.
type Communicator interface {
	// Run runs cmd with sh -c semantics and returns its exit status; the
	// error is only for transport failures and ctx's end, which stops the
	// command.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// Upload copies the host file or folder src (recursively, keeping
	// modes) to the absolute guest path dst, creating dst's parent.
	Upload(ctx context.Context, dst string, src string) error
}

// Options tell Run what to run and where its output goes.
type Options struct {
	Machine string   // for messages
	Only    []string // run just these provisioners (--provision-with); nil: all
	Force   bool     // run "once" provisioners again, even when recorded
	Record  string   // JSON record of what ran (.den/<machine>/provisioned.json); "" keeps none
	Out     io.Writer
	Err     io.Writer
	Say     func(format string, args ...any) // step lines: "Running provisioner: deps (shell)..."
}

// ProvisionError is the error of a provisioner whose command failed in the
// guest.
type ProvisionError struct {
	Name   string
	Type   string // config.ProvisionShell or config.ProvisionFile
	Status int    // the guest command's exit status
}

// ErrorKind makes a failed provisioner an errdefs.GuestFailed failure.
func (e *ProvisionError) ErrorKind() errdefs.Kind { return errdefs.GuestFailed }

// Error names the provisioner and its exit status.
func (e *ProvisionError) Error() string {
	return fmt.Sprintf("provisioner %q (%s) failed with exit status %d", e.Name, e.Type, e.Status)
}

// cleanupTimeout bounds the removal of the remote temporary files once ctx
// has ended.
const cleanupTimeout = 10 * time.Second

// Run runs provs in order. With Only, it runs just the provisioners Only
// names, and a name provs lacks is an error before anything runs. Without
// Only, it runs every provisioner except run "never" ones and, unless Force
// is set, run "once" ones that the record holds. After each success the record is
// rewritten with it. The first failure stops the run; its error names the
// provisioner, and is a *ProvisionError when the guest command failed. When
// ctx ends, the running command is stopped and Run returns ctx's error.
func Run(ctx context.Context, comm Communicator, provs []config.Provision, opts Options) error {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Err == nil {
		opts.Err = io.Discard
	}
	if opts.Say == nil {
		opts.Say = func(string, ...any) {}
	}
	if err := checkOnly(provs, opts); err != nil {
		return err
	}
	rec, err := readRecord(opts.Record)
	if err != nil {
		return err
	}
	var todo, skipped []config.Provision
	for _, p := range provs {
		_, done := rec.Provisioners[p.Name]
		switch {
		case len(opts.Only) > 0 && !slices.Contains(opts.Only, p.Name):
		case len(opts.Only) == 0 && p.Run == config.RunNever:
		case len(opts.Only) == 0 && p.Run == config.RunOnce && done && !opts.Force:
			skipped = append(skipped, p)
		default:
			todo = append(todo, p)
		}
	}
	if len(skipped) > 0 {
		var names []string
		for _, p := range skipped {
			names = append(names, p.Name)
		}
		opts.Say("Skipping provisioners that already ran: %s ('den provision' runs them again).", strings.Join(names, ", "))
	}
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		opts.Say("Running provisioner: %s (%s)...", p.Name, p.Type)
		if p.Type == config.ProvisionFile {
			err = runFile(ctx, comm, p, opts)
		} else {
			err = runShell(ctx, comm, p, opts)
		}
		if err != nil {
			return err
		}
		rec.Provisioners[p.Name] = entry{Type: p.Type, Time: time.Now().UTC().Truncate(time.Second)}
		if err := rec.write(opts.Record); err != nil {
			return err
		}
	}
	return nil
}

// checkOnly reports names in opts.Only that provs lacks.
func checkOnly(provs []config.Provision, opts Options) error {
	var names []string
	for _, p := range provs {
		names = append(names, p.Name)
	}
	for _, n := range opts.Only {
		if slices.Contains(names, n) {
			continue
		}
		if len(names) == 0 {
			return fmt.Errorf("machine %q has no provisioners, so none is called %q", opts.Machine, n)
		}
		return fmt.Errorf("machine %q has no provisioner called %q; its provisioners are: %s", opts.Machine, n, strings.Join(names, ", "))
	}
	return nil
}

// runShell runs a shell provisioner and turns its failure into an error.
func runShell(ctx context.Context, comm Communicator, p config.Provision, opts Options) error {
	status, err := Shell(ctx, comm, p, opts.Out, opts.Err)
	if err != nil {
		return fmt.Errorf("provisioner %q (shell): %w", p.Name, err)
	}
	if status != 0 {
		return &ProvisionError{Name: p.Name, Type: p.Type, Status: status}
	}
	return nil
}

// Shell runs the script of the shell provisioner p in the guest: uploaded
// to a temporary file (its name from p.Name), run as p says (sudo when
// privileged, p.Env, p.Args) and removed again. It returns the script's
// exit status; the error is for everything else (the script's file, the
// upload, the connection, ctx's end). Triggers' run_remote runs this way.
func Shell(ctx context.Context, comm Communicator, p config.Provision, stdout, stderr io.Writer) (status int, err error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	body, err := script(p)
	if err != nil {
		return -1, fmt.Errorf("reading the script: %w", err)
	}
	remote := fmt.Sprintf("/tmp/den-provision-%s-%s.sh", p.Name, randomSuffix())
	err = withTempFile(body, func(local string) error {
		return comm.Upload(ctx, remote, local)
	})
	if err != nil {
		return -1, fmt.Errorf("uploading the script: %w", err)
	}
	defer func() {
		if cerr := cleanup(ctx, comm, "rm -f "+quote(remote), stderr); cerr != nil && err == nil && status == 0 {
			err = fmt.Errorf("removing %s: %w", remote, cerr)
		}
	}()
	return comm.Run(ctx, shellCommand(p, Interpreter(body), remote), nil, stdout, stderr)
}

// script returns the script a shell provisioner runs: the file at p.Path,
// or #!/bin/sh, set -e and p.Inline's commands, one per line.
func script(p config.Provision) ([]byte, error) {
	if p.Path != "" {
		return os.ReadFile(p.Path)
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\n")
	for _, line := range p.Inline {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

// Interpreter returns the command of the script's #! line, split as Linux
// does (the path, then the rest as one argument), or /bin/sh without one.
// Running the interpreter, rather than the script, works on a noexec /tmp.
func Interpreter(script []byte) []string {
	line, _, _ := strings.Cut(string(script), "\n")
	line, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "#!")
	fields := strings.Fields(line)
	if !ok || len(fields) == 0 {
		return []string{"/bin/sh"}
	}
	words := []string{fields[0]}
	if rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), fields[0])); rest != "" {
		words = append(words, rest)
	}
	return words
}

// shellCommand returns the command that runs the uploaded script at remote:
// [sudo -n -E] [env K='v' ...] 'interp' 'remote' 'arg' ..., every value
// single-quoted.
func shellCommand(p config.Provision, interp []string, remote string) string {
	var words []string
	if p.Privileged {
		words = append(words, "sudo", "-n", "-E")
	}
	if len(p.Env) > 0 {
		words = append(words, "env")
		for _, kv := range p.Env {
			words = append(words, kv.Key+"="+quote(kv.Value))
		}
	}
	for _, w := range interp {
		words = append(words, quote(w))
	}
	words = append(words, quote(remote))
	for _, a := range p.Args {
		words = append(words, quote(a))
	}
	return strings.Join(words, " ")
}

// runFile uploads the source to a temporary folder as the login user, then
// copies it into place: as the login user when it may write there, else
// with sudo. The copy keeps modes and belongs to the login user, as with
// Vagrant; folders den has to create with sudo belong to root.
func runFile(ctx context.Context, comm Communicator, p config.Provision, opts Options) (err error) {
	tmp := fmt.Sprintf("/tmp/den-provision-%s-%s", p.Name, randomSuffix())
	staged := path.Join(tmp, path.Base(p.Destination))
	defer func() {
		if cerr := cleanup(ctx, comm, fmt.Sprintf("chmod -R u+w %[1]s 2>/dev/null; rm -rf %[1]s", quote(tmp)), opts.Err); cerr != nil && err == nil {
			err = fmt.Errorf("provisioner %q (file): removing %s: %w", p.Name, tmp, cerr)
		}
	}()
	if err := comm.Upload(ctx, staged, p.Source); err != nil {
		return fmt.Errorf("provisioner %q (file): uploading %s: %w", p.Name, p.Source, err)
	}
	return run(ctx, comm, p, fileCommand(staged, p.Destination), opts)
}

// fileCommand returns the command that copies the staged upload to dst,
// trying as the login user first and with sudo after.
func fileCommand(staged, dst string) string {
	copy := fmt.Sprintf("mkdir -p %s && cp -a -T %s %s", quote(path.Dir(dst)), quote(staged), quote(dst))
	sudo := fmt.Sprintf("sudo -n mkdir -p %s && sudo -n cp -a -T %s %s", quote(path.Dir(dst)), quote(staged), quote(dst))
	return fmt.Sprintf("{ %s; } 2>/dev/null || { %s; }", copy, sudo)
}

// run runs cmd for provisioner p and turns a failure into an error.
func run(ctx context.Context, comm Communicator, p config.Provision, cmd string, opts Options) error {
	status, err := comm.Run(ctx, cmd, nil, opts.Out, opts.Err)
	if err != nil {
		return fmt.Errorf("provisioner %q (%s): %w", p.Name, p.Type, err)
	}
	if status != 0 {
		return &ProvisionError{Name: p.Name, Type: p.Type, Status: status}
	}
	return nil
}

// cleanup runs cmd even when ctx has ended, for at most cleanupTimeout then.
func cleanup(ctx context.Context, comm Communicator, cmd string, stderr io.Writer) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
	}
	status, err := comm.Run(ctx, cmd, nil, io.Discard, stderr)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return err
}

// withTempFile writes data to a host temporary file and calls f with its path.
func withTempFile(data []byte, f func(path string) error) error {
	tmp, err := os.CreateTemp("", "den-provision-*.sh")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return f(tmp.Name())
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// quote single-quotes s for a POSIX shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// record is the JSON file of the provisioners that succeeded, by name.
type record struct {
	Provisioners map[string]entry `json:"provisioners"`
}

type entry struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"` // when it last succeeded
}

// readRecord reads the record at file; a missing file (or "") is empty.
func readRecord(file string) (*record, error) {
	rec := &record{Provisioners: map[string]entry{}}
	if file == "" {
		return rec, nil
	}
	data, err := fsutil.ReadRegular(file, 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err == nil {
		err = json.Unmarshal(data, rec)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the provisioning record: %w; delete %q to run every provisioner again", err, file)
	}
	if rec.Provisioners == nil {
		rec.Provisioners = map[string]entry{}
	}
	return rec, nil
}

// write replaces the record at file (if any) through a temporary file.
func (r *record) write(file string) error {
	if file == "" {
		return nil
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("writing the provisioning record: %w", err)
	}
	if err := fsutil.WriteFileAtomic(file, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the provisioning record: %w", err)
	}
	return nil
}

package vagrantfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
)

// Init is den init --from: it converts the Vagrantfile at from (a file, or
// a folder holding one) into dir/den.hcl, which must not exist yet. It says
// on stderr that the Vagrantfile's code runs and lists what was not carried
// over; the Vagrantfile's own output goes to stderr too. The den.hcl is then
// loaded as den validate would: an error names its lines.
func Init(ctx context.Context, from, dir string, stdout, stderr io.Writer) error {
	if fi, err := os.Stat(from); err == nil && fi.IsDir() {
		from = filepath.Join(from, "Vagrantfile")
	}
	dst := filepath.Join(dir, config.FileName)
	if _, err := os.Lstat(dst); err == nil {
		return errdefs.Newf(errdefs.Exists, "%s already exists in this folder; den init never overwrites it (edit it, or remove it first)", config.FileName)
	}
	if _, err := lookRuby(""); err != nil {
		return err
	}
	who := "your user"
	if u, err := user.Current(); err == nil {
		who = "user " + u.Username
	}
	fmt.Fprintf(stderr, "den: reading %s runs its Ruby code on this host as %s, as 'vagrant' would (den never loads Vagrant itself).\n", from, who)
	res, err := Convert(ctx, from, Options{Dir: dir, Output: stderr})
	if err != nil {
		return err
	}
	counts := map[NoteKind]int{}
	kind := NoteKind(-1)
	for _, n := range res.Notes {
		counts[n.Kind]++
		if n.Kind != kind {
			kind = n.Kind
			fmt.Fprintf(stderr, "den: %s\n", noteHeadings[kind])
		}
		fmt.Fprintf(stderr, "  %s\n", n)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return errdefs.Newf(errdefs.Exists, "%s already exists in this folder; den init never overwrites it (edit it, or remove it first)", config.FileName)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(res.HCL); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := config.Load(dst); err != nil {
		fmt.Fprintf(stderr, "den: %s was written from %s, but den cannot use it as it is:\n", dst, from)
		return err
	}
	fmt.Fprintf(stdout, "A den.hcl has been written from %s: %d setting(s) not carried over, %d carried over in another form, %d written commented out (listed above and at its top). Read it, then run 'den up'.\n",
		from, counts[Dropped], counts[Changed], counts[Pending])
	return nil
}

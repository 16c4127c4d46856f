package box

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/internal/version"
)

// Want is the box a machine asks for: den.hcl's box, box_version and
// box_url, with where the box is named for messages.
type Want struct {
	Label      string // who wants it, for messages: the machine's name
	Name       string // box
	Constraint string // box_version as written ("" allows any)
	URL        string // box_url ("" unset)
	Where      string // "den.hcl:3:7": the box line, prefixed to errors; "" none
	Using      string // the version the machine was made from; "" when not made
}

func (w Want) missing(err error) error {
	if w.Where != "" {
		err = fmt.Errorf("%s: %w", w.Where, err)
	}
	return errdefs.With(errdefs.BoxMissing, err)
}

// Ensure returns the installed box w names: the newest installed version
// that box_version allows; else one added from box_url; else, for a box
// den knows how to build (and box_version allows a fresh build), a new
// build. The caller serialises Ensure for one box name.
func (s *Store) Ensure(ctx context.Context, u ui.Reporter, w Want) (*Box, error) {
	cs, err := version.ParseConstraints(w.Constraint)
	if err != nil {
		return nil, w.missing(err)
	}
	b, err := s.Newest(w.Name, cs)
	if err != nil || b != nil {
		return b, err
	}
	if w.URL != "" {
		u.Say(w.Label, "Box %s%s is not installed; adding it from box_url...", w.Name, MatchingNote(cs))
		b, err := s.Acquire(ctx, u, Request{Name: w.Name, Source: w.URL, Constraints: cs, Reuse: true})
		if err != nil {
			return nil, w.missing(fmt.Errorf("box_url %s: %w", w.URL, err))
		}
		return b, nil
	}
	opts, known := KnownBuild(w.Name)
	fresh := BuildVersion(time.Now())
	if known && version.Satisfies(fresh, cs) {
		u.Say(w.Label, "Box %s is not installed; building it (about a minute)...", w.Name)
		return s.Build(ctx, u, w.Name, opts, "", "")
	}
	if len(cs) == 0 {
		_, err := s.Get(w.Name, "")
		return nil, w.missing(err)
	}
	err = fmt.Errorf("box %q has no installed version matching box_version %q (installed: %s); add one with 'den box add URL --box-version %q', or set box_url in den.hcl", w.Name, cs.String(), s.VersionList(w.Name), cs.String())
	if known {
		err = fmt.Errorf("%w ('den box build %s' would make version %s, which does not match)", err, w.Name, fresh)
	}
	return nil, w.missing(err)
}

// BuildVersion is the version 'den box build' gives a box built at t.
func BuildVersion(t time.Time) string { return t.UTC().Format("2006.01.02.150405") }

// MatchingNote is ` matching "CONSTRAINTS"`, or "" for none.
func MatchingNote(cs version.Constraints) string {
	if len(cs) == 0 {
		return ""
	}
	return fmt.Sprintf(" matching %q", cs.String())
}

// Build runs debootstrap into the store's temp area, then either moves
// the rootfs into the store (output "") or packs it into a box file at
// output with compression.
func (s *Store) Build(ctx context.Context, u ui.Reporter, name string, opts BuildOptions, output, compression string) (*Box, error) {
	if os.Geteuid() != 0 {
		return nil, &host.Error{Problems: []string{"building a box needs root (debootstrap): run it with sudo"}}
	}
	if err := host.Require("debootstrap"); err != nil {
		return nil, err
	}
	lk, err := s.Lock(ctx, false, "den box build")
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	var comp Compression
	if output != "" {
		var err error
		if comp, err = ParseCompression(compression); err != nil {
			return nil, errdefs.With(errdefs.Invalid, err)
		}
	}
	tmp, err := s.TempDir()
	if err != nil {
		return nil, err
	}
	defer fsutil.RemoveTree(tmp) // den's own temp folder under the store; never crosses a mount
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	u.Say(name, "Building box with debootstrap (%s from %s)...", opts.Suite, opts.Mirror)
	prog := u.Progress(name, "debootstrap", 0)
	opts.Log = func(line string) { prog.Update(0, line) }
	start := time.Now()
	err = BuildRootfs(ctx, rootfs, opts)
	prog.Done()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	meta := Metadata{
		Provider: FormatProvider,
		Version:  FormatVersion,
		BuiltOn:  now.Format(time.RFC3339),
		Den:      &DenMetadata{Version: BuildVersion(now), User: opts.User, Suite: opts.Suite, Created: now},
	}
	if meta.Den.User == "" {
		meta.Den.User = "den"
	}
	u.Say(name, "Rootfs built in %s.", time.Since(start).Round(time.Second))
	if output == "" {
		b, err := s.Import(name, meta.Den.Version, meta, rootfs)
		if err != nil {
			return nil, err
		}
		u.Say(name, "Box %s version %s is in the store.", b.Name, b.Version)
		return b, nil
	}
	u.Say(name, "Packing box file %s (%s)...", output, comp)
	pack := u.Progress(name, "Packing", 0)
	err = WriteBoxFile(ctx, output, rootfs, meta, PackOptions{Compression: comp, Progress: func(n int64) { pack.Update(n, "") }})
	pack.Done()
	if err != nil {
		return nil, fmt.Errorf("write box file %s: %w", output, err)
	}
	u.Say(name, "Box file written: %s. Add it with 'den box add %s %s'.", output, name, output)
	return nil, nil
}

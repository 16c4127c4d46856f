package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// mergeFolders lists a machine's synced folders: the project folder at
// DefaultGuest, then the top level's folders, then the machine's own. A
// folder for the project folder itself replaces the default one; a folder
// replaces an outer one with the same guest path; a disabled folder removes
// the outer ones with its guest path (or, without guest, its host path).
func mergeFolders(dir string, levels ...[]folder) []SyncedFolder {
	type entry struct {
		SyncedFolder
		level int
	}
	list := []entry{{SyncedFolder{Host: dir, Guest: DefaultGuest}, -1}}
	for lv, folders := range levels {
		for _, f := range folders {
			if !f.disabled {
				continue
			}
			list = slices.DeleteFunc(list, func(e entry) bool {
				if f.hasGuest {
					return e.Guest == f.Guest
				}
				return e.Host == f.Host
			})
		}
		for _, f := range folders {
			if f.disabled {
				continue
			}
			if f.Host == dir {
				list = slices.DeleteFunc(list, func(e entry) bool { return e.level < 0 })
			}
			if i := slices.IndexFunc(list, func(e entry) bool { return e.Guest == f.Guest && e.level < lv }); i >= 0 {
				list[i] = entry{f.SyncedFolder, lv}
			} else {
				list = append(list, entry{f.SyncedFolder, lv})
			}
		}
	}
	out := make([]SyncedFolder, len(list))
	for i, e := range list {
		out[i] = e.SyncedFolder
	}
	return out
}

// folders validates the synced_folder blocks of one level.
func (l *loader) folders(blocks hcl.Blocks) []folder {
	var out []folder
	guests := map[string]hcl.Range{}
	for _, b := range blocks {
		c, diags := b.Body.Content(folderSchema)
		l.diags = append(l.diags, diags...)
		var f folder
		for name, dst := range map[string]*bool{"read_only": &f.ReadOnly, "disabled": &f.disabled} {
			if a := c.Attributes[name]; a != nil {
				if v, ok := l.value(a, cty.Bool); ok {
					*dst = v.True()
				}
			}
		}
		if a := c.Attributes["type"]; a != nil {
			if v, ok := l.value(a, cty.String); ok {
				switch t := v.AsString(); t {
				case FolderBind, FolderRsync:
					f.Type = t
				default:
					l.errorf(a.Expr.Range(), "Unknown synced folder type", `%q is not a synced folder type: use "bind" (the folder itself, mounted; a server on this host) or "rsync" (a copy, made at up and reload and by 'den rsync').`, t)
				}
			}
		}
		if a := c.Attributes["exclude"]; a != nil {
			if v, ok := l.value(a, cty.List(cty.String)); ok {
				for _, e := range v.AsValueSlice() {
					if e.IsNull() || e.AsString() == "" || strings.ContainsAny(e.AsString(), "\r\n\x00") {
						l.errorf(a.Expr.Range(), "Invalid exclude", `exclude is a list of rsync patterns, e.g. ["node_modules/", "*.log"].`)
						break
					}
					f.Exclude = append(f.Exclude, e.AsString())
				}
			}
			if f.Type == FolderBind {
				l.errorf(a.Expr.Range(), "exclude without rsync", `exclude applies to type = "rsync" folders: a mounted folder shows everything.`)
			}
		}
		if f.ReadOnly && f.Type == FolderRsync {
			l.errorf(c.Attributes["read_only"].Expr.Range(), "read_only with rsync", "An rsync folder is a copy in the guest: read_only has no meaning there. Leave it out.")
		}
		f.DefRange = b.DefRange
		label, labelRange := b.Labels[0], b.LabelRanges[0]
		host, ok := l.hostPath(label, labelRange, f.disabled)
		if !ok {
			continue
		}
		f.Host, f.Range = host, labelRange
		a := c.Attributes["guest"]
		if a == nil {
			if !f.disabled {
				l.errorf(b.DefRange, "Missing guest path",
					`synced_folder %q needs guest = "/path", the absolute folder in the guest to mount it at.`, label)
				continue
			}
			out = append(out, f)
			continue
		}
		v, ok := l.value(a, cty.String)
		if !ok {
			continue
		}
		f.Guest, f.hasGuest = v.AsString(), true
		if summary, detail := checkGuest(f.Guest, f.disabled); summary != "" {
			l.errorf(a.Expr.Range(), summary, "%s", detail)
			continue
		}
		if !f.disabled {
			if first, dup := guests[f.Guest]; dup {
				l.errorf(a.Expr.Range(), "Duplicate guest path",
					"%q is already the guest path of the synced_folder at %s; one guest path holds one folder.", f.Guest, loc(first))
				continue
			}
			guests[f.Guest] = b.DefRange
		}
		out = append(out, f)
	}
	return out
}

// hostPath resolves and checks a synced_folder's host label: relative paths
// must stay in the project, and the folder must exist unless disabled.
func (l *loader) hostPath(label string, r hcl.Range, disabled bool) (string, bool) {
	if label == "" {
		l.errorf(r, "Empty host path", `Name the host folder to share: "." is the project folder.`)
		return "", false
	}
	host := filepath.Clean(label)
	if !filepath.IsAbs(host) {
		if !within(".", host) {
			l.errorf(r, "Synced folder outside the project",
				"%q leaves the project folder: a relative host path must stay inside it. Use an absolute path for a folder elsewhere.", label)
			return "", false
		}
		host = filepath.Join(l.dir, host)
	}
	if disabled {
		return host, true
	}
	fi, err := os.Stat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.errorf(r, "Synced folder not found", "The host folder %q does not exist: create it or fix the path.", label)
		return "", false
	case err != nil:
		l.errorf(r, "Synced folder not readable", "%s.", err)
		return "", false
	case !fi.IsDir():
		l.errorf(r, "Synced folder is not a folder", "%q is not a folder: a synced_folder shares a whole folder.", label)
		return "", false
	}
	if !filepath.IsAbs(label) {
		// A relative path must not leave the project through a symlink either.
		real, err1 := filepath.EvalSymlinks(host)
		realDir, err2 := filepath.EvalSymlinks(l.dir)
		if err1 == nil && err2 == nil && !within(realDir, real) {
			l.errorf(r, "Synced folder outside the project",
				"%q leads through a symlink to %q, outside the project folder; write the absolute path if you mean to share it.", label, real)
			return "", false
		}
	}
	return host, true
}

// checkFolderTypes gives each of m's synced folders its type: as den.hcl
// says, else bind, except on a remote LXD server, which cannot mount a
// folder of this host: there it is rsync. A bind folder on a remote is an
// error at its block.
func (l *loader) checkFolderTypes(m *Machine, folders []SyncedFolder) []SyncedFolder {
	remote := m.Provider == ProviderLXD && !m.LXD.IsLocal()
	for i := range folders {
		f := &folders[i]
		switch {
		case f.Type == "" && remote:
			f.Type = FolderRsync
			if f.ReadOnly {
				l.errorf(f.DefRange, "read_only with rsync", `Machine %q runs on LXD remote %q, where synced folders are rsync copies: read_only has no meaning there. Leave it out.`, m.Name, m.LXD.Remote)
			}
		case f.Type == "":
			f.Type = FolderBind
			if len(f.Exclude) > 0 {
				l.errorf(f.DefRange, "exclude without rsync", `exclude applies to type = "rsync" folders, and this one is mounted for machine %q: set type = "rsync", or leave exclude out.`, m.Name)
			}
		case f.Type == FolderBind && remote:
			l.errorf(f.DefRange, "Bind folder on a remote server",
				`Machine %q runs on LXD remote %q, which cannot mount a folder of this host: set type = "rsync" (a copy, made at up and reload and by 'den rsync').`, m.Name, m.LXD.Remote)
		}
	}
	return folders
}

// within reports whether path p is dir or below it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// checkGuest returns a diagnostic summary and detail when guest is not
// a folder a synced folder may be mounted at.
func checkGuest(guest string, disabled bool) (string, string) {
	switch {
	case !strings.HasPrefix(guest, "/"):
		return "Relative guest path", fmt.Sprintf(`The guest path %q must be absolute, e.g. "/den".`, guest)
	case slices.Contains(strings.Split(guest, "/"), ".."):
		return "Invalid guest path", fmt.Sprintf(`The guest path %q must not contain "..".`, guest)
	case filepath.Clean(guest) != guest:
		return "Invalid guest path", fmt.Sprintf("The guest path %q is not clean: write %q.", guest, filepath.Clean(guest))
	case disabled:
		return "", ""
	case guest == "/":
		return "Forbidden guest path", `Mounting over "/" would hide the guest's whole filesystem: choose a folder such as "/den".`
	}
	for _, p := range []string{"/tmp", "/var/tmp", "/run", "/var/run"} {
		if guest == p || strings.HasPrefix(guest, p+"/") {
			return "Forbidden guest path", fmt.Sprintf(
				`%q is under %s, which the guest's boot scripts clean: they would delete the host folder's files. Choose another guest path, e.g. "/den".`, guest, p)
		}
	}
	for _, p := range []string{"/proc", "/sys", "/dev"} {
		if guest == p || strings.HasPrefix(guest, p+"/") {
			return "Forbidden guest path", fmt.Sprintf(
				`%q is under %s, a kernel filesystem in the guest. Choose another guest path, e.g. "/den".`, guest, p)
		}
	}
	return "", ""
}

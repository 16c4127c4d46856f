package lxd

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/provider"
)

// imageFormat names the way den turns a box into an LXD image; change it
// when the conversion changes, so images made the old way are not reused.
const imageFormat = "den-lxd-image-2"

// The record of the image den made of a box (its fingerprint), kept beside
// the box's rootfs (in .../NAME/VERSION/lxc) so that it goes with the box,
// and the lock of that conversion.
const (
	imageInfo = "lxd-image.json"
	imageLock = "lxd-image.lock"
)

// The image property that says which box (and conversion) an image holds.
const boxProperty = "den.box"

// hostnameTemplate is the image's /etc/hostname template: the hostname den
// gave the machine (user.den.hostname), which LXD writes when it makes
// the machine (its first start), as LXD's own images do with the
// instance's name.
const hostnameTemplate = `{{ config_get("user.den.hostname", container.name) }}
`

// imageAlias is the alias den gives a box's image on a server.
func imageAlias(spec *provider.Spec, id string) string {
	if spec.Box == "" || spec.BoxVersion == "" {
		return "den/rootfs/" + id[:16]
	}
	return "den/" + spec.Box + "/" + spec.BoxVersion
}

// boxID identifies what an image made from spec's box holds: the box's
// name, version, metadata and lxc-config, and den's conversion. Two dens
// that add the same box file get the same id (and the same image).
func boxID(spec *provider.Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", imageFormat, spec.Box, spec.BoxVersion)
	dir := filepath.Dir(spec.Rootfs)
	for _, f := range []string{"metadata.json", "lxc-config"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ensureImage returns the fingerprint of spec's box as an image on m's
// server, importing it when the server does not have it: found by its
// alias den/BOX/VERSION (when the image holds this very box), or by the
// fingerprint den recorded when it first made the image (another server,
// or an alias someone removed), and uploaded only when neither finds it.
// The image is an uncompressed tarball, written as it is uploaded (never
// kept on this host): LXD unpacks an uncompressed image into a new
// machine in a fraction of a second, a gzip'd one in ten on this kind of
// host, and den makes the same bytes from the same box every time.
// One import per box and server at a time.
func (p *Provider) ensureImage(ctx context.Context, m *machine, spec *provider.Spec, warn func(string, ...any)) (string, error) {
	id, err := boxID(spec)
	if err != nil {
		return "", err
	}
	alias := imageAlias(spec, id)
	mu := p.lock("image " + m.pl.Remote + "/" + m.pl.Project + " " + alias)
	mu.Lock()
	defer mu.Unlock()
	if a, _, err := m.is.GetImageAlias(alias); err == nil {
		if img, _, err := m.is.GetImage(a.Target); err == nil && img.Properties[boxProperty] == id {
			return a.Target, nil
		}
	}
	dir := filepath.Dir(spec.Rootfs)
	lk, err := lock.Acquire(ctx, filepath.Join(dir, imageLock), "den up (importing a box into LXD)", 10*time.Minute)
	if err != nil {
		return "", err
	}
	defer lk.Unlock()
	fp := recordedImage(dir, id)
	if fp != "" {
		if _, _, err := m.is.GetImage(fp); err != nil && !notFound(err) {
			return "", err
		} else if err != nil {
			fp = ""
		}
	}
	if fp == "" {
		fixes, err := checkBox(spec.Rootfs)
		if err != nil {
			return "", fmt.Errorf("box %s %s cannot run under LXD: %w", spec.Box, spec.BoxVersion, err)
		}
		for _, f := range fixes {
			if warn != nil {
				warn("box %s under LXD: %s", spec.Box, f.why)
			}
		}
		if fp, err = upload(ctx, m.is, spec, id, fixes); err != nil {
			return "", fmt.Errorf("import box %s %s into remote %q as an image: %w", spec.Box, spec.BoxVersion, m.pl.Remote, err)
		}
		b, _ := json.Marshal(imageRecord{ID: id, Fingerprint: fp})
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, imageInfo), append(b, '\n'), 0o644); err != nil {
			return "", err
		}
	}
	desc := "den box " + spec.Box + " " + spec.BoxVersion
	if _, _, err := m.is.GetImageAlias(alias); err == nil {
		if err := m.is.UpdateImageAlias(alias, api.ImageAliasesEntryPut{Description: desc, Target: fp}, ""); err != nil {
			return "", fmt.Errorf("point image alias %s at %s: %w", alias, fp, err)
		}
	} else if err := m.is.CreateImageAlias(api.ImageAliasesPost{ImageAliasesEntry: api.ImageAliasesEntry{Name: alias, Description: desc, Target: fp}}); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", fmt.Errorf("make image alias %s: %w", alias, err)
	}
	return fp, nil
}

type imageRecord struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// recordedImage is the fingerprint of the image den made of the box in
// dir, when it made one of this very box (id).
func recordedImage(dir, id string) string {
	var r imageRecord
	b, err := os.ReadFile(filepath.Join(dir, imageInfo))
	if err != nil || json.Unmarshal(b, &r) != nil || r.ID != id {
		return ""
	}
	return r.Fingerprint
}

// upload writes spec's box as an image into CreateImage as it makes it,
// and returns its fingerprint (the sha256 of the bytes, as LXD computes
// it).
func upload(ctx context.Context, is lxdclient.InstanceServer, spec *provider.Spec, id string, fixes []fix) (string, error) {
	pr, pw := io.Pipe()
	sum := sha256.New()
	go func() {
		pw.CloseWithError(writeImage(ctx, io.MultiWriter(pw, sum), spec, id, fixes))
	}()
	op, err := is.CreateImage(api.ImagesPost{Filename: "den-image.tar"}, &lxdclient.ImageCreateArgs{MetaFile: pr, MetaName: "den-image.tar"})
	pr.CloseWithError(errors.New("upload ended"))
	err = wait(ctx, op, err, "upload image")
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	fp := hex.EncodeToString(sum.Sum(nil))
	if got, _ := op.Get().Metadata["fingerprint"].(string); err == nil && got != "" && got != fp {
		return "", fmt.Errorf("LXD computed fingerprint %s, den %s", got, fp)
	}
	return fp, nil
}

// writeImage writes spec's box as an LXD unified image (a tar of
// metadata.yaml, templates/, the fixes, rootfs/) to w.
func writeImage(ctx context.Context, w io.Writer, spec *provider.Spec, id string, fixes []fix) error {
	cw := &ctxWriter{ctx: ctx, w: w}
	tw := tar.NewWriter(cw)
	created := time.Unix(0, 0)
	if fi, err := os.Stat(filepath.Join(filepath.Dir(spec.Rootfs), "metadata.json")); err == nil {
		created = fi.ModTime().Truncate(time.Second)
	}
	meta := metadataYAML(spec, id, created)
	add := func(name string, data []byte, mode int64) error {
		hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("metadata.yaml", meta, 0o644); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "templates/", Mode: 0o755, ModTime: created, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if err := add("templates/hostname.tpl", []byte(hostnameTemplate), 0o644); err != nil {
		return err
	}
	for _, f := range fixes {
		hdr := &tar.Header{Name: "rootfs/" + f.name, Mode: 0o777, ModTime: created, Typeflag: tar.TypeSymlink, Linkname: f.link, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return box.WriteRootfsTar(cw, spec.Rootfs, "rootfs/")
}

// metadataYAML is the image's metadata.yaml.
func metadataYAML(spec *provider.Spec, id string, created time.Time) []byte {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "architecture: %s\n", q(lxdArch()))
	fmt.Fprintf(&b, "creation_date: %d\n", created.Unix())
	b.WriteString("properties:\n")
	fmt.Fprintf(&b, "  description: %s\n", q("den box "+spec.Box+" "+spec.BoxVersion))
	fmt.Fprintf(&b, "  %s: %s\n", boxProperty, q(id))
	fmt.Fprintf(&b, "  den.box.name: %s\n", q(spec.Box))
	fmt.Fprintf(&b, "  den.box.version: %s\n", q(spec.BoxVersion))
	b.WriteString("templates:\n  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n")
	return []byte(b.String())
}

// lxdArch is the host's architecture as LXD names it (boxes are built
// for the host).
func lxdArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "arm":
		return "armv7l"
	}
	return runtime.GOARCH
}

// fix is a symlink den adds to a box's image so that it works under LXD.
type fix struct {
	name, link, why string
}

// checkBox refuses a box that cannot boot under LXD, and lists what the
// image must change for it to work there. LXD mounts /sys read-write, so
// systemd-networkd waits for udev before it touches a link; den sets
// eth0's address itself before init runs, so no box needs networkd or
// DHCP under LXD, but a box that waits for networkd to say the network is
// online would wait two minutes at each boot without udev.
func checkBox(rootfs string) ([]fix, error) {
	if _, err := os.Lstat(filepath.Join(rootfs, "sbin/init")); err != nil {
		if _, err2 := os.Lstat(filepath.Join(rootfs, "usr/sbin/init")); err2 != nil {
			return nil, fmt.Errorf("the box has no /sbin/init: LXD boots system containers with an init, and this box has none")
		}
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(rootfs, p)); return err == nil }
	udev := exists("lib/systemd/systemd-udevd") || exists("usr/lib/systemd/systemd-udevd")
	const waitOnline = "etc/systemd/system/systemd-networkd-wait-online.service"
	wants := exists("etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service")
	if !udev && wants && !exists(waitOnline) {
		return []fix{{name: waitOnline, link: "/dev/null",
			why: "it waits for systemd-networkd to bring the network online, which never happens without udev (LXD mounts /sys read-write); den sets eth0's address itself, so the image masks systemd-networkd-wait-online.service"}}, nil
	}
	return nil, nil
}

// ctxWriter stops writing when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

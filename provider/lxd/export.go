package lxd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// exportProperty marks the images ExportRootfs publishes, so that one an
// interrupted den left is deleted by the next export.
const exportProperty = "den.export"

// ExportRootfs publishes the stopped instance as an image (LXD shifts the
// owners back to the guest's own), downloads it, unpacks its rootfs with
// box's strict extractor into DEN_HOME/lxd/export/NAME and calls fn
// there; fn's changes touch nothing but that copy. The folder and the
// image are deleted before ExportRootfs returns, and what an interrupted
// export left is deleted by the next one.
func (p *Provider) ExportRootfs(ctx context.Context, name string, fn func(rootfs string) error) (err error) {
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", name)
	}
	st, _, err := m.is.GetInstanceState(name)
	if err != nil {
		return err
	}
	if s := mapState(st.StatusCode); s != provider.Stopped {
		return fmt.Errorf("machine %q is %s: stop it before exporting it", name, s)
	}
	dir := filepath.Join(p.dir, "export", name)
	p.sweepExport(ctx, m, name, dir)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if serr := p.sweepExport(cctx, m, name, dir); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o700); err != nil {
		return err
	}
	op, err := m.is.CreateImage(api.ImagesPost{
		Source:               &api.ImagesPostSource{Type: "instance", Name: name},
		ImagePut:             api.ImagePut{Properties: map[string]string{exportProperty: name}},
		CompressionAlgorithm: "none",
	}, nil)
	if err := wait(ctx, op, err, fmt.Sprintf("publish machine %s as an image", name)); err != nil {
		return err
	}
	fp, _ := op.Get().Metadata["fingerprint"].(string)
	if fp == "" {
		return fmt.Errorf("publish machine %s: LXD named no image", name)
	}
	tarball := filepath.Join(dir, "image.tar")
	f, err := os.Create(tarball)
	if err != nil {
		return err
	}
	_, err = m.is.GetImageFile(fp, lxdclient.ImageFileRequest{MetaFile: f})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download the image of machine %s: %w", name, err)
	}
	f, err = os.Open(tarball)
	if err != nil {
		return err
	}
	rc, _, err := box.Decompress(f)
	if err != nil {
		f.Close()
		return err
	}
	err = box.ExtractRootfs(rc, "the image of "+name, filepath.Join(dir, "rootfs"), nil)
	rc.Close()
	f.Close()
	if err != nil {
		return err
	}
	os.Remove(tarball)
	return fn(filepath.Join(dir, "rootfs"))
}

// sweepExport deletes the export folder of machine name and the images
// den published of it.
func (p *Provider) sweepExport(ctx context.Context, m *machine, name, dir string) error {
	var first error
	if err := fsutil.RemoveTree(dir); err != nil {
		first = err
	}
	images, err := m.is.GetImages()
	if err != nil {
		return err
	}
	for _, img := range images {
		if img.Properties[exportProperty] != name {
			continue
		}
		op, err := m.is.DeleteImage(img.Fingerprint)
		if err := wait(ctx, op, err, "delete the published image"); err != nil && first == nil {
			first = err
		}
	}
	return first
}

package machine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
	"golang.org/x/crypto/ssh"
)

// Upload copies the host file or folder src into the running machine m at
// dst, as its login user (Vagrant's upload): a relative dst is relative to
// the user's home, and an empty one is the home and src's base name. It
// returns the guest path written.
func (e *Env) Upload(ctx context.Context, m *Machine, src, dst string) (string, error) {
	if _, err := os.Stat(src); err != nil {
		return "", errdefs.Newf(errdefs.NotFound, "upload: %v", err)
	}
	client, err := e.Connect(ctx, m)
	if err != nil {
		return "", named(m, err)
	}
	defer client.Close()
	return UploadOver(ctx, e.UI, client, m, src, dst)
}

// UploadOver is Upload over an ssh connection the caller made.
func UploadOver(ctx context.Context, u ui.Reporter, client *ssh.Client, m *Machine, src, dst string) (string, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", errdefs.Newf(errdefs.NotFound, "upload: %v", err)
	}
	if dst == "" {
		dst = filepath.Base(abs)
	}
	if !path.IsAbs(dst) {
		var home strings.Builder
		status, err := sshx.Run(ctx, client, `printf %s "$HOME"`, nil, &home, io.Discard)
		if err != nil || status != 0 || !path.IsAbs(home.String()) {
			return "", named(m, fmt.Errorf("upload: cannot find the login user's home folder in the machine (status %d, %v)", status, err))
		}
		dst = path.Join(home.String(), dst)
	}
	dst = path.Clean(dst)
	u.Say(m.Name(), "Uploading %s to %s", abs, dst)
	if err := sshx.NewComm(client).Upload(ctx, dst, abs); err != nil {
		return "", named(m, err)
	}
	u.Say(m.Name(), "Upload has completed successfully!")
	return dst, nil
}

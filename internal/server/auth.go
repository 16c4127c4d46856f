package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// caller is who sent a request: a local user on the unix socket (by its
// peer credentials) or an HTTPS client (by its certificate).
type caller struct {
	tls    bool
	uid    int
	gid    int
	pid    int
	groups []int
	known  bool // the peer credentials could be read
	// Set per request for TLS callers:
	trusted bool
	name    string // the trusted certificate's name
}

type callerKey struct{}

func withCaller(ctx context.Context, c *caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf returns the request's caller, resolving a TLS client's
// certificate against the trust store.
func (s *Server) callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(callerKey{}).(*caller)
	if c == nil {
		return &caller{tls: true} // untrusted
	}
	if !c.tls {
		return c
	}
	cc := *c
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		fp := Fingerprint(r.TLS.PeerCertificates[0].Raw)
		if name, ok := s.trust.Trusted(fp); ok {
			cc.trusted, cc.name = true, name
		}
	}
	return &cc
}

// Fingerprint is the sha256 of a certificate's DER, in hex: how the trust
// store names a certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// admin tells whether c may do everything: root on the socket, or a
// trusted certificate.
func (c *caller) admin() bool {
	if c.tls {
		return c.trusted
	}
	return c.known && c.uid == 0
}

// authenticated tells whether c may use the API beyond GET /1.0.
func (c *caller) authenticated() bool {
	if c.tls {
		return c.trusted
	}
	return c.known
}

// String names the caller in logs and in GET /1.0.
func (c *caller) String() string {
	switch {
	case c.tls && c.trusted:
		return "certificate " + c.name
	case c.tls:
		return "untrusted client"
	case !c.known:
		return "unknown peer"
	case c.uid == 0:
		return "root"
	}
	if u, err := user.LookupId(strconv.Itoa(c.uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, c.uid)
	}
	return fmt.Sprintf("uid %d", c.uid)
}

// peerCaller identifies the process at the other end of a unix socket:
// its uid, gid and pid from SO_PEERCRED (as of connect), its
// supplementary groups from /proc, or from the user database when the
// process is gone.
func peerCaller(conn net.Conn) *caller {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return &caller{}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return &caller{}
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return &caller{}
	}
	c := &caller{uid: int(cred.Uid), gid: int(cred.Gid), pid: int(cred.Pid), known: true}
	c.groups = procGroups(c.pid, c.uid)
	if c.groups == nil {
		c.groups = userGroups(c.uid, c.gid)
	}
	return c
}

// procGroups reads the supplementary groups of pid, if it still runs as
// uid.
func procGroups(pid, uid int) []int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	var groups []int
	sameUID := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch k {
		case "Uid":
			sameUID = len(f) > 0 && f[0] == strconv.Itoa(uid)
		case "Groups":
			groups = []int{}
			for _, g := range f {
				if n, err := strconv.Atoi(g); err == nil {
					groups = append(groups, n)
				}
			}
		}
	}
	if !sameUID {
		return nil
	}
	return groups
}

// userGroups lists uid's groups from the user database.
func userGroups(uid, gid int) []int {
	out := []int{gid}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return out
	}
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if n, err := strconv.Atoi(s); err == nil && n != gid {
			out = append(out, n)
		}
	}
	return out
}

// Package server is `den serve`: den's second front end, a REST API in
// LXD's shape over the same domain calls as the CLI (internal/machine).
// It listens on a unix socket, where each caller is identified by its
// peer credentials, and optionally on HTTPS, where trusted client
// certificates act as the server's administrator. Work that takes time
// runs as an operation (/1.0/operations) whose progress, lifecycle and
// status stream on /1.0/events.
//
// The server holds no domain logic: it loads den.hcl, checks what the
// caller may do (policy.go), calls internal/machine and turns the result
// into JSON. Authorization is the server's own: a caller who is not root
// acts only on projects in folders it owns or can write, with a den.hcl
// that reaches nothing that user could not reach.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
)

// Config configures a Server.
type Config struct {
	// Env is the domain the server drives (its reporter is replaced per
	// operation).
	Env *machine.Env
	// Version is den's version, shown in GET /1.0.
	Version string
	// AllowPrivileged lets callers who are not root use privileged
	// machines (machine.Privileged): root-equivalent, as LXD's socket group.
	AllowPrivileged bool
	// AllowPublicForwards lets callers who are not root forward ports on
	// addresses other than loopback (0.0.0.0, a LAN address).
	AllowPublicForwards bool
	// Bridges are the bridges callers who are not root may attach machines
	// to (default: lxcbr0).
	Bridges []string
	// MaxRequests bounds the requests handled at once (default 64); more
	// wait for a slot up to QueueWait, then get 503.
	MaxRequests int
	// MaxStreams bounds the long-lived requests (events, wait) at once
	// (default 256).
	MaxStreams int
	// MaxOperations bounds the operations that run at once (default 16);
	// more stay Pending until one ends.
	MaxOperations int
	// QueueWait is how long a request waits for a slot (default 10 s).
	QueueWait time.Duration
	// Keep is how long a finished operation stays listed (default 10 min).
	Keep time.Duration
	// Addresses are where the server listens, for GET /1.0.
	Addresses []string
	// Log is where the server logs (default: discard).
	Log *slog.Logger
}

// Server is den's REST API.
type Server struct {
	cfg      Config
	env      *machine.Env
	home     layout.Home
	handler  http.Handler
	reqSem   chan struct{}
	longSem  chan struct{}
	ops      *operations
	hub      *hub
	projects *projectStore
	trust    *TrustStore
	cert     *serverCert // nil without HTTPS
	log      *slog.Logger

	mu      sync.Mutex
	servers []*http.Server
	closed  bool // Shutdown began: no new listener is served
}

// StateDir is where den serve keeps its files in DEN_HOME: the server
// certificate, trusted certificates, registered projects, the journal of
// running operations.
func StateDir(home layout.Home) string { return filepath.Join(home.Path(), "serve") }

// New returns a server over cfg.Env. It reads the registered projects and
// the operations a previous server left unfinished (killed), which it
// lists as failed.
func New(cfg Config) (*Server, error) {
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 64
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 256
	}
	if cfg.MaxOperations <= 0 {
		cfg.MaxOperations = 16
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 10 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 10 * time.Minute
	}
	if len(cfg.Bridges) == 0 {
		cfg.Bridges = []string{"lxcbr0"}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	home := cfg.Env.Home
	dir := StateDir(home)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		env:     cfg.Env,
		home:    home,
		reqSem:  make(chan struct{}, cfg.MaxRequests),
		longSem: make(chan struct{}, cfg.MaxStreams),
		hub:     newHub(),
		trust:   NewTrustStore(home),
		log:     cfg.Log,
	}
	var err error
	if s.projects, err = openProjects(filepath.Join(dir, "projects.json")); err != nil {
		return nil, err
	}
	if s.ops, err = newOperations(s, filepath.Join(dir, "operations"), cfg.MaxOperations, cfg.Keep); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the API as an http.Handler (callers must carry a caller in
// their context: see ServeUnix and ServeTLS).
func (s *Server) Handler() http.Handler { return s.handler }

// EnableTLS makes the server certificate (created in DEN_HOME on first
// use) ready for ServeTLS; hosts are extra names or addresses it is valid
// for.
func (s *Server) EnableTLS(hosts []string) error {
	c, err := loadOrCreateCert(StateDir(s.home), hosts)
	if err != nil {
		return err
	}
	s.cert = c
	return nil
}

// newHTTPServer is the http.Server for one listener.
func (s *Server) newHTTPServer(h http.Handler, connCtx func(context.Context, net.Conn) context.Context) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ConnContext:       connCtx,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closed {
		hs.Close() // Serve then returns ErrServerClosed at once
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	return hs
}

// ServeUnix serves the API on a unix socket listener until Shutdown.
// Each connection's caller is who connected (SO_PEERCRED).
func (s *Server) ServeUnix(l net.Listener) error {
	hs := s.newHTTPServer(s.handler, func(ctx context.Context, c net.Conn) context.Context {
		return withCaller(ctx, peerCaller(c))
	})
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeTLS serves the API on HTTPS until Shutdown. A client certificate
// in the trust store makes its holder the server's administrator; any
// other client sees only GET /1.0.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.cert == nil {
		return errors.New("den serve: TLS is not enabled")
	}
	hs := s.newHTTPServer(s.handler, func(ctx context.Context, c net.Conn) context.Context {
		return withCaller(ctx, &caller{tls: true})
	})
	hs.TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.cert.pair},
		ClientAuth:   tls.RequestClientCert,
	}
	err := hs.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking requests, gives running operations grace to
// finish, cancels those still running (each stops at its next safe point)
// and waits for them to end, then closes every connection.
func (s *Server) Shutdown(ctx context.Context, grace time.Duration) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	for _, hs := range servers {
		hs.SetKeepAlivesEnabled(false)
	}
	s.ops.drain(ctx, grace)
	s.hub.closeAll()
	var first error
	for _, hs := range servers {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
		cancel()
	}
	return first
}

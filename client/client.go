// Package client is the Go client of den's REST API (`den serve`): the
// den CLI uses it when it runs as a user other than root, and any Go
// program may import it. It speaks to the server's unix socket (the
// server knows the caller by its uid) or to its HTTPS address with a
// trusted client certificate.
//
//	c, err := client.ConnectUnix(client.DefaultSocket)
//	p, err := c.RegisterProject(ctx, "/home/me/app")
//	op, err := c.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
//	final, err := op.Follow(ctx, func(e api.ProgressEvent) { fmt.Println(e.Text) })
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/den-dev/den/api"
)

// DefaultSocket is where den serve listens by default.
const DefaultSocket = "/run/den/den.sock"

// EnvHeader carries the caller's environment for env() in den.hcl.
const EnvHeader = "X-Den-Environment"

// Client talks to one den server.
type Client struct {
	http   *http.Client
	base   string // http://den or https://host:port
	wsBase string
	dialWS func(ctx context.Context, network, addr string) (net.Conn, error)
	tls    *tls.Config
	// Environ is sent with every request: what env() in den.hcl reads
	// (nil: an empty environment).
	Environ map[string]string
}

// ConnectUnix returns a client of the server on the unix socket path.
func ConnectUnix(path string) (*Client, error) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	return &Client{http: &http.Client{Transport: tr}, base: "http://den", wsBase: "ws://den", dialWS: dial}, nil
}

// ConnectHTTPS returns a client of the server at addr (host:port) that
// presents cert and trusts only serverCertPEM (the server's self-signed
// certificate, DEN_HOME/serve/server.crt).
func ConnectHTTPS(addr string, cert tls.Certificate, serverCertPEM []byte) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(serverCertPEM) {
		return nil, errors.New("server certificate: no PEM certificate")
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 16}
	return &Client{http: &http.Client{Transport: tr}, base: "https://" + addr, wsBase: "wss://" + addr, tls: cfg}, nil
}

// Error is a failure the server reported: an error answer or a failed
// operation.
type Error struct {
	Code    int // HTTP status (errdefs' mapping; 403 for a refusal)
	Message string
	Detail  api.ErrorDetail
}

func (e *Error) Error() string { return e.Message }

// Kind is den's error kind ("not-created", "guest-failed", "forbidden"...).
func (e *Error) Kind() string { return e.Detail.Kind }

// Do sends a request with a JSON body (nil: none) and returns the
// envelope; an error answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body any) (*api.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

func (c *Client) send(req *http.Request) (*api.Response, error) {
	if c.Environ != nil {
		b, _ := json.Marshal(c.Environ)
		req.Header.Set(EnvHeader, base64.StdEncoding.EncodeToString(b))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r api.Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("den serve answered %s with something that is not an API envelope: %w", resp.Status, err)
	}
	if r.Type == api.TypeError {
		e := &Error{Code: r.ErrorCode, Message: r.Error}
		json.Unmarshal(r.Metadata, &e.Detail)
		return nil, e
	}
	return &r, nil
}

// get decodes a sync answer's metadata into v.
func (c *Client) get(ctx context.Context, method, path string, body, v any) error {
	r, err := c.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(r.Metadata, v)
}

// async sends a request that starts an operation.
func (c *Client) async(ctx context.Context, method, path string, body any) (*Operation, error) {
	r, err := c.Do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	return c.operationFrom(r)
}

func (c *Client) operationFrom(r *api.Response) (*Operation, error) {
	if r.Type != api.TypeAsync {
		return nil, fmt.Errorf("den serve answered %q where an operation was expected", r.Type)
	}
	op := &Operation{c: c}
	if err := json.Unmarshal(r.Metadata, &op.Op); err != nil {
		return nil, err
	}
	return op, nil
}

// Server is GET /1.0.
func (c *Client) Server(ctx context.Context) (*api.Server, error) {
	var s api.Server
	return &s, c.get(ctx, "GET", "/1.0", nil, &s)
}

// RegisterProject registers the project folder path (absolute, on the
// server's host) and returns it with its machines. Registering again is
// harmless.
func (c *Client) RegisterProject(ctx context.Context, path string) (*api.Project, error) {
	var p api.Project
	return &p, c.get(ctx, "POST", "/1.0/projects", api.ProjectsPost{Path: path}, &p)
}

// Project returns a registered project.
func (c *Client) Project(ctx context.Context, id string) (*api.Project, error) {
	var p api.Project
	return &p, c.get(ctx, "GET", "/1.0/projects/"+url.PathEscape(id), nil, &p)
}

func machinePath(pid, name string) string {
	return "/1.0/projects/" + url.PathEscape(pid) + "/machines/" + url.PathEscape(name)
}

// Machine returns one machine of a project.
func (c *Client) Machine(ctx context.Context, pid, name string) (*api.Machine, error) {
	var m api.Machine
	return &m, c.get(ctx, "GET", machinePath(pid, name), nil, &m)
}

// MachineState returns a machine's state.
func (c *Client) MachineState(ctx context.Context, pid, name string) (*api.MachineState, error) {
	var s api.MachineState
	return &s, c.get(ctx, "GET", machinePath(pid, name)+"/state", nil, &s)
}

// Action starts an action on a project's machines (req.Machines; all
// without).
func (c *Client) Action(ctx context.Context, pid string, req api.StatePut) (*Operation, error) {
	return c.async(ctx, "PUT", "/1.0/projects/"+url.PathEscape(pid)+"/state", req)
}

// Snapshots lists the snapshots of the named machines (all without).
func (c *Client) Snapshots(ctx context.Context, pid string, machines []string) ([]api.Snapshot, error) {
	q := url.Values{}
	for _, m := range machines {
		q.Add("machine", m)
	}
	var out []api.Snapshot
	return out, c.get(ctx, "GET", "/1.0/projects/"+url.PathEscape(pid)+"/snapshots?"+q.Encode(), nil, &out)
}

// SaveSnapshot saves a snapshot of machines.
func (c *Client) SaveSnapshot(ctx context.Context, pid string, req api.SnapshotsPost) (*Operation, error) {
	return c.async(ctx, "POST", "/1.0/projects/"+url.PathEscape(pid)+"/snapshots", req)
}

// RestoreSnapshot restores snapshot name of machines.
func (c *Client) RestoreSnapshot(ctx context.Context, pid, name string, req api.SnapshotPost) (*Operation, error) {
	req.Action = "restore"
	return c.async(ctx, "POST", "/1.0/projects/"+url.PathEscape(pid)+"/snapshots/"+url.PathEscape(name), req)
}

// DeleteSnapshot deletes snapshot name of machines (all without).
func (c *Client) DeleteSnapshot(ctx context.Context, pid, name string, machines []string) (*Operation, error) {
	q := url.Values{}
	for _, m := range machines {
		q.Add("machine", m)
	}
	return c.async(ctx, "DELETE", "/1.0/projects/"+url.PathEscape(pid)+"/snapshots/"+url.PathEscape(name)+"?"+q.Encode(), nil)
}

// Package makes a box file from a machine.
func (c *Client) Package(ctx context.Context, pid, name string, req api.PackagePost) (*Operation, error) {
	return c.async(ctx, "POST", machinePath(pid, name)+"/package", req)
}

// GlobalStatus lists the machines of the server's DEN_HOME the caller may
// see.
func (c *Client) GlobalStatus(ctx context.Context) ([]api.GlobalMachine, error) {
	var out []api.GlobalMachine
	return out, c.get(ctx, "GET", "/1.0/machines", nil, &out)
}

// PruneGlobal drops the stale entries the caller may see and returns them.
func (c *Client) PruneGlobal(ctx context.Context) ([]api.GlobalMachine, error) {
	var out []api.GlobalMachine
	return out, c.get(ctx, "POST", "/1.0/machines/prune", struct{}{}, &out)
}

// Boxes lists the installed boxes.
func (c *Client) Boxes(ctx context.Context) ([]api.Box, error) {
	var out []api.Box
	return out, c.get(ctx, "GET", "/1.0/boxes", nil, &out)
}

// AddBox adds a box from a URL (or, for an administrator, a path on the
// server's host).
func (c *Client) AddBox(ctx context.Context, req api.BoxesPost) (*Operation, error) {
	return c.async(ctx, "POST", "/1.0/boxes", req)
}

// UploadBox adds the box file read from body.
func (c *Client) UploadBox(ctx context.Context, name, version string, force bool, body io.Reader) (*Operation, error) {
	q := url.Values{"name": {name}}
	if version != "" {
		q.Set("version", version)
	}
	if force {
		q.Set("force", "1")
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/1.0/boxes?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r, err := c.send(req)
	if err != nil {
		return nil, err
	}
	return c.operationFrom(r)
}

// RemoveBox removes a box (every version without version).
func (c *Client) RemoveBox(ctx context.Context, name, version string, force bool) (*Operation, error) {
	q := url.Values{}
	if version != "" {
		q.Set("version", version)
	}
	if force {
		q.Set("force", "1")
	}
	return c.async(ctx, "DELETE", "/1.0/boxes/"+name+"?"+q.Encode(), nil)
}

// Operation is a server operation this client started or looked up.
type Operation struct {
	c  *Client
	Op api.Operation
}

// GetOperation looks an operation up by id.
func (c *Client) GetOperation(ctx context.Context, id string) (*Operation, error) {
	op := &Operation{c: c}
	return op, c.get(ctx, "GET", "/1.0/operations/"+url.PathEscape(id), nil, &op.Op)
}

// Wait waits for the operation to end (timeout < 0: no limit) and returns
// it; a failed operation is an *Error as well.
func (op *Operation) Wait(ctx context.Context, timeout time.Duration) (*api.Operation, error) {
	secs := "-1"
	if timeout >= 0 {
		secs = strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)
	}
	var a api.Operation
	if err := op.c.get(ctx, "GET", "/1.0/operations/"+url.PathEscape(op.Op.ID)+"/wait?timeout="+secs, nil, &a); err != nil {
		return nil, err
	}
	op.Op = a
	return &a, opError(&a)
}

// opError is the *Error of a failed operation, or nil.
func opError(a *api.Operation) error {
	if a.StatusCode != api.StatusFailure && a.StatusCode != api.StatusCancelled {
		return nil
	}
	e := &Error{Code: a.ErrCode, Message: a.Err}
	if a.ErrDetail != nil {
		e.Detail = *a.ErrDetail
	}
	if e.Message == "" {
		e.Message = "operation " + a.Status
	}
	return e
}

// Cancel asks the server to stop the operation at its next safe point.
func (op *Operation) Cancel(ctx context.Context) error {
	_, err := op.c.Do(ctx, "DELETE", "/1.0/operations/"+url.PathEscape(op.Op.ID), nil)
	return err
}

// Follow streams the operation's progress to fn, from its first event,
// until it ends, and returns how it ended (a failure is an *Error too).
// When ctx ends first, Follow cancels the operation and keeps following
// it to its end (the machine is left where the domain stopped safely);
// the error then wraps context.Canceled.
func (op *Operation) Follow(ctx context.Context, fn func(api.ProgressEvent)) (*api.Operation, error) {
	d := websocket.Dialer{NetDialContext: op.c.dialWS, TLSClientConfig: op.c.tls, HandshakeTimeout: 10 * time.Second}
	q := url.Values{"operation": {op.Op.ID}, "type": {"progress,operation"}}
	hdr := http.Header{}
	conn, _, err := d.Dial(op.c.wsBase+"/1.0/events?"+q.Encode(), hdr)
	if err != nil {
		return op.waitCancelling(ctx)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { op.Cancel(context.Background()) })
	defer stop()
	for {
		var ev api.Event
		if err := conn.ReadJSON(&ev); err != nil {
			break // the server closes after the operation's last event
		}
		if ev.Type == api.EventProgress && fn != nil {
			var pe api.ProgressEvent
			if json.Unmarshal(ev.Metadata, &pe) == nil {
				fn(pe)
			}
		}
	}
	return op.finish(ctx)
}

// waitCancelling waits, cancelling the operation when ctx ends.
func (op *Operation) waitCancelling(ctx context.Context) (*api.Operation, error) {
	stop := context.AfterFunc(ctx, func() { op.Cancel(context.Background()) })
	defer stop()
	return op.finish(ctx)
}

// finish waits for the end (never bounded by ctx: a cancelled operation
// is followed to its end) and wraps context.Canceled when ctx ended.
func (op *Operation) finish(ctx context.Context) (*api.Operation, error) {
	a, err := op.Wait(context.Background(), -1)
	if err != nil && ctx.Err() != nil {
		var e *Error
		if errors.As(err, &e) && (e.Kind() == "canceled" || a != nil && a.StatusCode == api.StatusCancelled) {
			return a, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	return a, err
}

// Events opens /1.0/events with the given types (comma-separated; ""
// for all) and project ids, and calls fn for each event until ctx ends or
// the server closes the stream.
func (c *Client) Events(ctx context.Context, types string, projects []string, fn func(api.Event)) error {
	d := websocket.Dialer{NetDialContext: c.dialWS, TLSClientConfig: c.tls, HandshakeTimeout: 10 * time.Second}
	q := url.Values{}
	if types != "" {
		q.Set("type", types)
	}
	if len(projects) > 0 {
		q.Set("project", strings.Join(projects, ","))
	}
	conn, _, err := d.DialContext(ctx, c.wsBase+"/1.0/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		var ev api.Event
		if err := conn.ReadJSON(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
		fn(ev)
	}
}

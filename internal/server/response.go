package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/hcl/v2"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provision"
)

// KindForbidden is the error kind of a refusal by the server's
// authorization (HTTP 403); the domain's kinds are errdefs'.
const KindForbidden = "forbidden"

// forbidden is a refusal: the caller may not do this.
type forbidden struct {
	msg   string
	diags hcl.Diagnostics // den.hcl lines that cause it, when any
}

func (e *forbidden) Error() string { return e.msg }

func forbid(format string, args ...any) error {
	return &forbidden{msg: fmt.Sprintf(format, args...)}
}

// errorDetail describes err for the API: its kind and what a front end
// needs to act as the CLI does.
func errorDetail(err error) api.ErrorDetail {
	var fb *forbidden
	if errors.As(err, &fb) {
		return api.ErrorDetail{Kind: KindForbidden, Diagnostics: diagnostics(fb.diags)}
	}
	d := api.ErrorDetail{Kind: string(errdefs.KindOf(err)), Machine: errdefs.MachineOf(err)}
	var pe *provision.ProvisionError
	if errors.As(err, &pe) {
		d.ExitStatus, d.Provisioner = pe.Status, pe.Name
	}
	var de *config.DiagError
	if errors.As(err, &de) {
		d.Diagnostics = diagnostics(de.Diags)
	}
	return d
}

// httpStatus maps err to the HTTP status of a sync error answer.
func httpStatus(err error) int {
	var fb *forbidden
	if errors.As(err, &fb) {
		return http.StatusForbidden
	}
	return errdefs.HTTPStatus(errdefs.KindOf(err))
}

// diagnostics turns HCL diagnostics into the API's.
func diagnostics(diags hcl.Diagnostics) []api.Diagnostic {
	var out []api.Diagnostic
	for _, d := range diags {
		a := api.Diagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			a.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			a.File = r.Filename
			a.Start = api.Pos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte}
			a.End = api.Pos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte}
		}
		out = append(out, a)
	}
	return out
}

// reply writes a sync answer with metadata.
func (s *Server) reply(w http.ResponseWriter, metadata any) {
	b, err := json.Marshal(metadata)
	if err != nil {
		s.fail(w, nil, err)
		return
	}
	s.write(w, http.StatusOK, api.Response{Type: api.TypeSync, Status: "Success", StatusCode: http.StatusOK, Metadata: b})
}

// replyAsync answers that op started.
func (s *Server) replyAsync(w http.ResponseWriter, op *operation) {
	b, _ := json.Marshal(op.api(false))
	w.Header().Set("Location", op.url())
	s.write(w, http.StatusAccepted, api.Response{Type: api.TypeAsync, Status: "Operation created", StatusCode: 100, Metadata: b, Operation: op.url()})
}

// fail writes an error answer for err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := httpStatus(err)
	d := errorDetail(err)
	b, _ := json.Marshal(d)
	if r != nil && code >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.write(w, code, api.Response{Type: api.TypeError, Error: err.Error(), ErrorCode: code, Metadata: b})
}

func (s *Server) write(w http.ResponseWriter, code int, resp api.Response) {
	if resp.Metadata == nil {
		resp.Metadata = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(resp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

// decode reads r's JSON body into v: one object, no unknown field, no
// trailing data, at most 1 MiB. An empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errdefs.Newf(errdefs.Invalid, "read request body: %v", err)
	}
	if len(body) > maxBody {
		return errdefs.Newf(errdefs.Invalid, "request body is over %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.Newf(errdefs.Invalid, "malformed request body: %v", err)
	}
	if dec.More() {
		return errdefs.Newf(errdefs.Invalid, "malformed request body: data after the JSON object")
	}
	var rest json.RawMessage
	if err := dec.Decode(&rest); err != io.EOF {
		return errdefs.Newf(errdefs.Invalid, "malformed request body: data after the JSON object")
	}
	return nil
}

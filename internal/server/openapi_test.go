package server

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/den-dev/den/api"
)

// TestOpenAPI checks api/openapi.json against the server: every route it
// answers is described and nothing else is, and the request bodies it
// describes have exactly the fields the server decodes (it refuses
// unknown ones).
func TestOpenAPI(t *testing.T) {
	b, err := os.ReadFile("../../api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var described []string
	for path, methods := range doc.Paths {
		for m := range methods {
			described = append(described, strings.ToUpper(m)+" "+path)
		}
	}
	ts := newTestServer(t, Config{})
	var served []string
	for _, r := range ts.srv.Routes() {
		r = strings.ReplaceAll(r, "...}", "}")
		r = strings.TrimSuffix(r, "{$}")
		served = append(served, r)
	}
	sort.Strings(described)
	sort.Strings(served)
	for _, r := range served {
		if !slices.Contains(described, r) {
			t.Errorf("the server answers %s, which openapi.json does not describe", r)
		}
	}
	for _, r := range described {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.json describes %s, which the server does not answer", r)
		}
	}
	bodies := map[string]any{
		"ProjectsPost": api.ProjectsPost{}, "StatePut": api.StatePut{}, "SnapshotsPost": api.SnapshotsPost{},
		"SnapshotPost": api.SnapshotPost{}, "PackagePost": api.PackagePost{}, "BoxesPost": api.BoxesPost{},
		"CertificatesPost": api.CertificatesPost{}, "Operation": api.Operation{}, "Machine": api.Machine{},
		"Project": api.Project{}, "ErrorDetail": api.ErrorDetail{}, "ProgressEvent": api.ProgressEvent{},
		"LifecycleEvent": api.LifecycleEvent{}, "Response": api.Response{}, "Event": api.Event{},
	}
	for name, v := range bodies {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var fields []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		if !slices.Equal(fields, props) {
			t.Errorf("schema %s has %v, the Go type %v", name, props, fields)
		}
	}
}

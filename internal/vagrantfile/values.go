package vagrantfile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// What the stand-in writes (standin.rb): every setting, index setting and
// call the Vagrantfile made on a configuration object, with its line.
type output struct {
	Version  string     `json:"version"`
	Events   []event    `json:"events"`
	Commands []command  `json:"commands"`
	Env      []envRead  `json:"env"`
	Plugins  []plugin   `json:"plugins"`
	Error    *rubyError `json:"error"`
}

type event struct {
	Op       string    `json:"op"`   // "set", "index" or "call"
	Path     []string  `json:"path"` // the namespace below the yielded object: ["vm"], ["ssh"], []
	Name     string    `json:"name"` // the attribute set or the method called
	Key      any       `json:"key"`  // index: the key
	Value    any       `json:"value"`
	Args     []any     `json:"args"` // call: positional arguments
	Opts     [][2]any  `json:"opts"` // call: keyword arguments (or a last Hash), in order
	File     string    `json:"file"`
	Line     int       `json:"line"`
	Blocks   [][]event `json:"blocks"` // call with a block: what it did with the object(s) yielded to it
	HasBlock bool      `json:"has_block"`
}

type command struct {
	Command string `json:"command"`
	File    string `json:"file"`
	Line    int    `json:"line"`
}

type envRead struct {
	Name string `json:"name"`
	Set  bool   `json:"set"`
	File string `json:"file"`
	Line int    `json:"line"`
}

type plugin struct {
	Name string `json:"name"`
	File string `json:"file"`
	Line int    `json:"line"`
}

type rubyError struct {
	Kind    string `json:"kind"` // "v1", "exit" or "raised"
	Class   string `json:"class"`
	Message string `json:"message"`
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// at is where a setting was made: a Ruby file relative to the Vagrantfile's
// folder, and a line.
type at struct {
	file string
	line int
}

func (e event) at() at { return at{e.File, e.Line} }

// opt is one keyword argument or setting of a call, with where it was made.
type opt struct {
	key   string
	value any
	at    at
}

// options lists a call's keyword arguments, then what its block set on the
// yielded object itself (provision "shell" do |s| s.inline = ... end).
func (e event) options() []opt {
	var out []opt
	for _, kv := range e.Opts {
		k, _ := str(kv[0])
		out = append(out, opt{k, kv[1], e.at()})
	}
	if len(e.Blocks) > 0 {
		for _, b := range e.Blocks[0] {
			if b.Op == "set" && len(b.Path) == 0 {
				out = append(out, opt{b.Name, b.Value, b.at()})
			}
		}
	}
	return out
}

// blockRest is what a call's block did besides setting attributes of the
// yielded object.
func (e event) blockRest() []event {
	var out []event
	if len(e.Blocks) > 0 {
		for _, b := range e.Blocks[0] {
			if b.Op != "set" || len(b.Path) != 0 {
				out = append(out, b)
			}
		}
	}
	return out
}

// arg returns positional argument i as a string ("" when absent).
func (e event) arg(i int) string {
	if i >= len(e.Args) {
		return ""
	}
	s, _ := str(e.Args[i])
	return s
}

// str is a Ruby string or symbol, or a number written as text.
func str(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// integer is a Ruby Integer, or a string holding one.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// boolean is a Ruby true or false.
func boolean(v any) (bool, bool) {
	b, ok := v.(bool)
	return b, ok
}

// list is a Ruby Array.
func list(v any) ([]any, bool) {
	l, ok := v.([]any)
	return l, ok
}

// strList is a Ruby Array of strings, or one string as a list of one.
func strList(v any) ([]string, bool) {
	if s, ok := str(v); ok {
		return []string{s}, true
	}
	l, ok := list(v)
	if !ok {
		return nil, false
	}
	out := []string{}
	for _, e := range l {
		s, ok := str(e)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// pair is one entry of a Ruby Hash.
type pair struct {
	key   string
	value any
}

// hash is a Ruby Hash (the stand-in writes {"hash": [[k, v], ...]}), keys
// as strings.
func hash(v any) ([]pair, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	raw, ok := m["hash"].([]any)
	if !ok {
		return nil, false
	}
	var out []pair
	for _, e := range raw {
		kv, ok := e.([]any)
		if !ok || len(kv) != 2 {
			return nil, false
		}
		k, ok := str(kv[0])
		if !ok {
			k = ruby(kv[0])
		}
		out = append(out, pair{k, kv[1]})
	}
	return out, true
}

// regexpSource is a Ruby Regexp's source.
func regexpSource(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	s, ok := m["regexp"].(string)
	return s, ok
}

// ruby writes a value as Ruby would show it, for notes.
func ruby(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, ruby(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		if h, ok := hash(x); ok {
			var parts []string
			for _, kv := range h {
				parts = append(parts, kv.key+": "+ruby(kv.value))
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
		if s, ok := regexpSource(x); ok {
			return "/" + s + "/"
		}
		if s, ok := x["unset"].(string); ok {
			return "config." + s + " (never set)"
		}
		if s, ok := x["ruby"].(string); ok {
			return s
		}
	}
	return fmt.Sprint(v)
}

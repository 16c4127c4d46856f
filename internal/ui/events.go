package ui

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event, one per Reporter method (output split by stream).
const (
	EventSay      EventKind = "say"
	EventDetail   EventKind = "detail"
	EventWarn     EventKind = "warn"
	EventStdout   EventKind = "stdout"
	EventStderr   EventKind = "stderr"
	EventProgress EventKind = "progress"
)

// Event is one report of an operation, as data: what a server sends to
// its clients and what tests look at.
type Event struct {
	Kind    EventKind `json:"kind"`
	Machine string    `json:"machine,omitempty"`
	Text    string    `json:"text"`
	Done    int64     `json:"done,omitempty"`  // progress: units so far
	Total   int64     `json:"total,omitempty"` // progress: expected units, 0 when unknown
}

// Events is a Reporter that hands every report to a function, one at a
// time (the function need not be safe for concurrent use). Command output
// is passed on line by line.
type Events struct {
	mu   sync.Mutex
	emit func(Event)
}

var _ Reporter = (*Events)(nil)

// NewEvents returns a Reporter that calls emit for every report.
func NewEvents(emit func(Event)) *Events { return &Events{emit: emit} }

func (e *Events) send(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.emit(ev)
}

// Say reports a step.
func (e *Events) Say(machine, format string, args ...any) {
	e.send(Event{Kind: EventSay, Machine: machine, Text: fmt.Sprintf(format, args...)})
}

// Detail reports a secondary line.
func (e *Events) Detail(machine, format string, args ...any) {
	e.send(Event{Kind: EventDetail, Machine: machine, Text: fmt.Sprintf(format, args...)})
}

// Warn reports a warning.
func (e *Events) Warn(machine, format string, args ...any) {
	e.send(Event{Kind: EventWarn, Machine: machine, Text: fmt.Sprintf(format, args...)})
}

// Output returns a writer that sends each line as an event.
func (e *Events) Output(machine string, stderr bool) io.WriteCloser {
	kind := EventStdout
	if stderr {
		kind = EventStderr
	}
	return &eventWriter{e: e, kind: kind, machine: machine}
}

type eventWriter struct {
	e       *Events
	kind    EventKind
	machine string
	buf     []byte
}

func (w *eventWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.e.send(Event{Kind: w.kind, Machine: w.machine, Text: string(bytes.TrimSuffix(w.buf[:i], []byte("\r")))})
		w.buf = w.buf[i+1:]
	}
}

func (w *eventWriter) Close() error {
	if len(w.buf) > 0 {
		w.e.send(Event{Kind: w.kind, Machine: w.machine, Text: string(w.buf)})
		w.buf = nil
	}
	return nil
}

// Progress returns a Bar that sends each update as an event.
func (e *Events) Progress(machine, what string, total int64) Bar {
	return &eventBar{e: e, machine: machine, what: what, total: total}
}

type eventBar struct {
	e       *Events
	machine string
	what    string
	total   int64
}

func (b *eventBar) Update(done int64, line string) {
	text := b.what
	if line != "" {
		text += ": " + line
	}
	b.e.send(Event{Kind: EventProgress, Machine: b.machine, Text: text, Done: done, Total: b.total})
}

func (b *eventBar) Done() {}

// Discard is a Reporter that drops every report.
var Discard Reporter = NewEvents(func(Event) {})

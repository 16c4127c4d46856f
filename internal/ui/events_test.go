package ui

import (
	"fmt"
	"reflect"
	"testing"
)

func TestEvents(t *testing.T) {
	var got []Event
	r := NewEvents(func(e Event) { got = append(got, e) })
	r.Say("web", "Starting %s...", "machine")
	r.Detail("web", "SSH address: %s", "10.0.3.9:22")
	r.Warn("", "careful")
	w := r.Output("web", true)
	fmt.Fprint(w, "one\r\ntw")
	fmt.Fprint(w, "o\nthree")
	w.Close()
	b := r.Progress("box", "Unpacking", 10)
	b.Update(5, "")
	b.Done()
	want := []Event{
		{Kind: EventSay, Machine: "web", Text: "Starting machine..."},
		{Kind: EventDetail, Machine: "web", Text: "SSH address: 10.0.3.9:22"},
		{Kind: EventWarn, Text: "careful"},
		{Kind: EventStderr, Machine: "web", Text: "one"},
		{Kind: EventStderr, Machine: "web", Text: "two"},
		{Kind: EventStderr, Machine: "web", Text: "three"},
		{Kind: EventProgress, Machine: "box", Text: "Unpacking", Done: 5, Total: 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
	Discard.Say("x", "dropped")
}

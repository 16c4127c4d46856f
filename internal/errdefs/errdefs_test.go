package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

type heldErr struct{}

func (heldErr) Error() string   { return "held" }
func (heldErr) ErrorKind() Kind { return Locked }

func TestKindOf(t *testing.T) {
	frozen := Machinef(Frozen, "web", "machine %q is suspended", "web")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, ""},
		{"plain", errors.New("boom"), Internal},
		{"typed", frozen, Frozen},
		{"wrapped typed", fmt.Errorf("up: %w", frozen), Frozen},
		{"outermost wins", Newf(NotFound, "outer: %w", frozen), NotFound},
		{"kinded lower error", fmt.Errorf("x: %w", heldErr{}), Locked},
		{"canceled", fmt.Errorf("wait: %w", context.Canceled), Canceled},
		{"deadline", context.DeadlineExceeded, Canceled},
		{"join: first with a kind", errors.Join(errors.New("a"), frozen), Frozen},
		{"bare kind", fmt.Errorf("x: %w", Unsupported), Unsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.err); got != tc.want {
				t.Errorf("KindOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIsAndMachine(t *testing.T) {
	err := fmt.Errorf("ctx: %w", Machinef(NotCreated, "db", "machine %q is not created", "db"))
	if !errors.Is(err, NotCreated) || errors.Is(err, Frozen) {
		t.Errorf("errors.Is by kind is wrong for %v", err)
	}
	if got := MachineOf(err); got != "db" {
		t.Errorf("MachineOf = %q", got)
	}
	if MachineOf(errors.New("x")) != "" {
		t.Error("MachineOf of a plain error")
	}
	if err.Error() != `ctx: machine "db" is not created` {
		t.Errorf("message changed: %q", err.Error())
	}
	if HTTPStatus(NotFound) != 404 || HTTPStatus(Internal) != 500 || HTTPStatus(Locked) != 423 {
		t.Error("HTTPStatus mapping")
	}
}

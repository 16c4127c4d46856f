// Package errdefs names the kinds of failure den's domain reports, so that
// every front end maps them without reading error text: the CLI to its
// messages and exit statuses, a server to HTTP status codes.
//
// A domain error is an *Error (a kind, the machine it is about, the wrapped
// cause). Lower packages that cannot import the domain give their own error
// types a kind by implementing ErrorKind. KindOf finds the kind of any
// error chain.
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// Kind is the class of a failure. A Kind is itself an error, so
// errors.Is(err, errdefs.Frozen) asks whether err is of that kind.
type Kind string

// The kinds den reports. Internal is every failure without a kind of its own.
const (
	Internal      Kind = "internal"       // anything else: I/O, a provider's own failure
	Invalid       Kind = "invalid"        // bad input: den.hcl, a flag, a name, an API request
	NotFound      Kind = "not-found"      // no such machine, snapshot, box version, operation
	Exists        Kind = "exists"         // the thing to make exists already
	NotCreated    Kind = "not-created"    // the machine has not been created
	NotRunning    Kind = "not-running"    // the machine is stopped and must run for this
	Frozen        Kind = "frozen"         // the machine is suspended
	Locked        Kind = "locked"         // another den holds the lock past the wait
	BoxMissing    Kind = "box-missing"    // the box a machine names is not installed and cannot be had
	HostNotReady  Kind = "host-not-ready" // a host prerequisite is missing (root, LXC, the bridge)
	Unsupported   Kind = "unsupported"    // the provider lacks the ability
	GuestFailed   Kind = "guest-failed"   // a command den ran in the guest failed (a provisioner)
	TriggerFailed Kind = "trigger-failed" // a trigger's command failed, on the host or in the guest
	Canceled      Kind = "canceled"       // interrupted: Ctrl-C, SIGTERM, a cancelled operation
	Tampered      Kind = "tampered"       // den's own state (.den/, the index) does not hold what den wrote
)

func (k Kind) Error() string { return string(k) }

// Error is a failure of a known kind, optionally about one machine.
type Error struct {
	Kind    Kind
	Machine string // the machine's name in den.hcl, or ""
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Newf returns an error of kind k; the format takes %w like fmt.Errorf.
func Newf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// Machinef returns an error of kind k about machine; the message should
// name the machine itself.
func Machinef(k Kind, machine, format string, args ...any) error {
	return &Error{Kind: k, Machine: machine, Err: fmt.Errorf(format, args...)}
}

// With gives err the kind k, keeping its message. A nil err stays nil.
func With(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// Kinded is implemented by errors of lower packages that know their kind
// (a held lock, a host that is not ready, a den.hcl diagnostic).
type Kinded interface {
	error
	ErrorKind() Kind
}

// KindOf returns the kind of the outermost error in err's chain that has
// one; a cancelled or timed-out context is Canceled; anything else is
// Internal. KindOf(nil) is "".
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	for e := err; e != nil; e = next(e) {
		switch x := e.(type) {
		case *Error:
			return x.Kind
		case Kinded:
			return x.ErrorKind()
		case Kind:
			return x
		}
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			// A join of several failures: the first one with a kind.
			for _, j := range joined.Unwrap() {
				if k := KindOf(j); k != Internal {
					return k
				}
			}
			break
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Canceled
	}
	return Internal
}

func next(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		return u.Unwrap()
	}
	return nil
}

// MachineOf returns the machine the outermost machine error in err's chain
// is about, or "".
func MachineOf(err error) string {
	var e *Error
	for errors.As(err, &e) {
		if e.Machine != "" {
			return e.Machine
		}
		err = e.Err
	}
	return ""
}

// HTTPStatus maps a kind to the HTTP status a server answers with.
func HTTPStatus(k Kind) int {
	switch k {
	case Invalid:
		return 400
	case NotFound, BoxMissing:
		return 404
	case Exists, NotCreated, NotRunning, Frozen, Tampered:
		return 409
	case Locked:
		return 423
	case Unsupported:
		return 501
	case HostNotReady:
		return 503
	case GuestFailed, TriggerFailed:
		return 422
	case Canceled:
		return 499
	}
	return 500
}

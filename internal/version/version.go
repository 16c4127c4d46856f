// Package version orders box versions and checks box_version constraints
// the way Vagrant does (RubyGems rules), in one place for all of den.
package version

import (
	"fmt"
	"regexp"
	"strings"
)

// Version is a box version compared the way Vagrant compares them, which is
// the way RubyGems does (Gem::Version): dotted numbers, optionally followed
// by letters that make it a prerelease ("1.0.0.beta1" < "1.0.0").
// The zero Version compares equal to "0" and prints as "".
type Version struct {
	raw  string
	segs []segment
}

// segment is one part of a version: a run of digits or a run of letters.
type segment struct {
	num   bool
	value string // digits without leading zeros ("" is 0), or letters
}

// versionPattern is Gem::Version's ANCHORED_VERSION_PATTERN without the
// empty version.
var versionPattern = regexp.MustCompile(`^[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// segmentPattern splits a version into runs of digits and runs of letters.
var segmentPattern = regexp.MustCompile(`[0-9]+|[a-zA-Z]+`)

// Parse parses a box version such as "1.2.3", "2024.01.05.120000" or
// "1.0.0.beta1". As in RubyGems, "-" starts a prerelease: "1.0-rc1" is
// "1.0.pre.rc1". Surrounding spaces are ignored.
func Parse(s string) (Version, error) {
	t := strings.TrimSpace(s)
	if !versionPattern.MatchString(t) {
		return Version{}, fmt.Errorf("%q is not a version", s)
	}
	var segs []segment
	for _, p := range segmentPattern.FindAllString(strings.ReplaceAll(t, "-", ".pre."), -1) {
		if p[0] >= '0' && p[0] <= '9' {
			segs = append(segs, segment{num: true, value: strings.TrimLeft(p, "0")})
		} else {
			segs = append(segs, segment{value: p})
		}
	}
	return Version{raw: t, segs: segs}, nil
}

// MustParse is Parse that panics on an error, for constants
// and tests.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String returns the version as it was written, without surrounding spaces.
func (v Version) String() string { return v.raw }

// IsZero reports whether v is the zero Version (never parsed).
func (v Version) IsZero() bool { return v.raw == "" && v.segs == nil }

// Prerelease reports whether v has letters in it, like "1.0.0.beta1".
func (v Version) Prerelease() bool {
	for _, s := range v.segs {
		if !s.num {
			return true
		}
	}
	return false
}

// Compare returns -1 when a < b, 0 when they are equal and +1 when a > b.
// Trailing zeros do not count ("1.0" equals "1.0.0"), a letter segment sorts
// before a number ("1.0.beta" < "1.0" < "1.0.1") and letters compare
// byte-wise, all as in Gem::Version#<=>.
func Compare(a, b Version) int {
	x, y := a.canonical(), b.canonical()
	for i := 0; i < len(x) || i < len(y); i++ {
		l, r := segment{num: true}, segment{num: true}
		if i < len(x) {
			l = x[i]
		}
		if i < len(y) {
			r = y[i]
		}
		if c := compareSegment(l, r); c != 0 {
			return c
		}
	}
	return 0
}

// canonical is Gem::Version#canonical_segments: the release part and the
// prerelease part, each without trailing zeros.
func (v Version) canonical() []segment {
	i := 0
	for i < len(v.segs) && v.segs[i].num {
		i++
	}
	out := append([]segment(nil), trimZeros(v.segs[:i])...)
	return append(out, trimZeros(v.segs[i:])...)
}

// trimZeros drops the numeric zeros at the end of segs.
func trimZeros(segs []segment) []segment {
	for len(segs) > 0 && segs[len(segs)-1].num && segs[len(segs)-1].value == "" {
		segs = segs[:len(segs)-1]
	}
	return segs
}

// compareSegment orders two segments: letters before numbers, numbers by
// value, letters byte-wise.
func compareSegment(l, r segment) int {
	switch {
	case l.num && r.num:
		if len(l.value) != len(r.value) {
			if len(l.value) < len(r.value) {
				return -1
			}
			return 1
		}
		return strings.Compare(l.value, r.value)
	case l.num:
		return 1
	case r.num:
		return -1
	default:
		return strings.Compare(l.value, r.value)
	}
}

// release is v without its prerelease part (Gem::Version#release).
func (v Version) release() Version {
	i := len(v.segs)
	for j, s := range v.segs {
		if !s.num {
			i = j
			break
		}
	}
	return Version{segs: v.segs[:i:i]}
}

// bump is the upper bound of "~> v" (Gem::Version#bump): the prerelease
// part and the last number are dropped (unless only one is left) and the
// new last number is incremented, so 1.2.3 gives 1.3 and 1.2 gives 2.
func (v Version) bump() Version {
	segs := append([]segment(nil), v.release().segs...)
	if len(segs) > 1 {
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 0 {
		segs = []segment{{num: true}}
	}
	last := &segs[len(segs)-1]
	last.value = incDecimal(last.value)
	return Version{segs: segs}
}

// incDecimal adds one to a decimal number written without leading zeros
// ("" is 0).
func incDecimal(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// Constraint is one condition of a box_version, such as ">= 1.2".
type Constraint struct {
	Op      string // one of =, !=, >, <, >=, <=, ~>
	Version Version
}

// Constraints is a box_version: every Constraint must hold. The empty
// Constraints allows any version.
type Constraints []Constraint

// constraintOps are the operators of a box_version, as in Gem::Requirement.
var constraintOps = []string{"=", "!=", ">", "<", ">=", "<=", "~>"}

// ParseConstraints parses a box_version as Vagrant does: comma-separated
// conditions that must all hold, each an operator (=, !=, >, <, >=, <=, ~>)
// and a version; a bare version means "=". "~> 1.2" means ">= 1.2, < 2.0"
// and "~> 1.2.3" means ">= 1.2.3, < 1.3". An empty or blank string allows
// any version.
func ParseConstraints(s string) (Constraints, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var cs Constraints
	for _, part := range strings.Split(s, ",") {
		c, err := parseConstraint(part)
		if err != nil {
			return nil, fmt.Errorf("box_version %q: %w", s, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// parseConstraint parses one comma-separated part of a box_version.
func parseConstraint(part string) (Constraint, error) {
	p := strings.TrimSpace(part)
	if p == "" {
		return Constraint{}, fmt.Errorf("empty condition (want an operator and a version, like \">= 1.2\")")
	}
	end := 0
	for end < len(p) && strings.IndexByte("=!<>~", p[end]) >= 0 {
		end++
	}
	op := p[:end]
	if op == "" {
		op = "="
	} else if !isConstraintOp(op) {
		return Constraint{}, fmt.Errorf("%q: unknown operator %q (want one of %s)", p, op, strings.Join(constraintOps, ", "))
	}
	rest := strings.TrimSpace(p[end:])
	if rest == "" {
		return Constraint{}, fmt.Errorf("%q: no version after %q", p, op)
	}
	v, err := Parse(rest)
	if err != nil {
		return Constraint{}, err
	}
	return Constraint{Op: op, Version: v}, nil
}

// isConstraintOp reports whether op is a known operator.
func isConstraintOp(op string) bool {
	for _, o := range constraintOps {
		if o == op {
			return true
		}
	}
	return false
}

// Check reports whether v satisfies every constraint.
func (cs Constraints) Check(v Version) bool {
	for _, c := range cs {
		if !c.Check(v) {
			return false
		}
	}
	return true
}

// String returns the constraints in canonical form, such as
// ">= 1.2, < 2"; the empty Constraints prints as "".
func (cs Constraints) String() string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// Check reports whether v satisfies c. An unknown operator never holds.
func (c Constraint) Check(v Version) bool {
	n := Compare(v, c.Version)
	switch c.Op {
	case "=", "":
		return n == 0
	case "!=":
		return n != 0
	case ">":
		return n > 0
	case "<":
		return n < 0
	case ">=":
		return n >= 0
	case "<=":
		return n <= 0
	case "~>":
		// Gem::Requirement: v >= r and v.release < r.bump.
		return n >= 0 && Compare(v.release(), c.Version.bump()) < 0
	}
	return false
}

// String returns c as "OP VERSION", such as "~> 1.2".
func (c Constraint) String() string {
	op := c.Op
	if op == "" {
		op = "="
	}
	return op + " " + c.Version.String()
}

// Order is the total order of version strings den uses everywhere (the
// box store's listings, the newest installed version, prune): RubyGems
// rules for versions Parse takes; versions it cannot parse sort before
// all others, in plain string order; equal versions written differently
// ("1.0", "1.0.0") fall back to string order.
func Order(a, b string) int {
	va, ea := Parse(a)
	vb, eb := Parse(b)
	switch {
	case ea == nil && eb == nil:
		if c := Compare(va, vb); c != 0 {
			return c
		}
	case ea == nil:
		return 1
	case eb == nil:
		return -1
	}
	return strings.Compare(a, b)
}

// Satisfies reports whether the version string v matches cs; a version
// Parse cannot take matches only the empty constraints.
func Satisfies(v string, cs Constraints) bool {
	if len(cs) == 0 {
		return true
	}
	pv, err := Parse(v)
	return err == nil && cs.Check(pv)
}

// Newer reports whether v is newer than installed. A v that Parse cannot
// take is never newer; an installed version it cannot take is older than
// any it can (as in Order).
func Newer(v, installed string) bool {
	a, err := Parse(v)
	if err != nil {
		return false
	}
	b, err := Parse(installed)
	return err != nil || Compare(a, b) > 0
}

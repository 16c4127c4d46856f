package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// MaxAutostartDelay bounds autostart_delay: a boot that waits longer
// between machines is a mistake.
const MaxAutostartDelay = time.Hour

// autostart decodes autostart, autostart_order and autostart_delay.
func (l *loader) autostart(ly *layer, attrs hcl.Attributes) {
	if a := attrs["autostart"]; a != nil {
		if v, ok := l.value(a, cty.Bool); ok {
			b := v.True()
			ly.autostart = &b
		}
	}
	if a := attrs["autostart_order"]; a != nil {
		if n, ok := l.wholeNumber(a, -1<<31, 1<<31-1, "Invalid autostart_order",
			"autostart_order must be a whole number, e.g. 10: 'den autostart' brings machines of a lower order up first (LXC's lxc.start.order); the default is 0."); ok {
			order := int(n)
			ly.order = &order
		}
	}
	if a := attrs["autostart_delay"]; a != nil {
		maxDelay := int64(MaxAutostartDelay / time.Second)
		if n, ok := l.wholeNumber(a, 0, maxDelay, "Invalid autostart_delay",
			fmt.Sprintf("autostart_delay must be a whole number of seconds from 0 to %d, e.g. 5: how long 'den autostart' waits after this machine's order group is up before it starts the next group (LXC's lxc.start.delay).", maxDelay)); ok {
			d := time.Duration(n) * time.Second
			ly.delay = &d
		}
	}
}

// wholeNumber evaluates a as a whole number in [lo, hi]; another number is
// the error summary, detail.
func (l *loader) wholeNumber(a *hcl.Attribute, lo, hi int64, summary, detail string) (int64, bool) {
	v, ok := l.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || i < lo || i > hi {
		l.errorf(a.Expr.Range(), summary, "%s", detail)
		return 0, false
	}
	return i, true
}

package lxc

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	golxc "github.com/lxc/go-lxc"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
)

// den freezes and thaws containers through their cgroup's freezer itself,
// and polls it every few milliseconds: liblxc alone polls a v1 freezer with
// sleep(1), so a freeze not done at its first look costs a second. It reads
// the freezer back for every state it reports, and thaws by writing the
// freezer whatever liblxc's monitor believes, so a den killed half way
// through a freeze (a snapshot's copy, say) leaves a machine that resume,
// halt and destroy still handle.

// freezerState reads the freezer: FROZEN, FREEZING or THAWED ("" when it
// cannot be read).
func freezerState(c *golxc.Container) string {
	if host.CgroupLayout() == host.CgroupV2 {
		switch cgroupEvent(c, "frozen") {
		case "1":
			return "FROZEN"
		case "0":
			if firstItem(c.CgroupItem("cgroup.freeze")) == "1" {
				return "FREEZING"
			}
			return "THAWED"
		}
		return ""
	}
	return firstItem(c.CgroupItem("freezer.state"))
}

// setFreezer writes the freezer (frozen or thawed) and waits, up to 10 s,
// until it is there.
func setFreezer(ctx context.Context, c *golxc.Container, frozen bool) error {
	key, value, want := "freezer.state", "THAWED", "THAWED"
	if frozen {
		value, want = "FROZEN", "FROZEN"
	}
	if host.CgroupLayout() == host.CgroupV2 {
		key, value = "cgroup.freeze", "0"
		if frozen {
			value = "1"
		}
	}
	if err := c.SetCgroupItem(key, value); err != nil {
		return fmt.Errorf("write %s = %s: %w", key, value, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := provider.WaitFor(wctx, 5*time.Millisecond, func() bool { return freezerState(c) == want }); err != nil {
		return fmt.Errorf("the freezer did not reach %s (it is %s): %w", want, freezerState(c), err)
	}
	return nil
}

// freeze stops every process of the container where it is.
func freeze(ctx context.Context, c *golxc.Container) error { return setFreezer(ctx, c, true) }

// thaw resumes a frozen or freezing container, then tells liblxc's
// monitor (lxc-info reads it there) when it still thinks it frozen.
func thaw(ctx context.Context, c *golxc.Container) error {
	if err := setFreezer(ctx, c, false); err != nil {
		return err
	}
	if s := c.State(); s == golxc.FROZEN || s == golxc.FREEZING {
		c.Unfreeze()
	}
	return nil
}

// firstItem is the first line of a cgroup file's value, trimmed.
func firstItem(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(v[0])
}

// cgroupEvent reads one key of a v2 cgroup.events file.
func cgroupEvent(c *golxc.Container, key string) string {
	for _, l := range c.CgroupItem("cgroup.events") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok && k == key {
			return v
		}
	}
	return ""
}

// Freeze suspends the container's processes (freezer cgroup), then lets
// liblxc's Freeze find it frozen, which records the state in LXC's monitor.
func (p *Provider) Freeze(ctx context.Context, name string) error {
	c, err := p.open(name)
	if err != nil {
		return err
	}
	defer c.Release()
	if st := p.state(c); st != provider.Running {
		return fmt.Errorf("freeze %q: it is %s", name, st)
	}
	if err := freeze(ctx, c); err != nil {
		return fmt.Errorf("freeze %q: %w (see %s)", name, err, p.logFile(name))
	}
	c.Freeze()
	return nil
}

// Unfreeze resumes a frozen container, whatever left it frozen.
func (p *Provider) Unfreeze(ctx context.Context, name string) error {
	c, err := p.open(name)
	if err != nil {
		return err
	}
	defer c.Release()
	if err := thaw(ctx, c); err != nil {
		return fmt.Errorf("thaw %q: %w", name, err)
	}
	return nil
}

// frozenFor runs fn with the container frozen through its cgroup, and
// thaws it afterwards on every path (fn failing, ctx ending). A den killed
// meanwhile leaves it frozen: State reports it, and resume, halt and
// destroy thaw it.
func (p *Provider) frozenFor(ctx context.Context, name string, fn func() (int64, error)) (n int64, err error) {
	c, err := p.open(name)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	if err := freeze(ctx, c); err != nil {
		thaw(context.WithoutCancel(ctx), c)
		return 0, fmt.Errorf("freeze %q for a consistent copy: %w (see %s)", name, err, p.logFile(name))
	}
	defer func() {
		if terr := thaw(context.WithoutCancel(ctx), c); terr != nil {
			terr = fmt.Errorf("thaw %q after the copy: %w; run 'den resume'", name, terr)
			if err == nil {
				err = terr
			} else {
				err = fmt.Errorf("%w (and %v)", err, terr)
			}
		}
	}()
	return fn()
}

var _ provider.Limiter = (*Provider)(nil)

// SetLimits writes the memory limit and cpuset of a running container's
// cgroup. Start writes them into its config too, so they hold after a
// restart.
func (p *Provider) SetLimits(ctx context.Context, name string, memory int64, cpus int) error {
	c, err := p.open(name)
	if err != nil {
		return err
	}
	defer c.Release()
	if st := p.state(c); st != provider.Running {
		return fmt.Errorf("set limits of %q: it is %s", name, st)
	}
	memKey, none, cpuKey := "memory.limit_in_bytes", "-1", "cpuset.cpus"
	if host.CgroupLayout() == host.CgroupV2 {
		memKey, none = "memory.max", "max"
	}
	mem := none
	if memory > 0 {
		mem = strconv.FormatInt(memory, 10)
	}
	if err := c.SetCgroupItem(memKey, mem); err != nil {
		return fmt.Errorf("set %s of %q to %s: %w (memory in use above the new limit cannot be taken back: 'den reload' restarts the machine with it)", memKey, name, mem, err)
	}
	var set string
	if cpus > 0 {
		set, err = cpuset(cpus)
	} else {
		var b []byte
		b, err = os.ReadFile("/sys/devices/system/cpu/online")
		set = strings.TrimSpace(string(b))
	}
	if err != nil {
		return err
	}
	if err := c.SetCgroupItem(cpuKey, set); err != nil {
		return fmt.Errorf("set %s of %q to %s: %w", cpuKey, name, set, err)
	}
	return nil
}

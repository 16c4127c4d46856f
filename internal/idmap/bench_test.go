//go:build linux

package idmap

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkBoot measures lxc-start to sshd's banner and to systemd
// "running", for a fresh machine each time, privileged and unprivileged
// in turn (their order alternating), each with the project folder at /den.
// Run it with a count of rounds:
//
//	DEN_TEST_BOX=... go test -run '^$' -bench Boot -benchtime 5x ./internal/idmap
func BenchmarkBoot(b *testing.B) {
	boxFile := needBoot(b)
	rootfs := sharedBox(b, boxFile)
	block := reserveBlock(b)
	tmp, err := os.MkdirTemp("", "den-idmap-bench-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(tmp, 0o755)
	b.Cleanup(func() {
		if left := mountsUnder(tmp); len(left) == 0 {
			os.RemoveAll(tmp)
		} else {
			b.Errorf("mounts left under %s: %v", tmp, left)
		}
	})
	project := newProject(b, tmp)
	pins := filepath.Join(tmp, "pins")
	os.Mkdir(pins, 0o711)
	samples := map[string][]time.Duration{}
	for i := range b.N {
		kinds := []bool{false, true}
		if i%2 == 1 {
			kinds = []bool{true, false}
		}
		for _, unpriv := range kinds {
			name := "privileged"
			if unpriv {
				name = "unprivileged"
			}
			started, ssh, running, setup := bootOnce(b, tmp, rootfs, project, pins, block, unpriv)
			samples[name+"-ms-started"] = append(samples[name+"-ms-started"], started)
			samples[name+"-ms-ssh"] = append(samples[name+"-ms-ssh"], ssh)
			samples[name+"-ms-running"] = append(samples[name+"-ms-running"], running)
			if unpriv {
				samples["unprivileged-ms-setup"] = append(samples["unprivileged-ms-setup"], setup)
			}
		}
	}
	keys := slices.Sorted(maps.Keys(samples))
	for _, k := range keys {
		v := samples[k]
		slices.Sort(v)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(v[len(v)/2]), k+"-median")
		// Printed, not logged: a benchmark's log is cut after ten lines.
		fmt.Printf("%s: median %.0f, min %.0f, max %.0f (%d rounds)\n", k, ms(v[len(v)/2]), ms(v[0]), ms(v[len(v)-1]), len(v))
	}
}

// bootOnce makes, boots and destroys one machine. started is when
// lxc-start returned (LXC reports the container running), ssh when sshd
// answered, running when systemd said so. setup is what the unprivileged
// one costs before lxc-start: a user namespace, two idmapped mounts and
// the /den pin.
func bootOnce(b *testing.B, tmp, rootfs, project, pins string, block Block, unpriv bool) (started, ssh, running, setup time.Duration) {
	m := newTestMachine(b, tmp, rootfs, 0, project)
	defer m.destroy(b)
	m.prepare(b)
	if unpriv {
		base, err := block.Pick(nil, m.name)
		if err != nil {
			b.Fatal(err)
		}
		m.base = base
		t0 := time.Now()
		m.pin = filepath.Join(pins, m.name)
		ownerMap, err := OwnerMap(base, projectOwner)
		if err != nil {
			b.Fatal(err)
		}
		if err := Pin(ownerMap, m.pin); err != nil {
			b.Fatal(err)
		}
		m.mountLayers(b, filepath.Join(tmp, "mnt"))
		setup = time.Since(t0)
	}
	began := m.start(b)
	started = time.Since(began)
	if !waitFor(30*time.Second, func() bool { return portOpen(m.addr, 22) }) {
		b.Fatal("sshd did not answer")
	}
	ssh = time.Since(began)
	if state, ok := m.waitRunning(60 * time.Second); !ok {
		b.Fatalf("systemd is %q", state)
	}
	running = time.Since(began)
	return started, ssh, running, setup
}

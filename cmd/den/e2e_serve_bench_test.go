//go:build denbench

package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// TestE2EServeBench prints den serve's figures for scripts/bench.sh (it
// is built only with -tags denbench, so the test suite neither runs nor
// skips it): the round trip of GET machine state on the
// socket, and `den up` of a new machine run by a user through the server
// against root's den up, medians of DEN_BENCH_ROUNDS rounds (default 5).
func TestE2EServeBench(t *testing.T) {
	w := newServeWorld(t)
	rounds := 5
	if n := os.Getenv("DEN_BENCH_ROUNDS"); n != "" {
		if _, err := fmt.Sscan(n, &rounds); err != nil {
			t.Fatal(err)
		}
	}
	u := w.newUser("denbench")
	hcl := "box = \"debian/bookworm\"\nmemory = \"512M\"\n"
	viaServer := w.project(u, "viaserver", hcl)
	direct := w.project(nil, "direct", hcl)
	var server, cli []float64
	for i := 0; i < rounds; i++ {
		start := time.Now()
		if r := w.den(u, viaServer, "up"); r.code != 0 {
			t.Fatalf("up through den serve: %s", r.err)
		}
		server = append(server, time.Since(start).Seconds())
		start = time.Now()
		mustDen(t, direct, "up")
		cli = append(cli, time.Since(start).Seconds())
		if i < rounds-1 {
			w.den(u, viaServer, "destroy", "-f")
			mustDen(t, direct, "destroy", "-f")
		}
	}
	// GET state round trips on the socket, the machine running.
	c := w.client()
	ctx := context.Background()
	p, err := c.RegisterProject(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	var rtt []float64
	for i := 0; i < 50; i++ { // warm the connection
		c.MachineState(ctx, p.ID, "default")
	}
	for i := 0; i < 1000; i++ {
		start := time.Now()
		if _, err := c.MachineState(ctx, p.ID, "default"); err != nil {
			t.Fatal(err)
		}
		rtt = append(rtt, time.Since(start).Seconds()*1000)
	}
	ms, us := median(server), median(cli)
	t.Logf("BENCH %-44s %10.3f", "den serve: GET machine state (ms, median)", median(rtt))
	t.Logf("BENCH %-44s %10.3f", "den serve: GET machine state (ms, p99)", pct(rtt, 0.99))
	t.Logf("BENCH %-44s %10.3f", "den up through den serve (s, new machine)", ms)
	t.Logf("BENCH %-44s %10.3f", "den up as root, directly (s, new machine)", us)
	t.Logf("BENCH %-44s %10.3f", "ratio server / direct", ms/us)
}

func median(xs []float64) float64 { return pct(xs, 0.5) }

func pct(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[int(q*float64(len(s)-1)+0.5)]
}

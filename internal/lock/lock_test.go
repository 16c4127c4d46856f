package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/errdefs"
)

func TestSecondHolderWaitsThenNamesTheFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	first, err := Acquire(context.Background(), path, "den up", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), path, "den destroy", 100*time.Millisecond)
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire: %v", err)
	}
	want := fmt.Sprintf("pid %d (den up)", os.Getpid())
	if held.Holder != want || !strings.Contains(err.Error(), want) {
		t.Errorf("holder %q, error %q; want %q", held.Holder, err, want)
	}

	// Once the first lets go, a waiting second one gets the lock.
	done := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path, "den halt", 10*time.Second)
		if err == nil {
			err = l.Unlock()
		}
		done <- err
	}()
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("waiting Acquire: %v", err)
	}
}

func TestAcquireStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(context.Background(), path, "den up", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Acquire(ctx, path, "den up", time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled context: %v", err)
	}
}

func TestLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "lock")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if l, err := Acquire(context.Background(), link, "den halt", time.Second); err == nil {
		l.Unlock()
		t.Fatal("Acquire followed a symlinked lock file")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the link's target was changed: %q", b)
	}
}

func TestSharedAndExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.lock")
	ctx := context.Background()
	a, err := AcquireShared(ctx, path, "den up", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AcquireShared(ctx, path, "den up", time.Second)
	if err != nil {
		t.Fatalf("second shared holder: %v", err)
	}
	if _, err := Acquire(ctx, path, "den box remove", 100*time.Millisecond); errdefs.KindOf(err) != errdefs.Locked {
		t.Fatalf("exclusive while shared held: %v (kind %q)", err, errdefs.KindOf(err))
	}
	a.Unlock()
	b.Unlock()
	x, err := Acquire(ctx, path, "den box remove", time.Second)
	if err != nil {
		t.Fatalf("exclusive after the shared holders left: %v", err)
	}
	if _, err := AcquireShared(ctx, path, "den up", 100*time.Millisecond); !errors.Is(err, ErrHeld) {
		t.Fatalf("shared while exclusive held: %v", err)
	}
	x.Unlock()
}

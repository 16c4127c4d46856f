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

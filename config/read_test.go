package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fsutil"
)

// within fails the test when f does not return in time: reads must never
// block.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("blocked")
		return nil
	}
}

// sparse makes a file of size bytes without writing them.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesNonRegularAndHugeFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "rekey.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.yaml")
	sparse(t, huge, MaxConfigSize+1)
	for path, want := range map[string]string{
		fifo:        "is a named pipe (FIFO), not a regular file",
		"/dev/zero": "is a character device, not a regular file",
		dir:         "is a directory, not a regular file",
		huge:        "larger than the 64 MiB limit",
	} {
		start := time.Now()
		err := within(t, func() error { _, err := Load(path); return err })
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error naming the path and %q", path, err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Load(%s) took %s", path, d)
		}
	}
}

func TestSecretResolveFileRefusesNonRegularAndHugeFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	sparse(t, huge, MaxSecretFileSize+1)
	for path, want := range map[string]error{
		fifo:        fsutil.ErrNotRegular,
		"/dev/zero": fsutil.ErrNotRegular, // grew memory until the process was killed
		huge:        fsutil.ErrTooLarge,
	} {
		for _, resolve := range []func(Secret) error{
			func(s Secret) error { _, err := s.Resolve(); return err },
		} {
			ref := "file:" + path
			err := within(t, func() error { return resolve(Secret{Ref: ref}) })
			if !errors.Is(err, want) || !strings.Contains(err.Error(), ref) {
				t.Errorf("Resolve(%s) = %v, want %v naming the reference", ref, err, want)
			}
		}
	}
}

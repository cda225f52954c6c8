package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fsutil/fsutiltest"

	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

// TestNonRegularPathIsRefused: a FIFO or device at the path (or behind a
// symlink there) is never read, never replaced and never blocks; every
// call fails permanently, naming what the path is, and on_change never
// runs.
func TestNonRegularPathIsRefused(t *testing.T) {
	type node struct {
		name, want string
		make       func(t *testing.T, path string)
	}
	mkfifo := func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []node{
		{"FIFO", "is a named pipe (FIFO), not a regular file", mkfifo},
		{"SymlinkToFIFO", "is a named pipe (FIFO), not a regular file", func(t *testing.T, path string) {
			mkfifo(t, path+".fifo")
			if err := os.Symlink(path+".fifo", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"CharDevice", "is a character device, not a regular file", func(t *testing.T, path string) {
			// A node of its own (like /dev/null, 1:3), so that a sink that
			// replaced it could do no harm.
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
				t.Skipf("cannot make a device node here: %v", err)
			}
		}},
		{"Directory", "is a directory, not a regular file", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, n := range nodes {
		for _, format := range []string{FormatDotenv, FormatRaw} {
			t.Run(n.name+"/"+format, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.env")
				n.make(t, path)
				c := Config{Path: path, Format: format, Key: "K", OnChange: []string{hook(t, dir, "")}}
				if format == FormatRaw {
					c.Key = ""
				}
				s := newSink(t, c)
				target, _ := filepath.EvalSymlinks(path)
				before, err := os.Lstat(target)
				if err != nil {
					t.Fatal(err)
				}
				v := sinktest.Value(t, "v")

				err = fsutiltest.Within(t, func() error { _, err := s.Put(context.Background(), v, "rot-1"); return err })
				if !isPermanent(err) || !strings.Contains(err.Error(), n.want) {
					t.Errorf("Put: %v, want a permanent error saying it %s", err, n.want)
				}
				err = fsutiltest.Within(t, func() error { _, err := s.Get(context.Background()); return err })
				if !isPermanent(err) || errors.Is(err, sinks.ErrNotFound) || !strings.Contains(err.Error(), n.want) {
					t.Errorf("Get: %v, want a permanent error saying it %s", err, n.want)
				}
				if err := fsutiltest.Within(t, func() error { return s.Preflight(context.Background()) }); err == nil {
					t.Errorf("Preflight passed")
				}
				after, err := os.Lstat(target)
				if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
					t.Errorf("%s was replaced: %v → %v (%v)", target, before.Mode(), after.Mode(), err)
				}
				if n := runs(t, dir); n != 0 {
					t.Errorf("on_change ran %d times", n)
				}
			})
		}
	}
}

func TestTooLargeFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil { // sparse: refusing must not read it
		t.Fatal(err)
	}
	f.Close()
	s := newSink(t, Config{Path: path, Key: "K"})
	start := time.Now()
	_, err = s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1")
	if !isPermanent(err) || !strings.Contains(err.Error(), "larger than the 16 MiB limit") {
		t.Errorf("Put: %v, want a permanent error naming the 16 MiB limit", err)
	}
	if _, err := s.Get(context.Background()); !isPermanent(err) {
		t.Errorf("Get: %v, want permanent", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing took %s", d)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != MaxFileSize+1 {
		t.Errorf("the file changed: %v", err)
	}
}

// TestPathThatCannotExist: a parent component that is a regular file is a
// clear, permanent error from every call, not "not found".
func TestPathThatCannotExist(t *testing.T) {
	dir := t.TempDir()
	parent := filepath.Join(dir, "etc")
	write(t, parent, "I am a file\n", 0o600)
	path := filepath.Join(parent, "crm", "app.env")
	s := newSink(t, Config{Path: path, Key: "K"})
	want := path + " cannot exist: " + parent + " is not a directory"

	err := fsutiltest.Within(t, func() error { _, err := s.Get(context.Background()); return err })
	if !isPermanent(err) || errors.Is(err, sinks.ErrNotFound) || !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Get: %v, want a permanent error saying %q", err, want)
	}
	_, err = s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1")
	if !isPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("Put: %v, want a permanent error saying %q", err, want)
	}
	if err := s.Preflight(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Preflight: %v, want %q", err, want)
	}
	if got := read(t, parent); got != "I am a file\n" {
		t.Errorf("the parent file changed")
	}
}

// TestOnChangeErrorAfterWriteIsNotPermanent: a permanent error means Put
// changed nothing (sinks.Sink), so a hook that fails to start after the
// write (its interpreter is gone) gives a retryable error.
func TestOnChangeErrorAfterWriteIsNotPermanent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	script := filepath.Join(dir, "hook")
	if err := os.WriteFile(script, []byte("#!"+filepath.Join(dir, "no-such-shell")+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{script}})
	v := sinktest.Value(t, "v")
	_, err := s.Put(context.Background(), v, "rot-1")
	if err == nil || isPermanent(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Put: %v, want a retryable error from starting on_change", err)
	}
	if got := read(t, path); got != "K="+v.Reveal()+"\n" {
		t.Errorf("the file was not written")
	}
}

package fsutil

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fsutil/fsutiltest"
)

func readErr(t *testing.T, path string, max int64) error {
	t.Helper()
	return fsutiltest.Within(t, func() error {
		if _, err := ReadRegular(path, max); err != nil {
			return err
		}
		return errors.New("ReadRegular succeeded")
	})
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, link} {
		b, err := ReadRegular(path, 10) // exactly at the cap
		if err != nil || string(b) != "0123456789" {
			t.Fatalf("ReadRegular(%s) = %d bytes, %v; want the 10 bytes", path, len(b), err)
		}
	}
	if _, err := ReadRegular(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestReadRegularRefusesOtherKinds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fifoLink := filepath.Join(dir, "fifo-link")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		fifo:        "is a named pipe (FIFO), not a regular file",
		fifoLink:    "is a named pipe (FIFO), not a regular file",
		"/dev/zero": "is a character device, not a regular file",
		dir:         "is a directory, not a regular file",
		sock:        "is a socket, not a regular file",
	} {
		err := readErr(t, path, 1<<20)
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", path, err)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q, want the path and %q", path, err, want)
		}
	}
}

func TestReadRegularCap(t *testing.T) {
	dir := t.TempDir()
	// A sparse file: refusing it must not read it.
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	const max = 64 << 20
	if err := f.Truncate(8 * max); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	err = readErr(t, big, max)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "64 MiB") || !strings.Contains(err.Error(), big) {
		t.Fatalf("%v, want ErrTooLarge naming the path and the 64 MiB cap", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a too-large file took %s; it must not read the file", d)
	}

	// A file whose size stat does not tell (procfs): the read itself stops
	// at the cap.
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if err := readErr(t, "/proc/self/status", 16); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("/proc/self/status with a 16-byte cap: %v, want ErrTooLarge", err)
	}
}

func TestWriteFileNeverReplacesOtherKinds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The link is what WriteFile would replace if it did not check, so
	// /dev/null itself is never at risk.
	null := filepath.Join(dir, "null")
	if err := os.Symlink("/dev/null", null); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, null} {
		err := WriteFile(path, []byte("x"), 0o600)
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("WriteFile(%s) = %v, want ErrNotRegular", path, err)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().IsRegular() {
			t.Fatalf("%s was replaced: %v %v", path, fi.Mode(), err)
		}
	}
	if fi, _ := os.Lstat(fifo); fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("fifo is now %v", fi.Mode())
	}
	if fi, _ := os.Lstat(null); fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("link is now %v", fi.Mode())
	}
}

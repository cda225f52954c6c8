package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/fsutil/fsutiltest"

	"github.com/rekeyhq/rekey/internal/fsutil"
)

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
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
		err := fsutiltest.Within(t, func() error { _, err := Load(path); return err })
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
			func(s Secret) error { _, err := s.ResolvePrivate(); return err },
		} {
			ref := "file:" + path
			err := fsutiltest.Within(t, func() error { return resolve(Secret{Ref: ref}) })
			if !errors.Is(err, want) || !strings.Contains(err.Error(), ref) {
				t.Errorf("Resolve(%s) = %v, want %v naming the reference", ref, err, want)
			}
		}
	}
}

func TestSecretResolvePrivateRefusesSharedFile(t *testing.T) {
	dir := t.TempDir()
	const value = "c3RhdGUta2V5LXRoYXQtbXVzdC1ub3QtbGVhaw=="
	key := filepath.Join(dir, "state.key")
	if err := os.WriteFile(key, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.key") // a symlink's own mode is 0777: the target's counts
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"file:" + key, "file:" + link} {
		if v, err := (Secret{Ref: ref}).ResolvePrivate(); err != nil || v.Reveal() != value {
			t.Fatalf("ResolvePrivate(%s) on a 0600 file: got the value %v, %v", ref, v.Reveal() == value, err)
		}
	}
	refused := func(mode os.FileMode) {
		t.Helper()
		_, err := Secret{Ref: "file:" + key}.ResolvePrivate()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o, but group and others must have no access; run: chmod 600 %s", mode, key)) {
			t.Errorf("mode %04o: ResolvePrivate = %v, want the chmod 600 fix", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), value) {
			t.Errorf("mode %04o: the error holds the key", mode)
		}
		// Resolve, for secrets that are not rekey's own, does not check.
		if _, err := (Secret{Ref: "file:" + key}).Resolve(); err != nil {
			t.Errorf("mode %04o: Resolve = %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o604, 0o644, 0o606, 0o601, 0o444} {
		chmod(t, key, mode)
		refused(mode)
	}
	// A group that is rekey's own may read it (root:rekey 0640 under
	// systemd, fsGroup in a Kubernetes secret volume); another may not.
	chmod(t, key, 0o640)
	if _, err := (Secret{Ref: "file:" + key}).ResolvePrivate(); err != nil {
		t.Errorf("mode 0640, rekey's own group: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the foreign-group case needs chown")
	} else {
		foreign := 54321
		for ownGroup(foreign) {
			foreign++
		}
		if err := os.Chown(key, -1, foreign); err != nil {
			t.Fatal(err)
		}
		refused(0o640)
		chmod(t, key, 0o600)
		if _, err := (Secret{Ref: "file:" + key}).ResolvePrivate(); err != nil {
			t.Errorf("mode 0600, another group: %v", err)
		}
	}
	t.Setenv("REKEY_TEST_STATE_KEY", value)
	if v, err := (Secret{Ref: "env:REKEY_TEST_STATE_KEY"}).ResolvePrivate(); err != nil || v.Reveal() != value {
		t.Errorf("ResolvePrivate(env:) = %v", err)
	}
}

package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rekeyhq/rekey/rotation"
)

// Environment of the helper process: the test binary re-executed to hold a
// lock from another process.
const (
	helperPathEnv = "REKEY_SQLITE_LOCK_HELPER_PATH"
	helperCredEnv = "REKEY_SQLITE_LOCK_HELPER_CREDENTIAL"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperPathEnv); path != "" {
		os.Exit(lockHelper(path, os.Getenv(helperCredEnv)))
	}
	os.Exit(m.Run())
}

// lockHelper takes the lock, says "locked" on stdout and holds the lock
// until it is killed (or its stdin closes).
func lockHelper(path, credential string) int {
	s, err := Open(context.Background(), path, testKey(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if _, err := s.Lock(context.Background(), credential); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n') // block; the parent kills us
	return 0
}

func TestLockSurvivesStoreClose(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	s.Close()
	if _, err := openTest(t, path).Lock(ctx, "a"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock after the holder's Store closed: %v, want ErrBusy", err)
	}
}

func TestLockFileNames(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	names := []string{"production-api", "a/b", "a_b", "../escape", ".hidden", "a b", "ключ", strings.Repeat("x", 300)}
	seen := map[string]string{}
	for _, name := range names {
		file := lockFileName(name)
		if prev, ok := seen[file]; ok {
			t.Errorf("%q and %q share lock file %q", prev, name, file)
		}
		seen[file] = name
		if strings.ContainsAny(file, "/\x00") || strings.HasPrefix(file, ".") || len(file) > 255 {
			t.Errorf("%q: unsafe lock file name %q", name, file)
		}
		unlock, err := s.Lock(ctx, name)
		if err != nil {
			t.Errorf("Lock %q: %v", name, err)
			continue
		}
		defer unlock()
	}
	if got := lockFileName("production-api"); got != "production-api.lock" {
		t.Errorf("plain name mapped to %q", got)
	}
	entries, err := os.ReadDir(path + ".locks")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		t.Errorf("%d lock files for %d names", len(entries), len(names))
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "escape.lock")); err == nil {
		t.Error("a name escaped the locks directory")
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path) // creates the file before the child opens it

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperPathEnv+"="+path, helperCredEnv+"=production-api")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	if _, err := s.Lock(ctx, "production-api"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock held by another process: %v, want ErrBusy", err)
	}
	unlock, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("Lock of another credential: %v", err)
	}
	unlock()

	// kill -9: no chance to unlock; the kernel releases the lock.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	killed = true
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want killed by SIGKILL", err)
	}
	unlock, err = s.Lock(ctx, "production-api")
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	unlock()
}

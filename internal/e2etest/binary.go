// Package e2etest is the kit for rekey's end-to-end tests: the real binary,
// built once per test process, run against the ApexVerify simulator with a
// config world on disk, and the checks of invariants I1–I4 against what the
// simulator recorded.
//
// It is test code that lives outside _test.go files so that cmd/rekey and
// the separate test modules (soak, sinks/vaultkv/vaulttest) can share it;
// nothing outside tests imports it.
package e2etest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// root is the repository's root directory, found from this file's place
// in it (internal/e2etest).
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func buildBinary() {
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "rekey-e2e-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "rekey")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/rekey")
		cmd.Dir = root()
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			build.err = fmt.Errorf("e2etest: build rekey: %w", err)
		}
	})
}

// Main builds the binary, runs the tests and removes the binary again. Call
// it from TestMain, as os.Exit(e2etest.Main(m)), in every package that
// uses Binary or Command; a failed build exits 1 before any test runs.
func Main(m *testing.M) int {
	buildBinary()
	defer func() {
		if build.dir != "" {
			os.RemoveAll(build.dir)
		}
	}()
	if build.err != nil {
		fmt.Fprintln(os.Stderr, build.err)
		return 1
	}
	return m.Run()
}

// Binary returns the path of the rekey binary, built from the repository's
// cmd/rekey once per test process (by Main, or here on first use).
func Binary(t testing.TB) string {
	t.Helper()
	buildBinary()
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Command returns `rekey -c config --log-level debug args...`, not yet
// started. Debug logging makes the leak checks see as much as rekey can
// print.
func Command(t testing.TB, config string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(Binary(t), append([]string{"-c", config, "--log-level", "debug"}, args...)...)
}

// RunTimeout bounds Run: a rekey that runs longer is killed and fails the
// test.
const RunTimeout = 60 * time.Second

// Run runs cmd to its end and returns its exit code (-1 if a signal ended
// it) and what it printed on stdout and stderr. A command that cannot be
// started, or outlives RunTimeout, fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2etest: start rekey: %v", err)
	}
	timer := time.AfterFunc(RunTimeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("e2etest: rekey %v ran longer than %v", cmd.Args[1:], RunTimeout)
	}
	code = ExitCode(err)
	if code == -2 {
		t.Fatalf("e2etest: run rekey: %v", err)
	}
	return code, out.String(), errOut.String()
}

// ExitCode is the exit code a finished command's Wait error stands for: 0
// for nil, -1 for a process a signal ended, -2 for an error that is no exit
// status at all (the command never ran).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -2
}

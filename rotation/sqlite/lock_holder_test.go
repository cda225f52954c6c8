package sqlite

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotation"
)

// TestBusyNamesTheHolder: a Lock that finds the lock held by another
// process says which one (pid, host, since), and still matches ErrBusy.
func TestBusyNamesTheHolder(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	before := time.Now().Add(-time.Second)

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
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	_, err = s.Lock(ctx, "production-api")
	if !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock: %v, want ErrBusy", err)
	}
	var busy *rotation.BusyError
	if !errors.As(err, &busy) || busy.Holder == nil {
		t.Fatalf("Lock: %v, want a BusyError naming the holder", err)
	}
	host, _ := os.Hostname()
	h := busy.Holder
	if h.PID != cmd.Process.Pid || h.Host != host || h.Since.Before(before) || h.Since.After(time.Now()) {
		t.Errorf("holder %+v, want pid %d on %s since about now", h, cmd.Process.Pid, host)
	}
	if busy.Credential != "production-api" {
		t.Errorf("credential %q", busy.Credential)
	}

	// In-process too: the second Lock names this process.
	unlock, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := s.Lock(ctx, "other"); !errors.As(err, &busy) || busy.Holder == nil || busy.Holder.PID != os.Getpid() {
		t.Errorf("in-process busy: %v", err)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/rekeyhq/rekey/internal/e2etest"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// screenLines is what a terminal shows of out, line by line: each line
// as the text after its last carriage return (a \r\033[K erases the line
// and starts it afresh), without colour codes.
func screenLines(out string) []string {
	out = strings.ReplaceAll(out, "\r\n", "\n") // the pty's ONLCR
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		lines = append(lines, ansi.ReplaceAllString(l, ""))
	}
	return lines
}

// TestTerminalProgressAndLogsNeverShareALine runs the real binary under a
// pty (stdout and stderr on one terminal) through a monitoring window in
// which a health check fails once: the warning is logged while the live
// countdown is on screen.
func TestTerminalProgressAndLogsNeverShareALine(t *testing.T) {
	e := newEnv(t, envOptions{window: "3s", interval: "1s"})
	var probes atomic.Int32
	e.setHealthy(func() bool { return probes.Add(1) != 2 })
	cmd := exec.Command(e2etest.Binary(t), "-c", e.Config, "--log-level", "info", "rotate", "prod")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 250})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var raw bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&raw, tty); close(copied) }() // ends with EIO once rekey exits
	timer := time.AfterFunc(e2etest.RunTimeout, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	timer.Stop()
	<-copied
	record(raw.Bytes())
	if err != nil {
		t.Fatalf("rotate under a pty: %v\n%s", err, raw.String())
	}
	// The countdown is on screen between probes; each is then replaced.
	live, warned := strings.Contains(raw.String(), " monitoring: 2s left, "), false
	for _, l := range screenLines(raw.String()) {
		progress := strings.Contains(l, " monitoring: ") && strings.Contains(l, " left, ")
		logLine := strings.Contains(l, "\tINFO\t") || strings.Contains(l, "\tWARN\t")
		if progress && logLine {
			t.Errorf("a progress line and a log line share a line on screen: %q", l)
		}
		if logLine {
			if strings.Contains(l, "\tWARN\thealth check failed") {
				warned = true
			}
			ts, _, _ := strings.Cut(l, "\t")
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Errorf("log time %q is not RFC 3339: %q", ts, l)
			}
		}
	}
	if !live || !warned {
		t.Fatalf("the test saw no live countdown (%v) or no warning logged during it (%v):\n%q", live, warned, raw.String())
	}
	if !strings.Contains(raw.String(), "prod: done (rotation ") {
		t.Errorf("no result line:\n%q", raw.String())
	}
}

// TestOffTerminalEachEventOnce: with stdout and stderr piped, run and
// rotate report each event once, in the JSON log on stderr, and stdout
// holds the answer alone.
func TestOffTerminalEachEventOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i, args := range [][]string{{"run"}, {"rotate", "prod"}} {
		code, out, errOut := e2etest.Run(t, exec.Command(e2etest.Binary(t), append([]string{"-c", e.Config}, args...)...))
		record([]byte(out), []byte(errOut))
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, "done (rotation ") {
			t.Errorf("%v: stdout is not the one result line:\n%s", args, out)
		}
		for _, event := range []string{"monitoring window passed", "phase deployed", "phase done"} {
			if n := strings.Count(out+errOut, event); n != 1 {
				t.Errorf("%v: %q reported %d times, want once:\n%s%s", args, event, n, out, errOut)
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
			var entry struct{ Ts string }
			if err := json.Unmarshal([]byte(l), &entry); err != nil {
				t.Errorf("run %d: stderr line is not JSON: %q", i, l)
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, entry.Ts); err != nil {
				t.Errorf("log time %q is not RFC 3339", entry.Ts)
			}
		}
	}
	// --log-format console off a terminal; a bad value is a usage error.
	code, _, errOut := e2etest.Run(t, exec.Command(e2etest.Binary(t), "-c", e.Config, "--log-format", "console", "rotate", "prod"))
	if code != 0 || !strings.Contains(errOut, "\tINFO\t") || strings.Contains(errOut, "{\"level\"") {
		t.Errorf("--log-format console: exit %d\n%s", code, errOut)
	}
	if code, _, _ := e.cli("--log-format", "xml", "status"); code != exitUsage {
		t.Errorf("--log-format xml: exit %d, want 2", code)
	}
}

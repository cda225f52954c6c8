package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// transcript collects every byte of CLI output and every key value the
// tests saw, so TestMain can check that no output ever held a key (I4).
var transcript struct {
	out    e2etest.SyncBuffer
	values e2etest.Values
}

func record(out ...[]byte) {
	for _, b := range out {
		transcript.out.Write(b)
		transcript.out.Write([]byte{'\n'})
	}
}

func rememberValue(v secret.Value) { transcript.values.Add(v) }

func TestMain(m *testing.M) {
	code := e2etest.Main(m)
	if code == 0 {
		code = checkTranscript()
	}
	os.Exit(code)
}

// checkTranscript is the suite-wide leak test: no key value seen by any
// test appears in any CLI output.
func checkTranscript() int {
	if transcript.values.Len() < 10 || transcript.out.Len() == 0 {
		// Only a partial run (-run) collects few values; that is not a leak.
		return 0
	}
	if leaks := transcript.values.Leaks(transcript.out.String()); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "LEAK: %d key values appear in CLI output\n", len(leaks))
		return 1
	}
	fmt.Fprintf(os.Stderr, "leak check: %d key values, %d bytes of CLI output: none leaked\n", transcript.values.Len(), transcript.out.Len())
	return 0
}

// env is one credential against a simulator, with a file sink and an app
// whose health check reads the file and calls the simulator.
type env struct {
	*e2etest.World
	t      *testing.T
	app    *e2etest.App
	window time.Duration
}

type envOptions struct {
	window, interval string
	// sinks are more YAML sink entries, each a "{...}" flow mapping.
	sinks []string
	// state are more lines of the config's state mapping.
	state []string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, World: e2etest.NewWorld(t, &transcript.values)}
	e.app = e2etest.StartApp(t, func(context.Context) error { return e.client() })
	e.WriteConfig(e2etest.Config{HealthURL: e.app.HealthURL(), Window: o.window, Interval: o.interval, Sinks: o.sinks, State: o.state})
	e.window = 2 * time.Second
	if o.window != "" {
		var err error
		if e.window, err = time.ParseDuration(o.window); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func writeFile(t *testing.T, path, body string) { e2etest.WriteFile(t, path, body) }

func (e *env) setHealthy(f func() bool) { e.app.SetHealthy(f) }

// client reads the key from the file and uses it, as the app would.
func (e *env) client() error {
	v, err := e.File.Get(context.Background())
	if err != nil {
		return err
	}
	rememberValue(v)
	return e.Issuer.Verify(context.Background(), v)
}

// cli runs the CLI in-process: the adapter package main needs, since the
// kit cannot import it.
func (e *env) cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(context.Background(), append([]string{"-c", e.Config}, args...), &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	return code, out.String(), errOut.String()
}

// binary is the real binary with the env's config, not yet started.
func (e *env) binary(args ...string) *exec.Cmd { return e.Rekey(args...) }

// current returns the key in the file.
func (e *env) current() secret.Value { return e.InFile() }

func (e *env) history() []e2etest.HistoryEntry {
	e.t.Helper()
	code, out, errOut := e.cli("history", "prod", "--limit", "0", "-o", "json")
	if code != 0 {
		e.t.Fatalf("history: exit %d: %s", code, errOut)
	}
	h, err := e2etest.ParseHistory([]byte(out))
	if err != nil {
		e.t.Fatalf("history json: %v", err)
	}
	return h
}

// invariants checks I1-I3 against the simulator's key history.
func (e *env) invariants() {
	e.t.Helper()
	e.Invariants(e.history(), e.window)
}

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	code := execute(context.Background(), []string{"demo"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"requests refused  0", "revoked", "authenticates: true", "phase done"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

func TestRotateAndRollback(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, out, errOut := e.cli("rotate", "prod")
	if code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out, errOut)
	}
	e.invariants()
	if k, _ := e.Issuer.Get(context.Background(), e.First.ID); k.Status != issuers.Revoked {
		t.Errorf("adopted old key is %s after rotation, want revoked", k.Status)
	}

	// Now the app turns unhealthy during monitoring: roll back.
	before := e.current()
	e.setHealthy(func() bool { return false })
	code, out, errOut = e.cli("rotate", "prod")
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d\n%s%s", code, out, errOut)
	}
	if !e.current().Equal(before) {
		t.Errorf("file does not hold the old key after rollback")
	}
	if err := e.Issuer.Verify(context.Background(), before); err != nil {
		t.Errorf("old key no longer works after rollback: %v", err)
	}
	e.setHealthy(nil)
	e.invariants()

	code, out, _ = e.cli("status", "-o", "json")
	if code != 0 || !strings.Contains(out, `"last_outcome": "rolled_back"`) {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out, _ = e.cli("status")
	if code != 0 || !strings.Contains(out, "prod") {
		t.Errorf("status table: exit %d\n%s", code, out)
	}
}

func TestRunSkipsWhatIsNotDue(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, out, errOut := e.cli("run"); code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("first run (never rotated: due): exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ := e.cli("run")
	if code != 0 || !strings.Contains(out, "not due until") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if n := len(e.history()); n != 1 {
		t.Errorf("%d rotations after two runs, want 1", n)
	}
}

func TestRotateUnknownCredential(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, _, errOut := e.cli("rotate", "nope"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, _, _ := e.cli("frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
	if code, _, _ := e.cli("rotate", "prod", "--stage", "--finish"); code != 2 {
		t.Fatalf("--stage --finish: exit %d, want 2", code)
	}
}

// TestValidateBadFixtures runs `rekey validate` on every bad config
// fixture: exit 2, with file:line and the field in the message, every
// problem config.Load sees ("# want:") and every problem only an issuer's
// or sink's package sees ("# back-end want:") reported together, and no
// secret ("# secret:") in the output.
func TestValidateBadFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../config/testdata/bad/*.yaml")
	if len(files) < 20 {
		t.Fatalf("only %d bad fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := execute(context.Background(), []string{"-c", f, "validate"}, &out, &errOut)
			record(out.Bytes(), errOut.Bytes())
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, errOut.String())
			}
			base := filepath.Base(f)
			if !strings.Contains(errOut.String(), base+":") {
				t.Errorf("error does not name %s:line: %s", base, errOut.String())
			}
			body, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(body), "\n") {
				want, ok := strings.CutPrefix(line, "# want: ")
				if !ok {
					want, ok = strings.CutPrefix(line, "# back-end want: ")
				}
				if ok && !strings.Contains(errOut.String(), strings.TrimSpace(want)) {
					t.Errorf("error lacks %q:\n%s", want, errOut.String())
				}
				if s, ok := strings.CutPrefix(line, "# secret: "); ok && strings.Contains(errOut.String()+out.String(), s) {
					t.Errorf("output leaks %q:\n%s", s, errOut.String())
				}
			}
		})
	}
}

// TestTwoRotationsAtOnce: two processes rotate one credential; exactly
// one does, the other reports it busy and exits 1 (I5).
func TestTwoRotationsAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := e.binary("rotate", "prod")
	// Off a terminal the events are in the log on stderr.
	var firstOut bytes.Buffer
	stdout, _ := first.StderrPipe()
	first.Stdout = &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first process has journaled its rotation.
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "planned") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("first rotate ended early: %v\n%s", err, seen.String())
		}
	}
	second := e.binary("rotate", "prod")
	out, err := second.CombinedOutput()
	record(out)
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "busy") {
		t.Fatalf("second rotate: exit %d, want 1 busy\n%s", code, out)
	}
	rest, _ := readAll(stdout)
	err = first.Wait()
	record(seen.Bytes(), rest, firstOut.Bytes())
	if code := exitCode(err); code != 0 {
		t.Fatalf("first rotate: exit %d\n%s%s", code, seen.String(), firstOut.String())
	}
	if n := len(e.history()); n != 1 {
		t.Errorf("%d rotations, want exactly 1", n)
	}
	e.invariants()
}

func readAll(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

func exitCode(err error) int { return e2etest.ExitCode(err) }

// TestKillAnywhereThenRun kills the real binary with SIGKILL at random
// moments of a rotation, then runs `rekey run`: every rotation must end done
// or rolled back, with no orphan key, no early revocation, and no client
// ever refused while reading the file (I1, I2, I3, I6).
func TestKillAnywhereThenRun(t *testing.T) {
	const runs = 24
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("kill-%02d", i), func(t *testing.T) { killAndResume(t, i) })
		}()
	}
	wg.Wait()
}

func killAndResume(t *testing.T, i int) {
	e := newEnv(t, envOptions{})
	if i%3 == 2 {
		// Every third run fails its health checks: the kill lands in the
		// rollback path instead.
		e.setHealthy(func() bool { return false })
	}
	// A client reads the file and calls the simulator throughout.
	stop := make(chan struct{})
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for {
			select {
			case <-stop:
				return
			default:
				e.client()
			}
		}
	}()
	defer func() { close(stop); <-clientDone }()

	// Spread the kills over the whole rotation: about 3.5 s in total.
	delay := time.Duration(i) * 3500 * time.Millisecond / 24
	cmd := e.binary("rotate", "prod")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
	cmd.Wait()
	timer.Stop()
	record(out.Bytes())

	e.setHealthy(nil)
	run := e.binary("run")
	b, err := run.CombinedOutput()
	record(b)
	if code := exitCode(err); code != 0 && code != 1 {
		t.Fatalf("rekey run after the kill: exit %d\n%s", code, b)
	}
	e.invariants()
}

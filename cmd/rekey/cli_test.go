package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/file"
)

// rekeyBin is the binary built once for process-level tests.
var rekeyBin string

// transcript collects every byte of CLI output and every key value the
// tests saw, so TestMain can check that no output ever held a key (I4).
var transcript struct {
	sync.Mutex
	out    bytes.Buffer
	values []secret.Value
}

func record(out ...[]byte) {
	transcript.Lock()
	defer transcript.Unlock()
	for _, b := range out {
		transcript.out.Write(b)
		transcript.out.WriteByte('\n')
	}
}

func rememberValue(v secret.Value) {
	transcript.Lock()
	defer transcript.Unlock()
	transcript.values = append(transcript.values, v)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rekey-bin-")
	if err != nil {
		panic(err)
	}
	rekeyBin = filepath.Join(dir, "rekey")
	build := exec.Command("go", "build", "-o", rekeyBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rekey:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		code = checkTranscript()
	}
	os.Exit(code)
}

// checkTranscript is the suite-wide leak test: no key value seen by any
// test appears in any CLI output.
func checkTranscript() int {
	transcript.Lock()
	defer transcript.Unlock()
	if len(transcript.values) < 10 || transcript.out.Len() == 0 {
		// Only a partial run (-run) collects few values; that is not a leak.
		return 0
	}
	text := transcript.out.String()
	for _, v := range transcript.values {
		if strings.Contains(text, v.Reveal()) {
			fmt.Fprintln(os.Stderr, "LEAK: a key value appears in CLI output")
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "leak check: %d key values, %d bytes of CLI output: none leaked\n", len(transcript.values), transcript.out.Len())
	return 0
}

// env is one credential against a simulator, with a file sink and an app
// whose health check reads the file and calls the simulator.
type env struct {
	t        *testing.T
	dir      string
	config   string
	envFile  string
	sim      *apexsim.Sim
	iss      *apexverify.Issuer
	reader   *file.Sink
	healthy  func() bool // guarded by mu; nil means healthy
	oldKey   issuers.Key
	appURL   string
	simURL   string
	mu       sync.Mutex
	refusals int // 401s seen by the app's callers
}

type envOptions struct {
	window, interval string
	// sinks are more YAML sink entries, each a "{...}" flow mapping.
	sinks []string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.window == "" {
		o.window, o.interval = "2s", "1s"
	}
	e := &env{t: t, dir: t.TempDir(), sim: apexsim.New(apexsim.Options{})}
	e.simURL, _ = startSim(t, e.sim)
	var err error
	e.iss, err = apexverify.New(apexverify.Config{BaseURL: e.simURL, ManagementToken: secret.New(e.sim.ManagementToken()), Timeout: 5 * time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	e.envFile = filepath.Join(e.dir, "app.env")
	k, v, err := e.iss.Create(context.Background(), "prod-initial")
	if err != nil {
		t.Fatal(err)
	}
	rememberValue(v)
	e.oldKey = k
	if err := os.WriteFile(e.envFile, []byte("APP=crm\nAPI_KEY="+v.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.reader, err = file.New(file.Config{Path: e.envFile, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.client(); err != nil || !e.isHealthy() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(app.Close)
	e.appURL = app.URL
	key := make([]byte, 32)
	rand.Read(key)
	writeFile(t, filepath.Join(e.dir, "state.key"), base64.StdEncoding.EncodeToString(key))
	writeFile(t, filepath.Join(e.dir, "token"), e.sim.ManagementToken())
	e.config = filepath.Join(e.dir, "rekey.yaml")
	writeFile(t, e.config, fmt.Sprintf(`version: 1
state:
  path: %[1]s/state.db
  encryption_key: file:%[1]s/state.key
issuers:
  sim:
    type: apexverify
    base_url: %[2]s
    management_token: file:%[1]s/token
credentials:
  prod:
    issuer: sim
    label: prod-{{date}}
    rotate_every: 90d
    verify: {timeout: 30s}
    sinks:
      - {type: file, path: %[1]s/app.env, key: API_KEY}
%[6]s    monitor:
      window: %[4]s
      interval: %[5]s
      failure_threshold: 2
      checks:
        - url: %[3]s/healthz
`, e.dir, e.simURL, e.appURL, o.window, o.interval, extraSinks(o.sinks)))
	return e
}

func extraSinks(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("      - " + l + "\n")
	}
	return b.String()
}

func startSim(t *testing.T, sim *apexsim.Sim) (string, func()) {
	url, stop := sim.Start()
	t.Cleanup(stop)
	return url, stop
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *env) setHealthy(f func() bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.healthy = f
}

func (e *env) isHealthy() bool {
	e.mu.Lock()
	f := e.healthy
	e.mu.Unlock()
	return f == nil || f()
}

// client reads the key from the file and uses it, as the app would.
func (e *env) client() error {
	v, err := e.reader.Get(context.Background())
	if err != nil {
		return err
	}
	rememberValue(v)
	if err := e.iss.Verify(context.Background(), v); err != nil {
		e.mu.Lock()
		e.refusals++
		e.mu.Unlock()
		return err
	}
	return nil
}

// cli runs the CLI in-process.
func (e *env) cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(context.Background(), append([]string{"-c", e.config}, args...), &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	return code, out.String(), errOut.String()
}

// binary starts the real binary.
func (e *env) binary(args ...string) *exec.Cmd {
	cmd := exec.Command(rekeyBin, append([]string{"-c", e.config, "--log-level", "debug"}, args...)...)
	return cmd
}

// current returns the key in the file.
func (e *env) current() secret.Value {
	e.t.Helper()
	v, err := e.reader.Get(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

type historyEntry struct {
	ID          string `json:"rotation_id"`
	Phase       string `json:"phase"`
	OldKeyID    string `json:"old_key_id"`
	NewKeyID    string `json:"new_key_id"`
	Transitions []struct {
		Phase string    `json:"phase"`
		At    time.Time `json:"at"`
	} `json:"transitions"`
}

func (e *env) history() []historyEntry {
	e.t.Helper()
	code, out, errOut := e.cli("history", "prod", "-o", "json")
	if code != 0 {
		e.t.Fatalf("history: exit %d: %s", code, errOut)
	}
	var h []historyEntry
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		e.t.Fatalf("history json: %v", err)
	}
	return h
}

// invariants checks I1-I3 against the simulator's key history.
func (e *env) invariants() {
	t := e.t
	t.Helper()
	for _, r := range e.sim.Refusals() {
		if r.Reason != apexsim.RefusedNotYetActive {
			t.Errorf("I3: a client was refused: %+v", r)
		}
	}
	cur := e.current()
	active := 0
	for _, k := range e.sim.Keys() {
		if k.Status == "active" {
			active++
			if k.Prefix != apexverify.Prefix(cur) {
				t.Errorf("I2: orphan key %s (%s)", k.ID, k.Label)
			}
		}
	}
	if active != 1 {
		t.Errorf("I2: %d active keys, want 1", active)
	}
	keys := map[string]apexsim.KeyRecord{}
	for _, k := range e.sim.Keys() {
		keys[k.ID] = k
	}
	for _, h := range e.history() {
		if h.Phase != "done" && h.Phase != "rolled_back" {
			t.Errorf("rotation %s ended %s", h.ID, h.Phase)
		}
		if h.Phase != "done" || h.OldKeyID == "" {
			continue
		}
		var monitoring, revoking time.Time
		for _, tr := range h.Transitions {
			switch tr.Phase {
			case "monitoring":
				monitoring = tr.At
			case "revoking":
				revoking = tr.At
			}
		}
		old := keys[h.OldKeyID]
		if revoking.Sub(monitoring) < 2*time.Second || old.Revoked.Before(revoking) {
			t.Errorf("I1: rotation %s: monitoring %v, revoking %v, old key revoked %v", h.ID, monitoring, revoking, old.Revoked)
		}
	}
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
	if k, _ := e.iss.Get(context.Background(), e.oldKey.ID); k.Status != issuers.Revoked {
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
	if err := e.iss.Verify(context.Background(), before); err != nil {
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
	if code != 0 || !strings.Contains(out, "skipped") {
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
	var firstOut bytes.Buffer
	stdout, _ := first.StdoutPipe()
	first.Stderr = &firstOut
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

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

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

package main

// TestFirstTenMinutes runs the README's "first ten minutes" verbatim: the
// first terminal's block starts `rekey sim`, the second terminal's block
// writes a config and runs validate, plan, rotate, status and history. The
// only change made to either block is the port: the simulator is told to
// pick a free one (--listen 127.0.0.1:0, so that tests running at once do
// not collide on the documented 127.0.0.1:8455), and the second block gets
// the URL the simulator printed in place of http://127.0.0.1:8455.

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/sinks/file"
)

// readmeBlock returns the fenced block that follows the first line of the
// README containing marker.
func readmeBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	m := regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindStringSubmatch(readme[i:])
	if m == nil {
		t.Fatalf("README.md: no ```sh block after %q", marker)
	}
	return m[1]
}

// cleanEnv is the test's environment with PATH starting at dir and no
// REKEY_CONFIG, as a fresh shell would have it.
func cleanEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REKEY_CONFIG=") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestFirstTenMinutes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	term1 := readmeBlock(t, readme, "<!-- first-ten-minutes: terminal 1")
	term2 := readmeBlock(t, readme, "<!-- first-ten-minutes: terminal 2")

	// Terminal 1, with a free port and `exec` so that the signal reaches
	// rekey sim itself.
	lines := strings.Split(term1, "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "rekey sim ") {
		t.Fatalf("terminal 1's last line %q does not start rekey sim", last)
	}
	lines[len(lines)-1] = "exec " + last + " --listen 127.0.0.1:0"
	env := cleanEnv(filepath.Dir(e2etest.Binary(t)))
	work := t.TempDir()
	sim := exec.Command(bash, "-e", "-c", strings.Join(lines, "\n"))
	sim.Dir, sim.Env = work, env
	var simErr e2etest.SyncBuffer
	sim.Stderr = &simErr
	pipe, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	t.Cleanup(func() {
		sim.Process.Kill() // a no-op once it exited
		<-finished
	})

	// Read its lines up to "listening on": that line means ready.
	type simOut struct {
		printed []string
		rest    chan string
	}
	out := simOut{rest: make(chan string, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		isReady := false
		var after []string
		for sc.Scan() {
			if !isReady {
				out.printed = append(out.printed, sc.Text())
				if strings.HasPrefix(sc.Text(), "listening on ") {
					isReady = true
					close(ready)
				}
				continue
			}
			after = append(after, sc.Text())
		}
		io.Copy(io.Discard, pipe)
		if !isReady {
			close(ready)
		}
		out.rest <- strings.Join(after, "\n")
		done <- sim.Wait()
		close(finished)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second): // a bound, not a wait: ready closes as soon as the line comes
		t.Fatalf("rekey sim printed no listening line in 30s; stderr: %s", simErr.String())
	}
	fields := map[string]string{}
	for _, l := range out.printed {
		if k, v, ok := strings.Cut(l, ": "); ok {
			fields[k] = v
		}
	}
	url := fields["url"]
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasPrefix(out.printed[len(out.printed)-1], "listening on "+url) {
		t.Fatalf("rekey sim printed %q; want a url line and a listening line; stderr: %s", out.printed, simErr.String())
	}
	initial := regexp.MustCompile(`^(key_[a-z2-7]{24}) \(`).FindStringSubmatch(fields["initial key"])
	if initial == nil {
		t.Fatalf("rekey sim printed no initial key line: %q", out.printed)
	}
	oldID := initial[1]
	dir := filepath.Join(work, "rekey-dev")
	for _, f := range []string{"sim-token", "app.env"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want mode 0600", f, err, st.Mode().Perm())
		}
	}
	token, err := os.ReadFile(filepath.Join(dir, "sim-token"))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := apexverify.New(apexverify.Config{BaseURL: url, ManagementToken: secret.New(strings.TrimSpace(string(token))), Timeout: 10 * time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	envFile, err := file.New(file.Config{Path: filepath.Join(dir, "app.env"), Format: file.FormatDotenv, Key: "APEXVERIFY_API_KEY"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	first, err := envFile.Get(ctx)
	if err != nil {
		t.Fatalf("app.env: %v", err)
	}
	if k, err := iss.Identify(ctx, first); err != nil || k.ID != oldID {
		t.Fatalf("the key in app.env identifies as %q (%v), want the printed initial key %s", k.ID, err, oldID)
	}

	// Terminal 2, verbatim but for the simulator's URL.
	const docURL = "http://127.0.0.1:8455"
	if strings.Count(term2, docURL) != 1 {
		t.Fatalf("terminal 2 names %s %d times, want once (the issuer's base_url)", docURL, strings.Count(term2, docURL))
	}
	shell := exec.Command(bash, "-e", "-c", strings.Replace(term2, docURL, url, 1))
	shell.Dir, shell.Env = work, env
	code, stdout, stderr := e2etest.Run(t, shell)
	t.Logf("terminal 2:\n%s", stdout)
	if code != 0 {
		t.Fatalf("terminal 2 exited %d (bash -e: a command failed)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// Each command's outcome, in its output.
	rot := regexp.MustCompile(`(?m)^dev-api: done \(rotation ([a-z0-9]+)\)$`).FindStringSubmatch(stdout)
	switch {
	case !strings.Contains(stdout, "rekey.yaml: valid (1 credentials, 1 issuers)"):
		t.Error("validate did not report the config valid")
	case !strings.Contains(stdout, "ready: 1 credentials, no problems"):
		t.Error("plan did not report ready")
	case !regexp.MustCompile(`key ` + oldID + `\s+current key ` + oldID + ` identified by its prefix`).MatchString(stdout):
		t.Error("plan did not identify the key in app.env")
	case rot == nil:
		t.Fatal("rotate did not end done")
	}
	newKey, err := iss.Identify(ctx, mustGet(t, envFile))
	if err != nil {
		t.Fatalf("the key in app.env after the rotation: %v", err)
	}
	if !regexp.MustCompile(`(?m)^dev-api\s+` + newKey.ID + `\s+\S+\s+\S+\s+.*\s+done\s+-\s+-$`).MatchString(stdout) {
		t.Error("status does not show the new key and done")
	}
	if !regexp.MustCompile(`(?m)^` + rot[1] + `\s+\S+\s+done\s+old=` + oldID + ` new=` + newKey.ID + `$`).MatchString(stdout) {
		t.Error("history does not show the rotation from the old key to the new one")
	}
	for _, phase := range []string{"planned", "minted", "verified", "deployed", "monitoring", "revoking", "done"} {
		if !regexp.MustCompile(`(?m)^    \S+  ` + phase + `$`).MatchString(stdout) {
			t.Errorf("history does not list phase %s", phase)
		}
	}

	// At the simulator: the new key in the sink is active, the old one revoked.
	if newKey.ID == oldID || newKey.Status != issuers.Active {
		t.Errorf("app.env holds %s (%s), want a new active key", newKey.ID, newKey.Status)
	}
	old, err := iss.Get(ctx, oldID)
	if err != nil || old.Status != issuers.Revoked {
		t.Errorf("old key %s: %s (%v), want revoked", oldID, old.Status, err)
	}
	values := []secret.Value{first, mustGet(t, envFile)}
	for _, text := range []string{stdout, stderr, strings.Join(out.printed, "\n"), simErr.String()} {
		for _, v := range values {
			if strings.Contains(text, v.Reveal()) {
				t.Fatal("a key value appears in the commands' output")
			}
		}
	}

	// Ctrl-C stops the simulator cleanly.
	if err := sim.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest := <-out.rest
	if err := <-done; err != nil {
		t.Fatalf("rekey sim after SIGINT: %v, want exit 0; stderr: %s", err, simErr.String())
	}
	if rest != "stopped" {
		t.Errorf("rekey sim printed %q after SIGINT, want \"stopped\"", rest)
	}
}

func mustGet(t *testing.T, s *file.Sink) secret.Value {
	t.Helper()
	v, err := s.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

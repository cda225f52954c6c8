package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

// TestDemoKeepAgainstSim runs `rekey demo --keep` against a running
// simulator (as `rekey sim` serves it), then the first-ten-minutes commands
// on the kept config: it still works, and a second rotation revokes the
// key the demo put in place.
func TestDemoKeepAgainstSim(t *testing.T) {
	sim := apexsim.New(apexsim.Options{})
	url, stop := sim.Start()
	defer stop()
	tokenFile := filepath.Join(t.TempDir(), "sim-token")
	if err := os.WriteFile(tokenFile, []byte(sim.ManagementToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := execute(context.Background(), args, &out, &errOut)
		record(out.Bytes(), errOut.Bytes())
		if code != exitOK {
			t.Fatalf("rekey %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	out := run("demo", "--keep", "--sim", url, "--sim-token-file", tokenFile)
	m := regexp.MustCompile(`kept (\S+); its config works against the simulator at ` + regexp.QuoteMeta(url)).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo did not say where it kept its files:\n%s", out)
	}
	dir := m[1]
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "rekey.yaml")
	demoRot := regexp.MustCompile(`rotation\s+(\S+) \(done\)`).FindStringSubmatch(out)
	if demoRot == nil {
		t.Fatalf("demo did not end done:\n%s", out)
	}
	if kept, err := os.ReadFile(cfg); err != nil || bytes.Contains(kept, []byte("checks:")) {
		t.Fatalf("kept config: %v; it must not check the demo app, which is gone", err)
	}

	if out := run("-c", cfg, "validate"); !strings.Contains(out, ": valid (1 credentials") {
		t.Errorf("validate: %s", out)
	}
	if out := run("-c", cfg, "plan"); !strings.Contains(out, "was put in place by rotation "+demoRot[1]) {
		t.Errorf("plan does not find the demo's key: %s", out)
	}
	out = run("-c", cfg, "rotate", "demo-api")
	rot := regexp.MustCompile(`(?m)^demo-api: done \(rotation (\S+)\)$`).FindStringSubmatch(out)
	if rot == nil {
		t.Fatalf("rotate did not end done: %s", out)
	}
	if out := run("-c", cfg, "status"); !regexp.MustCompile(`(?m)^demo-api\s+key_\S+\s+.*\sdone\s`).MatchString(out) {
		t.Errorf("status: %s", out)
	}
	hist := run("-c", cfg, "history", "demo-api")
	for _, id := range []string{rot[1], demoRot[1]} {
		if !strings.Contains(hist, id+"  ") {
			t.Errorf("history lacks rotation %s: %s", id, hist)
		}
	}

	// At the simulator: three keys (the demo's first, the demo's new one,
	// the second rotation's), only the last active; nothing was refused but
	// the verifies of a new key, which this simulator does not delay.
	keys := sim.Keys()
	if len(keys) != 3 || keys[0].Status != "revoked" || keys[1].Status != "revoked" || keys[2].Status != "active" {
		t.Errorf("simulator keys %+v: want two revoked, then one active", keys)
	}
	if r := sim.Refusals(); len(r) != 0 {
		t.Errorf("the simulator refused %d calls: %+v", len(r), r)
	}
}

func TestDemoSimFlags(t *testing.T) {
	for _, args := range [][]string{{"--sim", "http://127.0.0.1:1"}, {"--sim-token-file", "x"}} {
		var out, errOut bytes.Buffer
		if code := execute(context.Background(), append([]string{"demo"}, args...), &out, &errOut); code != exitUsage {
			t.Errorf("rekey demo %q: exit %d, want 2", args, code)
		}
	}
}

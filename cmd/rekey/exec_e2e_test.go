package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/execissuer"
)

// sampleIssuer is the shipped sample issuer script, relative to this
// package.
var sampleIssuer = filepath.Join(repoRoot, "examples", "exec-issuer", "sample-issuer.py")

// TestRotateWithExecIssuer rotates a credential whose issuer is the
// sample exec issuer (a Python script keeping its keys in a file) into a
// file sink: the key that was in the file before rekey ran is identified,
// replaced and revoked, and the new one authenticates.
func TestRotateWithExecIssuer(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	script, err := filepath.Abs(sampleIssuer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	argv := []string{python, script, "--state", keys}
	iss, err := execissuer.New(execissuer.Config{Command: argv, Identify: true, LastUsed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, seed, err := iss.Create(ctx, "prod-initial")
	if err != nil {
		t.Fatal(err)
	}
	rememberValue(seed)
	envFile := filepath.Join(dir, "app.env")
	writeFile(t, envFile, "APP=crm\nAPI_KEY="+seed.Reveal())
	e2etest.WriteStateKey(t, filepath.Join(dir, "state.key"))
	writeFile(t, filepath.Join(dir, "token"), "sample-management-token")
	cmd, _ := json.Marshal(argv)
	config := filepath.Join(dir, "rekey.yaml")
	writeFile(t, config, `version: 1
state:
  path: `+dir+`/state.db
  encryption_key: file:`+dir+`/state.key
issuers:
  sample:
    type: exec
    command: `+string(cmd)+`
    account: sample-issuer test
    abilities: [identify, last_used]
    max_active_keys: 10
    timeout: 20s
    env:
      SAMPLE_API_TOKEN: file:`+dir+`/token
credentials:
  prod:
    issuer: sample
    label: prod-{{date}}
    rotate_every: 90d
    sinks:
      - {type: file, path: `+envFile+`, key: API_KEY}
    monitor: {window: 1s, interval: 1s}
`)
	var out, errOut bytes.Buffer
	execute(ctx, []string{"-c", config, "plan"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	if !strings.Contains(out.String(), "1 of 10 keys active (9 free)") {
		t.Errorf("plan does not count the exec issuer's key slots:\n%s%s", out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code := execute(ctx, []string{"-c", config, "rotate", "prod"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	if code != exitOK {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	_, val, _ := strings.Cut(strings.TrimSpace(string(b)), "API_KEY=")
	now := secret.New(val)
	rememberValue(now)
	if now.IsZero() || now.Equal(seed) || !strings.HasPrefix(string(b), "APP=crm\n") {
		t.Fatalf("the file does not hold a new key next to its other lines")
	}
	if err := iss.Verify(ctx, now); err != nil {
		t.Errorf("the new key does not authenticate: %v", err)
	}
	if err := iss.Verify(ctx, seed); !errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("Verify(old key) = %v, want it revoked", err)
	}
	old, err := iss.Get(ctx, first.ID)
	if err != nil || old.Status != issuers.Revoked {
		t.Errorf("old key %s: %+v, %v; want revoked", first.ID, old, err)
	}
	active, err := iss.List(ctx)
	if err != nil || len(active) != 1 || !strings.HasPrefix(active[0].Label, "prod-") || active[0].Prefix != val[:12] {
		t.Errorf("active keys %+v, %v; want the one new key", active, err)
	}
	for _, s := range []string{out.String(), errOut.String()} {
		if strings.Contains(s, seed.Reveal()) || strings.Contains(s, val) || strings.Contains(s, "sample-management-token") {
			t.Errorf("rotate printed a key value or the token")
		}
	}
}

// TestExecIssuerEnvironment: the command built from the config inherits
// rekey's environment without the variables the config reads secrets from
// and the sinks' default tokens, and gets the issuer's env: variables.
func TestExecIssuerEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REKEY_TEST_EXEC_STATE_KEY", stateKeyText(t))
	t.Setenv("REKEY_TEST_EXEC_MGMT", "mgmt-Xy7Pq2Lm")
	t.Setenv("GITHUB_TOKEN", "ghp-Ab3Cd4Ef")
	t.Setenv("VAULT_TOKEN", "hvs-Gh5Ij6Kl")
	t.Setenv("REKEY_TEST_EXEC_PLAIN", "kept")
	envOut := filepath.Join(dir, "env.txt")
	// A command that records its environment and knows no keys.
	script := `env > "$1"; echo '{"keys":[]}'`
	writeFile(t, filepath.Join(dir, "app.env"), "API_KEY=sk_sample_0123456789abcdef")
	config := filepath.Join(dir, "rekey.yaml")
	writeFile(t, config, `version: 1
state:
  path: `+dir+`/state.db
  encryption_key: env:REKEY_TEST_EXEC_STATE_KEY
issuers:
  recorder:
    type: exec
    command: ["/bin/sh", "-c", `+jsonString(script)+`, "sh", "`+envOut+`"]
    account: recorder
    env:
      MY_TOKEN: env:REKEY_TEST_EXEC_MGMT
credentials:
  prod:
    issuer: recorder
    label: prod-{{date}}
    rotate_every: 90d
    sinks:
      - {type: file, path: `+dir+`/app.env, key: API_KEY}
`)
	var out, errOut bytes.Buffer
	execute(context.Background(), []string{"-c", config, "plan"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	got, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatalf("the command did not run (plan: %s%s): %v", out.String(), errOut.String(), err)
	}
	env := "\n" + string(got)
	for _, hidden := range []string{"REKEY_TEST_EXEC_STATE_KEY=", "REKEY_TEST_EXEC_MGMT=", "GITHUB_TOKEN=", "VAULT_TOKEN="} {
		if strings.Contains(env, "\n"+hidden) {
			t.Errorf("the command inherited %s", strings.TrimSuffix(hidden, "="))
		}
	}
	for _, want := range []string{"\nMY_TOKEN=mgmt-Xy7Pq2Lm\n", "\nREKEY_TEST_EXEC_PLAIN=kept\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("the command's environment lacks %q", strings.TrimSpace(want))
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// stateKeyText is a random journal key as the config reads it.
func stateKeyText(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "k")
	e2etest.WriteStateKey(t, p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestExecIssuerWithFieldsIsRefused: an exec issuer declaring fields mints
// multi-field values, which a sink holding one key (key:) cannot write: its
// credential is refused at start, at the sink's line, before the command
// runs.
func TestExecIssuerWithFieldsIsRefused(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	e2etest.WriteStateKey(t, filepath.Join(dir, "state.key"))
	config := filepath.Join(dir, "rekey.yaml")
	writeFile(t, config, `version: 1
state:
  path: `+dir+`/state.db
  encryption_key: file:`+dir+`/state.key
issuers:
  keys:
    type: exec
    command: ["/bin/sh", "-c", "touch \"$1\"; echo '{\"keys\":[]}'", "sh", "`+ran+`"]
    fields: [access_key_id, secret_access_key]
credentials:
  prod:
    issuer: keys
    label: prod-{{date}}
    rotate_every: 90d
    sinks:
      - {type: file, path: `+dir+`/app.env, key: API_KEY}
`)
	var out, errOut bytes.Buffer
	code := execute(context.Background(), []string{"-c", config, "rotate", "prod"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	if code != exitUsage || !strings.Contains(errOut.String(), "credentials.prod.sinks: issuer keys's keys have the fields access_key_id, secret_access_key") {
		t.Errorf("rotate with a multi-field exec issuer: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the command ran for a credential rekey refuses")
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// TestSharedStateKeyIsRefused: a state key file others may read stops
// every command that opens the journal, with the chmod that fixes it.
func TestSharedStateKeyIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := filepath.Join(e.Dir, "state.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := e.cli("rotate", "prod")
	if code != 2 || !strings.Contains(errOut, "run: chmod 600 "+key) {
		t.Fatalf("exit %d, stderr %q; want 2 and the chmod 600 fix", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("the journal was created: %v", err)
	}
}

// TestOnChangeDoesNotInheritSecrets: a file sink built from the config
// runs on_change without the variables rekey's own secrets come from.
func TestOnChangeDoesNotInheritSecrets(t *testing.T) {
	hidden := []string{"REKEY_TEST_STATE_KEY", "REKEY_TEST_APEX_TOKEN", "REKEY_TEST_SLACK", "REKEY_TEST_VAULT_ROLE", "GITHUB_TOKEN", "VAULT_TOKEN"}
	for _, name := range hidden {
		t.Setenv(name, "secret-of-"+name)
	}
	t.Setenv("REKEY_TEST_PLAIN", "kept")
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook")
	writeFile(t, hook, "#!/bin/sh\nenv > "+filepath.Join(dir, "env"))
	if err := os.Chmod(hook, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("rekey.yaml", []byte(fmt.Sprintf(`version: 1
state: {encryption_key: env:REKEY_TEST_STATE_KEY}
issuers:
  apex: {type: apexverify, management_token: env:REKEY_TEST_APEX_TOKEN}
credentials:
  api:
    issuer: apex
    label: api
    rotate_every: 90d
    sinks:
      - {type: file, path: %s/app.env, key: K, on_change: [%s]}
      - {type: vault-kv, address: "https://vault:8200", path: p, key: k, auth: {method: approle, role_id: env:REKEY_TEST_VAULT_ROLE, secret_id: file:/x}}
notify:
  - {type: slack, url: env:REKEY_TEST_SLACK}
`, dir, hook)))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := decodeSink(&cfg.Credentials["api"].Sinks[0], zap.NewNop(), hiddenEnv(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), secret.New("v-"+rand.Text()), "rot-1"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := "\n" + string(b)
	for _, name := range hidden {
		if strings.Contains(env, "\n"+name+"=") {
			t.Errorf("on_change saw %s", name)
		}
	}
	if !strings.Contains(env, "\nREKEY_TEST_PLAIN=kept\n") {
		t.Errorf("on_change did not get the rest of the environment")
	}
}

// A sink's JSON log lines carry the sink field once, its name, and the
// credential field once, however lazily the loggers encode them.
func TestSinkNamedOnceInLogs(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("rekey.yaml", []byte(fmt.Sprintf(`version: 1
state: {encryption_key: env:REKEY_TEST_STATE_KEY}
issuers:
  apex: {type: apexverify, management_token: env:REKEY_TEST_APEX_TOKEN}
credentials:
  api:
    issuer: apex
    label: api
    rotate_every: 90d
    sinks:
      - {type: file, path: %s/app.env, key: K, on_change: ["true"]}
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	var closers []sinks.Closer
	c, err := (&app{log: log}).buildCredential(cfg.Credentials["api"], nil, hiddenEnv(cfg), &closers)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0]
	if _, err := s.Put(context.Background(), secret.New("v-"+rand.Text()), "rot-1"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("the sink logged nothing: the check would prove nothing")
	}
	for _, l := range lines {
		if n := strings.Count(l, `"sink":`); n != 1 || !strings.Contains(l, `"sink":"`+s.Name()+`"`) {
			t.Errorf("%d sink fields, want one naming %s: %s", n, s.Name(), l)
		}
		if n := strings.Count(l, `"credential":`); n != 1 || !strings.Contains(l, `"credential":"api"`) {
			t.Errorf("%d credential fields, want one naming api: %s", n, l)
		}
	}
}

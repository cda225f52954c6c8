package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// A sink reverted to the old key behind rekey's back, twice, leaves both
// keys valid: status (table and JSON) and plan list the key left for a
// person, and resolve marks it handled.
func TestLeftKeysAreReportedAndResolved(t *testing.T) {
	e := newEnv(t, envOptions{window: "1s", interval: "1s"})
	oldFile, err := os.ReadFile(e.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	e.setHealthy(func() bool { return os.WriteFile(e.EnvFile, oldFile, 0o600) == nil })
	if code, _, errOut := e.cli("rotate", "prod", "--force"); code != exitFailed {
		t.Fatalf("rotate: exit %d, want 1\n%s", code, errOut)
	}
	e.setHealthy(nil)
	h := e.history()
	if len(h) != 1 || h[0].Phase != "failed" {
		t.Fatalf("history %+v", h)
	}
	left := h[0].NewKeyID

	code, out, _ := e.cli("status", "-o", "json")
	var rows []credentialStatus
	if err := json.Unmarshal([]byte(out), &rows); code != exitOK || err != nil {
		t.Fatalf("status: exit %d %v\n%s", code, err, out)
	}
	if len(rows) != 1 || len(rows[0].LeftKeys) != 1 || rows[0].LeftKeys[0].KeyID != left || len(rows[0].LeftKeys[0].HeldBy) != 0 {
		t.Errorf("status left keys %+v, want %s held by no sink", rows[0].LeftKeys, left)
	}
	if _, out, _ := e.cli("status"); !strings.Contains(out, "key "+left+" left valid for a person") {
		t.Errorf("status table does not list the left key:\n%s", out)
	}
	_, r, _ := e.plan()
	if lk := checksByKind(r, "left_key"); len(lk) != 1 || lk[0].Name != left || lk[0].Status != checkWarning {
		t.Errorf("plan left keys %+v", lk)
	}

	if code, out, errOut := e.cli("resolve", "prod", left); code != exitOK || !strings.Contains(out, "0 keys left") {
		t.Fatalf("resolve: exit %d\n%s%s", code, out, errOut)
	}
	if _, r, _ := e.plan(); len(checksByKind(r, "left_key")) != 0 {
		t.Errorf("left key still reported after resolve")
	}
	if code, _, _ := e.cli("resolve", "prod"); code != exitUsage {
		t.Errorf("resolve with nothing to do: exit %d, want 2", code)
	}
}

// plan says when the current key cannot be identified, and a key_id that
// contradicts the key in the sinks is a problem; rotate refuses it.
func TestPlanKeyIdentity(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, r, _ := e.plan()
	if k := checksByKind(r, "key"); len(k) != 1 || k[0].Status != checkOK || k[0].Name != e.First.ID {
		t.Errorf("key check %+v, want %s identified", k, e.First.ID)
	}

	other, v, err := e.Issuer.Create(context.Background(), "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	rememberValue(v)
	cfg, _ := os.ReadFile(e.Config)
	writeFile(t, e.Config, strings.Replace(string(cfg), "    rotate_every: 90d\n", "    rotate_every: 90d\n    key_id: "+other.ID+"\n", 1))
	code, r, _ := e.plan()
	k := checksByKind(r, "key")
	if code != exitFailed || len(k) != 1 || k[0].Status != checkProblem || !strings.Contains(k[0].Detail, "does not match") {
		t.Errorf("plan: exit %d key check %+v, want a key_id mismatch problem", code, k)
	}
	if code, out, _ := e.cli("rotate", "prod", "--force"); code != exitFailed || !strings.Contains(out, "does not match") {
		t.Errorf("rotate: exit %d, want a refusal\n%s", code, out)
	}
	for _, key := range e.Sim.Keys() {
		if key.Status != "active" {
			t.Errorf("key %s is %s after a refused rotation", key.ID, key.Status)
		}
	}

	writeFile(t, e.Config, string(cfg))
	if err := os.WriteFile(e.EnvFile, []byte("API_KEY=avk_live_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, r, _ = e.plan()
	if k := checksByKind(r, "key"); len(k) != 1 || k[0].Status != checkWarning || !strings.Contains(k[0].Detail, "will not be revoked") {
		t.Errorf("key check %+v, want a warning that the old key will not be revoked", k)
	}
}

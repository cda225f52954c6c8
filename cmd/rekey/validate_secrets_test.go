package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// validate is the gate before a daemon starts: it resolves every env: and
// file: reference, naming file:line and field of each that fails, and
// --offline checks the file alone.
func TestValidateResolvesSecretReferences(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, out, errOut := e.cli("validate"); code != 0 || errOut != "" {
		t.Fatalf("validate of a working config: exit %d\n%s%s", code, out, errOut)
	}
	token := filepath.Join(e.Dir, "token")

	// A token file others may read still works, with a warning.
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := e.cli("validate")
	if code != 0 || !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "issuers.sim.management_token") || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("validate with a 0644 token file: exit %d, want 0 and a warning naming the field and the fix\n%s", code, errOut)
	}

	// A missing token file makes the config invalid, at its line.
	if err := os.Remove(token); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.cli("validate")
	if code != exitUsage || !regexp.MustCompile(`rekey\.yaml:\d+: issuers\.sim\.management_token: file:\S+/token: .*no such file`).MatchString(errOut) {
		t.Errorf("validate with the token file gone: exit %d, want %d and file:line: field: the cause\n%s%s", code, exitUsage, out, errOut)
	}
	code, out, _ = e.cli("validate", "-o", "json")
	var res validateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitUsage || res.Valid || len(res.Errors) != 1 {
		t.Errorf("validate -o json with the token file gone: exit %d, %+v (%v)", code, res, err)
	}
	if code, out, errOut := e.cli("validate", "--offline"); code != 0 {
		t.Errorf("validate --offline needs no token file: exit %d\n%s%s", code, out, errOut)
	}

	// A state key others may read is refused, as run refuses it.
	if err := os.WriteFile(token, []byte(e.ManagementToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(e.Dir, "state.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := e.cli("validate"); code != exitUsage || !strings.Contains(errOut, "state.encryption_key") {
		t.Errorf("validate with a 0644 state key: exit %d, want %d naming state.encryption_key\n%s", code, exitUsage, errOut)
	}
}

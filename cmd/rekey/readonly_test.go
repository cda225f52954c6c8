package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// status and history read the journal: they work without the issuer's
// management token (and any sink's), which a person on the box or a
// dashboard's cron need not hold. Rotating still needs it, and says so.
func TestReadOnlyCommandsNeedNoUpstreamSecrets(t *testing.T) {
	e := newEnv(t, envOptions{window: "1s", interval: "1s"})
	if code, out, errOut := e.cli("rotate", "prod"); code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.Remove(filepath.Join(e.Dir, "token")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.cli("status")
	if code != 0 || !strings.Contains(out, "prod") || !strings.Contains(out, "done") {
		t.Errorf("status without the management token: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e.cli("history", "prod")
	if code != 0 || !strings.Contains(out, "done") {
		t.Errorf("history without the management token: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := e.cli("history", "nope"); code != exitUsage {
		t.Errorf("history of an unknown credential: exit %d, want %d", code, exitUsage)
	}
	code, _, errOut = e.cli("rotate", "prod", "--force")
	if code == 0 || !strings.Contains(errOut, "token") {
		t.Errorf("rotate without the management token: exit %d, want a failure naming the token\n%s", code, errOut)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSharedStateKeyIsRefused: a state key file others may read stops
// every command that opens the journal, with the chmod that fixes it.
func TestSharedStateKeyIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := filepath.Join(e.dir, "state.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := e.cli("rotate", "prod")
	if code != 2 || !strings.Contains(errOut, "run: chmod 600 "+key) {
		t.Fatalf("exit %d, stderr %q; want 2 and the chmod 600 fix", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("the journal was created: %v", err)
	}
}

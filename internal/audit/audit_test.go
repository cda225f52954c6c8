package audit_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/audit"
)

func TestWriteAppendsOneLinePerEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.audit.jsonl")
	l := audit.New(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("New created the file before any write: %v", err)
	}
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	first := audit.Entry{Time: at, Credential: "prod", RotationID: "abcd1234", Phase: "planned", Outcome: "in_progress"}
	if err := l.Write(first); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A second process (or a restart) appends; it never truncates.
	l = audit.New(path)
	defer l.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := audit.Entry{Time: at, Credential: fmt.Sprintf("c%02d", i), RotationID: "r", Phase: "done",
				OldKeyID: "key_old", NewKeyID: "key_new", Sinks: []string{"file:/x#K"}, Outcome: "success"}
			if err := l.Write(e); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 21 {
		t.Fatalf("%d lines, want 21", n)
	}
	entries, err := audit.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 21 || entries[0].Phase != "planned" || !entries[0].Time.Equal(at) || entries[0].Sinks == nil {
		t.Fatalf("first entry %+v of %d", entries[0], len(entries))
	}
	seen := map[string]bool{}
	for _, e := range entries[1:] {
		if e.Outcome != "success" || e.NewKeyID != "key_new" || len(e.Sinks) != 1 {
			t.Errorf("entry %+v", e)
		}
		seen[e.Credential] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct credentials, want 20 (lines interleaved?)", len(seen))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestReadIgnoresTornLastLineOnly(t *testing.T) {
	good := `{"time":"2026-11-25T03:00:00Z","credential":"prod","rotation_id":"r","phase":"planned","sinks":[],"outcome":"in_progress"}` + "\n"
	entries, err := audit.Read(strings.NewReader(good + `{"time":"2026-11-25T03:0`))
	if err != nil || len(entries) != 1 {
		t.Fatalf("torn tail: %d entries, %v", len(entries), err)
	}
	if _, err := audit.Read(strings.NewReader("not json\n" + good)); err == nil {
		t.Fatal("a malformed line in the middle was accepted")
	}
}

func TestWriteReportsUnwritablePath(t *testing.T) {
	l := audit.New(filepath.Join(t.TempDir(), "missing", "audit.jsonl"))
	if err := l.Write(audit.Entry{Credential: "prod"}); err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
		t.Fatalf("err = %v, want an audit: error", err)
	}
}

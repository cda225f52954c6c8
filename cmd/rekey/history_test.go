package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/sqlite"
)

// seedJournal saves n finished rotations of prod into the env's journal,
// an hour apart, the newest last.
func seedJournal(t *testing.T, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join(e.Dir, "state.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sqlite.DecodeKey(string(b))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(e.Dir, "state.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Hour)
		r := &rotation.Record{Credential: "prod", ID: fmt.Sprintf("r%03d", i), Phase: rotation.Done,
			NewKeyID: fmt.Sprintf("key_%03d", i), StartedAt: at, FinishedAt: at.Add(time.Minute),
			Transitions: []rotation.Transition{{Phase: rotation.Planned, At: at}, {Phase: rotation.Done, At: at.Add(time.Minute)}}}
		if err := st.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHistoryPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedJournal(t, e, 25)
	hint := "… 5 older rotations: rekey history prod --limit 0\n"

	code, out, errOut := e.cli("history", "prod")
	if code != 0 {
		t.Fatalf("history: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "  done  old="); n != historyPage {
		t.Errorf("history shows %d rotations, want %d:\n%s", n, historyPage, out)
	}
	if !strings.HasPrefix(out, "r024  ") || !strings.HasSuffix(out, "done\n"+hint) {
		t.Errorf("history: want the newest first and the hint last:\n%s", out)
	}

	// JSON: stdout is the array of entries as before, the hint on stderr.
	code, out, errOut = e.cli("history", "prod", "-o", "json")
	h, err := e2etest.ParseHistory([]byte(out))
	if code != 0 || err != nil || len(h) != historyPage || h[0].ID != "r024" {
		t.Errorf("history -o json: exit %d, %v, %d entries", code, err, len(h))
	}
	if errOut != hint {
		t.Errorf("history -o json stderr = %q, want %q", errOut, hint)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Errorf("history -o json is not an array: %v", err)
	}

	for _, tc := range []struct {
		limit string
		n     int
		hint  string
	}{
		{"0", 25, ""},
		{"30", 25, ""},
		{"24", 24, "… 1 older rotation: rekey history prod --limit 0\n"},
		{"3", 3, "… 22 older rotations: rekey history prod --limit 0\n"},
	} {
		code, out, errOut := e.cli("history", "prod", "--limit", tc.limit, "-o", "json")
		h, err := e2etest.ParseHistory([]byte(out))
		if code != 0 || err != nil || len(h) != tc.n || errOut != tc.hint {
			t.Errorf("history --limit %s: exit %d, %v, %d entries, stderr %q; want %d, %q", tc.limit, code, err, len(h), errOut, tc.n, tc.hint)
		}
	}
	if code, _, _ := e.cli("history", "prod", "--limit", "-1"); code != exitUsage {
		t.Errorf("history --limit -1: exit %d, want %d", code, exitUsage)
	}
}

func TestHistoryThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 9980: "9,980", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// Status reads only each credential's records since its last success
// (RecentOf), and shows exactly what the whole history would have shown.
func TestStatusFromRecentMatchesHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(1000 * time.Hour)
	rec := func(i int, phase rotation.Phase, kept bool) *rotation.Record {
		at := t0.Add(time.Duration(i) * time.Hour)
		r := &rotation.Record{Credential: "prod", ID: fmt.Sprintf("r%d", i), Phase: phase, Kept: kept,
			NewKeyID: fmt.Sprintf("key_%d", i), Label: fmt.Sprintf("label-%d", i), StartedAt: at, Error: "e" + phase.Outcome(),
			Left: []rotation.LeftKey{{KeyID: fmt.Sprintf("left_%d", i)}}}
		if phase.Terminal() {
			r.FinishedAt = at.Add(time.Minute)
		}
		return r
	}
	// newest first
	for name, hist := range map[string][]*rotation.Record{
		"at rest":          {rec(5, rotation.Done, false), rec(4, rotation.Done, false), rec(3, rotation.RolledBack, false)},
		"failing":          {rec(5, rotation.RolledBack, false), rec(4, rotation.Failed, false), rec(3, rotation.Done, false), rec(2, rotation.Done, false)},
		"kept":             {rec(5, rotation.RolledBack, false), rec(4, rotation.Failed, true), rec(3, rotation.Done, false), rec(2, rotation.Done, false)},
		"in flight":        {rec(5, rotation.Monitoring, false), rec(4, rotation.Done, false), rec(3, rotation.Done, false)},
		"in flight, fails": {rec(5, rotation.Revoking, false), rec(4, rotation.RolledBack, false), rec(3, rotation.Done, false), rec(2, rotation.Done, false)},
		"never succeeded":  {rec(5, rotation.Deployed, false), rec(4, rotation.RolledBack, false)},
		"unreadable among the recent": {rec(5, rotation.RolledBack, false), {Credential: "prod", ID: "r4", Unreadable: "x"},
			rec(3, rotation.Done, false), rec(2, rotation.Done, false)},
		"none": nil,
	} {
		recent := rotation.RecentOf(hist)
		if len(hist) > 1 && len(recent) == len(hist) && name != "never succeeded" {
			t.Errorf("%s: RecentOf cut nothing", name)
		}
		due := rotation.Due{At: now}
		if got, want := statusRow("prod", recent, due, now), statusRow("prod", hist, due, now); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: status from Recent\n %+v\nfrom History\n %+v", name, got, want)
		}
	}
}

func TestStatusReadsJournalOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	seedJournal(t, e, 30)
	code, out, errOut := e.cli("status", "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var rows []credentialStatus
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if r := rows[0]; r.KeyID != "key_029" || r.LastOutcome != "done" || r.RotatedAt == nil || r.Failures != 0 {
		t.Errorf("status row = %+v, want key_029, done", r)
	}
}

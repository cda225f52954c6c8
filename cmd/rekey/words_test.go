package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/rotation/sqlite"
)

// TestWordsAPersonReads: run, plan and status say when a credential is due
// in dates and durations as a config writes them, and the status table
// shows the label and the last error.
func TestWordsAPersonReads(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, out, errOut := e.cli("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s%s", code, out, errOut)
	}
	_, run, _ := e.cli("run")
	_, plan, _ := e.cli("plan")
	_, status, _ := e.cli("status")
	for name, out := range map[string]string{"run": run, "plan": plan, "status": status} {
		want := "(in 90d; rotate_every 90d from the last rotation)"
		if name == "status" {
			want = "(in 90d)" // the reason is in -o json
		}
		if !strings.Contains(out, want) || strings.Contains(out, "2160h") || strings.Contains(out, "reached") {
			t.Errorf("%s does not say when it is due in a person's words:\n%s", name, out)
		}
		if !regexp.MustCompile(`20\d\d-\d\d-\d\d \d\d:\d\d UTC`).MatchString(out) {
			t.Errorf("%s names no due date:\n%s", name, out)
		}
	}
	if !strings.Contains(run, "not due until ") || !strings.Contains(plan, "not due until ") {
		t.Errorf("run or plan lacks 'not due until':\n%s\n%s", run, plan)
	}
	header, row, _ := strings.Cut(status, "\n")
	if !strings.Contains(header, "LABEL") || !strings.Contains(header, "LAST ERROR") || !strings.Contains(row, " prod-") {
		t.Errorf("status table lacks the label or the last error:\n%s", status)
	}

	// A rollback: its error is in the status table.
	e.setHealthy(func() bool { return false })
	if code, out, _ := e.cli("rotate", "prod"); code != exitFailed || !strings.Contains(out, "rolled_back") {
		t.Fatalf("unhealthy rotate: exit %d\n%s", code, out)
	}
	_, status, _ = e.cli("status")
	if !strings.Contains(status, "rolled_back") || !strings.Contains(status, "consecutive failures") {
		t.Errorf("status table does not show the last error:\n%s", status)
	}
}

func TestStagedSaysStaged(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, out, errOut := e.cli("rotate", "prod", "--stage")
	if code != 0 || !strings.Contains(out, "prod: staged (rotation ") || strings.Contains(out, "skipped") || !strings.Contains(out, "rekey rotate prod --finish") {
		t.Fatalf("rotate --stage: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = e.cli("run", "-o", "json")
	var run runReport
	oneJSON(t, "run", out, &run)
	if code != 0 || run.Results[0].Status != "staged" {
		t.Errorf("run of a staged rotation: exit %d\n%s", code, out)
	}
	if code, out, _ := e.cli("rotate", "prod", "--finish"); code != 0 || !strings.Contains(out, "done") {
		t.Errorf("--finish: exit %d\n%s", code, out)
	}
}

// TestBusyNamesWhoHoldsTheLock holds the credential's lock as another
// rekey would: rotate and run say who holds it.
func TestBusyNamesWhoHoldsTheLock(t *testing.T) {
	e := newEnv(t, envOptions{})
	b, err := os.ReadFile(filepath.Join(e.Dir, "state.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(e.Dir, "state.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	unlock, err := store.Lock(context.Background(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	host, _ := os.Hostname()
	holder := "pid " + strconv.Itoa(os.Getpid()) + " on " + host + " since "
	code, out, errOut := e.cli("rotate", "prod")
	if code != exitFailed || !strings.Contains(out, "busy: another rekey is rotating it ("+holder) {
		t.Errorf("rotate of a locked credential: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e.cli("run", "-o", "json")
	if !strings.Contains(errOut, `"holder_pid":`+strconv.Itoa(os.Getpid())) {
		t.Errorf("run's log does not name the holder:\n%s", errOut)
	}
	var run struct {
		Results []struct {
			Status string `json:"status"`
			HeldBy struct {
				PID  int    `json:"pid"`
				Host string `json:"host"`
			} `json:"held_by"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &run); err != nil || code != 0 || len(run.Results) != 1 {
		t.Fatalf("run -o json: exit %d %v\n%s", code, err, out)
	}
	if r := run.Results[0]; r.Status != "busy" || r.HeldBy.PID != os.Getpid() || r.HeldBy.Host != host {
		t.Errorf("run -o json of a locked credential: %+v", r)
	}
}

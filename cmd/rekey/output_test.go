package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// oneJSON decodes out as exactly one JSON document into v.
func oneJSON(t *testing.T, what, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: stdout is not JSON: %v\n%s", what, err, out)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: more than one JSON document on stdout:\n%s", what, out)
	}
}

func TestRunAndRotateJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, out, errOut := e.cli("run", "-o", "json")
	if code != 0 {
		t.Fatalf("run -o json: exit %d\n%s%s", code, out, errOut)
	}
	var run struct {
		Results []map[string]any `json:"results"`
		Failed  *int             `json:"failed"`
	}
	oneJSON(t, "run", out, &run)
	if len(run.Results) != 1 || run.Failed == nil || *run.Failed != 0 {
		t.Fatalf("run -o json: %s", out)
	}
	r := run.Results[0]
	if r["credential"] != "prod" || r["status"] != "done" || r["phase"] != "done" || r["rotation_id"] == "" || r["failed"] != false {
		t.Errorf("run result: %v", r)
	}

	code, out, _ = e.cli("run", "-o", "json")
	oneJSON(t, "second run", out, &run)
	if code != 0 || run.Results[0]["status"] != "not_due" || run.Results[0]["due_at"] == nil {
		t.Errorf("second run -o json: exit %d\n%s", code, out)
	}

	code, out, errOut = e.cli("rotate", "prod", "-o", "json")
	var rot map[string]any
	oneJSON(t, "rotate", out, &rot)
	if code != 0 || rot["status"] != "done" || rot["credential"] != "prod" {
		t.Errorf("rotate -o json: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := e.cli("run", "-o", "yaml"); code != exitUsage {
		t.Errorf("run -o yaml: exit %d, want 2", code)
	}
}

func TestValidateJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, out, _ := e.cli("validate", "-o", "json")
	var v validateResult
	oneJSON(t, "validate", out, &v)
	if code != 0 || !v.Valid || v.Credentials != 1 || v.Issuers != 1 || v.File != e.Config {
		t.Errorf("validate -o json: exit %d %+v", code, v)
	}
	writeFile(t, e.Config, "version: 1\nbogus: true\n")
	code, out, errOut := e.cli("validate", "-o", "json")
	oneJSON(t, "invalid validate", out, &v)
	if code != exitUsage || v.Valid || len(v.Errors) == 0 || !strings.Contains(errOut, "bogus") {
		t.Errorf("invalid config: exit %d %+v, stderr %q", code, v, errOut)
	}
}

func TestHistoryOutputAliases(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, out, errOut := e.cli("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s%s", code, out, errOut)
	}
	_, table, _ := e.cli("history", "prod")
	for _, o := range []string{"text", "table"} {
		if code, out, _ := e.cli("history", "prod", "-o", o); code != 0 || out != table {
			t.Errorf("history -o %s: exit %d\n%s\nwant\n%s", o, code, out, table)
		}
	}
}

func TestCompletion(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, args := range [][]string{{"rotate", ""}, {"history", "p"}, {"resolve", ""}} {
		code, out, _ := e.cli(append([]string{"__complete"}, args...)...)
		if code != 0 || !strings.HasPrefix(out, "prod\n") {
			t.Errorf("complete %v: exit %d %q", args, code, out)
		}
	}
	for _, c := range []string{"run", "rotate", "validate", "plan", "status", "history", "version"} {
		args := []string{"__complete", c}
		if c == "rotate" || c == "history" {
			args = append(args, "prod")
		}
		code, out, _ := e.cli(append(args, "-o", "")...)
		if code != 0 || !strings.HasPrefix(out, "table\t") || !strings.Contains(out, "\njson\t") {
			t.Errorf("complete %s -o: exit %d %q", c, code, out)
		}
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := a.rootCommand()
	root.InitDefaultCompletionCmd()
	n := 0
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" { // cobra's own
			continue
		}
		n++
		if c.Example == "" {
			t.Errorf("rekey %s has no Example", c.Name())
		}
	}
	if n < 12 {
		t.Errorf("only %d commands checked, want every one of rekey's (at least 12)", n)
	}
}

// TestJSONErrors: a failed rotation in JSON mode still exits 1 with one
// JSON document on stdout and the error on stderr.
func TestJSONErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setHealthy(func() bool { return false })
	for _, args := range [][]string{{"run", "-o", "json"}, {"rotate", "prod", "-o", "json"}} {
		code, out, errOut := e.cli(args...)
		var doc map[string]any
		oneJSON(t, args[0], out, &doc)
		if code != exitFailed || !strings.Contains(errOut, "rekey: ") || !strings.Contains(errOut, "failed") && !strings.Contains(errOut, "rolled_back") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		res := doc
		if rs, ok := doc["results"].([]any); ok && len(rs) == 1 {
			res = rs[0].(map[string]any)
		}
		if res["status"] != "rolled_back" || res["failed"] != true || res["error"] == nil {
			t.Errorf("%v: %s", args, out)
		}
	}
	// A usage error: exit 2, nothing on stdout.
	if code, out, errOut := e.cli("status", "-o", "json", "extra"); code != exitUsage || out != "" || errOut == "" {
		t.Errorf("status with an argument: exit %d %q %q", code, out, errOut)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/issuers"
)

func (e *env) plan(args ...string) (int, planReport, string) {
	e.t.Helper()
	code, out, errOut := e.cli(append([]string{"plan", "-o", "json"}, args...)...)
	var r planReport
	if code != exitUsage {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			e.t.Fatalf("plan json: %v\n%s\n%s", err, out, errOut)
		}
	}
	return code, r, errOut
}

func checksByKind(r planReport, kind string) []planCheck {
	var out []planCheck
	for _, row := range r.Credentials {
		for _, c := range row.Checks {
			if c.Kind == kind {
				out = append(out, c)
			}
		}
	}
	return out
}

func TestPlanReadyChangesNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	before, _ := os.ReadFile(e.EnvFile)
	keysBefore := len(e.Sim.Keys())

	code, r, errOut := e.plan()
	if code != exitOK || !r.Ready {
		t.Fatalf("plan: exit %d ready %v: %s %+v", code, r.Ready, errOut, r)
	}
	if len(r.Credentials) != 1 || r.Credentials[0].Name != "prod" || !r.Credentials[0].Due {
		t.Fatalf("credentials %+v, want prod due (never rotated)", r.Credentials)
	}
	iss := checksByKind(r, "issuer")
	if len(iss) != 1 || iss[0].Status != checkOK || !strings.Contains(iss[0].Detail, "1 of 10 keys active") {
		t.Errorf("issuer check %+v", iss)
	}
	sk := checksByKind(r, "sink")
	if len(sk) != 1 || sk[0].Status != checkOK {
		t.Errorf("sink check %+v", sk)
	}
	hc := checksByKind(r, "health_check")
	if len(hc) != 1 || hc[0].Status != checkOK || hc[0].Detail != "healthy" {
		t.Errorf("health check %+v", hc)
	}

	// The table says the same.
	code, out, _ := e.cli("plan")
	if code != exitOK || !strings.Contains(out, "ready: 1 credentials, no problems") || !strings.Contains(out, "due now") {
		t.Errorf("table: exit %d\n%s", code, out)
	}

	after, _ := os.ReadFile(e.EnvFile)
	if string(before) != string(after) || len(e.Sim.Keys()) != keysBefore {
		t.Error("plan changed the sink or the issuer")
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "state.db.audit.jsonl")); !os.IsNotExist(err) {
		t.Errorf("plan wrote an audit log: %v", err)
	}
	if h := e.history(); len(h) != 0 {
		t.Errorf("plan journaled %d rotations", len(h))
	}
}

func TestPlanProblems(t *testing.T) {
	e := newEnv(t, envOptions{sinks: []string{"{type: file, path: /nonexistent-rekey-dir/app.env, key: API_KEY}"}})
	// Nine more keys fill the account to the limit of ten.
	for i := range 9 {
		if _, _, err := e.Issuer.Create(context.Background(), fmt.Sprintf("other-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	code, r, _ := e.plan()
	if code != exitFailed || r.Ready {
		t.Fatalf("plan: exit %d ready %v, want 1 and not ready", code, r.Ready)
	}
	iss := checksByKind(r, "issuer")
	if len(iss) != 1 || iss[0].Status != checkProblem || !strings.Contains(iss[0].Detail, "no free key slot") {
		t.Errorf("issuer check %+v, want no free slot", iss)
	}
	sk := checksByKind(r, "sink")
	if len(sk) != 2 || sk[0].Status != checkOK || sk[1].Status != checkProblem || !strings.Contains(sk[1].Detail, "nonexistent-rekey-dir") {
		t.Errorf("sink checks %+v, want the second unwritable", sk)
	}
	code, out, _ := e.cli("plan")
	if code != exitFailed || !strings.Contains(out, "PROBLEM") || !strings.Contains(out, "not ready: 2 problems") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

func TestPlanUnreachableIssuerAndHealthURL(t *testing.T) {
	e := newEnv(t, envOptions{})
	cfg, _ := os.ReadFile(e.Config)
	text := strings.Replace(string(cfg), e.Sim.URL, "http://127.0.0.1:1", 1)
	text = strings.Replace(text, e.app.URL+"/healthz", "http://127.0.0.1:1/healthz", 1)
	writeFile(t, e.Config, text)
	code, r, _ := e.plan()
	if code != exitFailed {
		t.Fatalf("exit %d, want 1", code)
	}
	if c := checksByKind(r, "issuer"); len(c) != 1 || c[0].Status != checkProblem {
		t.Errorf("issuer %+v", c)
	}
	if c := checksByKind(r, "health_check"); len(c) != 1 || c[0].Status != checkProblem || !strings.Contains(c[0].Detail, "unreachable") {
		t.Errorf("health check %+v", c)
	}
}

func TestPlanConfigErrorExits2(t *testing.T) {
	e := newEnv(t, envOptions{})
	writeFile(t, e.Config, "version: 1\nbogus: true\n")
	if code, _, _ := e.plan(); code != exitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	if code, _, _ := e.cli("plan", "-o", "yaml"); code != exitUsage {
		t.Fatalf("-o yaml: exit %d, want 2", code)
	}
}

// plan probes each health check once against all its expectations, not
// just whether the URL answers.
func TestPlanHealthCheckExpectations(t *testing.T) {
	t.Run("unexpected status", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.setHealthy(func() bool { return false }) // the app answers 503
		code, r, _ := e.plan()
		if code != exitFailed || r.Ready {
			t.Fatalf("plan: exit %d ready %v, want 1 and not ready", code, r.Ready)
		}
		c := checksByKind(r, "health_check")
		if len(c) != 1 || c[0].Status != checkProblem || c[0].Name != e.app.URL+"/healthz" || !strings.Contains(c[0].Detail, "status 503, want [200]") {
			t.Errorf("health check %+v, want a problem naming the check and its 503", c)
		}
		code, out, _ := e.cli("plan")
		if code != exitFailed || !strings.Contains(out, "PROBLEM  health_check "+e.app.URL+"/healthz") {
			t.Errorf("table: exit %d\n%s", code, out)
		}
	})
	t.Run("body mismatch", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		cfg, _ := os.ReadFile(e.Config)
		text := strings.Replace(string(cfg), "        - url: "+e.app.URL+"/healthz\n",
			"        - name: crm\n          url: "+e.app.URL+"/healthz\n          body_contains: all systems go\n", 1)
		writeFile(t, e.Config, text)
		code, r, _ := e.plan()
		if code != exitFailed || r.Ready {
			t.Fatalf("plan: exit %d ready %v, want 1 and not ready", code, r.Ready)
		}
		c := checksByKind(r, "health_check")
		if len(c) != 1 || c[0].Status != checkProblem || c[0].Name != "crm" || !strings.Contains(c[0].Detail, `body lacks "all systems go"`) {
			t.Errorf("health check %+v, want a problem naming crm and the body", c)
		}
	})
	t.Run("healthy", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		cfg, _ := os.ReadFile(e.Config)
		text := strings.Replace(string(cfg), "        - url: "+e.app.URL+"/healthz\n",
			"        - name: crm\n          url: "+e.app.URL+"/healthz\n          body_regex: '^ok'\n", 1)
		writeFile(t, e.Config, text)
		code, r, errOut := e.plan()
		if code != exitOK || !r.Ready {
			t.Fatalf("plan: exit %d ready %v: %s", code, r.Ready, errOut)
		}
		if c := checksByKind(r, "health_check"); len(c) != 1 || c[0].Status != checkOK || c[0].Name != "crm" || c[0].Detail != "healthy" {
			t.Errorf("health check %+v", c)
		}
	})
}

// The key-slot check uses the issuer's own limit (issuers.KeyLimiter),
// here apexverify's max_active_keys.
func TestPlanKeyLimitFromConfig(t *testing.T) {
	e := newEnv(t, envOptions{})
	cfg, _ := os.ReadFile(e.Config)
	writeFile(t, e.Config, strings.Replace(string(cfg), "    type: apexverify\n", "    type: apexverify\n    max_active_keys: 2\n", 1))
	if code, r, errOut := e.plan(); code != exitOK || !strings.Contains(checksByKind(r, "issuer")[0].Detail, "1 of 2 keys active (1 free)") {
		t.Fatalf("plan with one key of two: exit %d %+v %s", code, r, errOut)
	}
	if _, _, err := e.Issuer.Create(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	code, r, _ := e.plan()
	iss := checksByKind(r, "issuer")
	if code != exitFailed || len(iss) != 1 || iss[0].Status != checkProblem || !strings.Contains(iss[0].Detail, "no free key slot: 2 of 2 keys active") {
		t.Errorf("plan with two keys of two: exit %d, issuer check %+v", code, iss)
	}
}

// An issuer without a known key limit gets its active keys counted, and
// no limit is made up.
func TestPlanIssuerWithoutKeyLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	unlimited := struct{ issuers.Issuer }{e.Issuer} // hides MaxActiveKeys
	pc := checkIssuer(context.Background(), "sim", unlimited)
	if pc.Status != checkOK || pc.Detail != "reachable, management token valid, 1 keys active" {
		t.Errorf("check = %+v", pc)
	}
}

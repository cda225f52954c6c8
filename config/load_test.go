package config

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureDirectives reads the "# want: ...", "# back-end want: ..." and
// "# secret: ..." lines of a bad fixture. A want is a problem Load reports;
// a back-end want is one only an issuer's or sink's package (or the type
// switch in cmd/rekey) can see, which `rekey validate` reports with the
// others (cmd/rekey's TestValidateBadFixtures checks both kinds).
func fixtureDirectives(t *testing.T, path string) (wants, backend, secrets []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			wants = append(wants, w)
		}
		if w, ok := strings.CutPrefix(line, "# back-end want: "); ok {
			backend = append(backend, w)
		}
		if s, ok := strings.CutPrefix(line, "# secret: "); ok {
			secrets = append(secrets, s)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return wants, backend, secrets
}

func TestLoadGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d good fixtures, want at least 2", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.File != path || cfg.Version != 1 || len(cfg.Credentials) == 0 {
				t.Fatalf("Load = %+v", cfg)
			}
			for name, cr := range cfg.Credentials {
				if cr.Name != name || cfg.Issuers[cr.Issuer] == nil {
					t.Errorf("credential %q: Name %q, issuer %q", name, cr.Name, cr.Issuer)
				}
				for i, s := range cr.Sinks {
					if want := fmt.Sprintf("credentials.%s.sinks[%d]", name, i); s.Field != want || s.File != path || s.Line == 0 || s.Type == "" {
						t.Errorf("sink %d = %+v, want Field %s, File %s, a line and a type", i, s, want, path)
					}
				}
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 20 {
		t.Fatalf("found %d bad fixtures, want at least 20", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			wants, backend, secrets := fixtureDirectives(t, path)
			if len(wants)+len(backend) == 0 {
				t.Fatal("fixture has no # want: line")
			}
			cfg, err := Load(path)
			if len(wants) == 0 {
				// Only a back-end sees what is wrong.
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Load returned a config with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error %T is not Errors: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(errs) {
				t.Fatalf("Error() has %d lines for %d errors:\n%v", len(got), len(errs), err)
			}
			// Every want matches its own error, and every error is wanted.
			used := make([]bool, len(got))
		want:
			for _, w := range wants {
				for i, g := range got {
					if !used[i] && strings.Contains(g, w) {
						used[i] = true
						continue want
					}
				}
				t.Errorf("no error contains %q", w)
			}
			for i, g := range got {
				if !used[i] {
					t.Errorf("unexpected error %q", g)
				}
			}
			// Positioned and sorted by line.
			for i, e := range errs {
				if e.File != path {
					t.Errorf("error %q: File %q, want %q", e, e.File, path)
				}
				if i > 0 && e.Line < errs[i-1].Line {
					t.Errorf("errors not sorted by line:\n%v", err)
				}
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret value:\n%v", err)
				}
			}
			if t.Failed() {
				t.Logf("all errors:\n%v", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load error = %v, want os.ErrNotExist", err)
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cr := cfg.Credentials["api"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"state.path", cfg.State.Path, "/var/lib/rekey/state.db"},
		{"verify.timeout", cr.Verify.Timeout.Std(), 2 * time.Minute},
		{"monitor.window", cr.Monitor.Window.Std(), 10 * time.Minute},
		{"monitor.interval", cr.Monitor.Interval.Std(), 30 * time.Second},
		{"monitor.failure_threshold", cr.Monitor.FailureThreshold, 3},
		{"stage_timeout", cr.StageTimeout.Std(), 24 * time.Hour},
		{"daemon.listen", cfg.Daemon.Listen, "127.0.0.1:9464"},
		{"daemon.concurrency", cfg.Daemon.Concurrency, 4},
		{"rotate_every", cr.RotateEvery.Std(), 90 * 24 * time.Hour},
		{"location", cr.Location(), time.UTC},
		{"drain", cr.Drain == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadCheckDefaultsAndValues(t *testing.T) {
	cfg, err := Load("testdata/good/everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Credentials["billing.v2"]
	ch := b.Monitor.Checks[0]
	if ch.Method != "POST" || ch.Timeout.Std() != 2*time.Second || fmt.Sprint(ch.ExpectStatus) != "[200 204]" {
		t.Errorf("check = %+v", ch)
	}
	if got := ch.Headers["Authorization"].Ref; got != "env:HEALTH_TOKEN" {
		t.Errorf("header ref = %q", got)
	}
	if b.RotateEvery.Std() != (10*24+12)*time.Hour || b.StageTimeout.Std() != 48*time.Hour {
		t.Errorf("rotate_every %v, stage_timeout %v", b.RotateEvery, b.StageTimeout)
	}
	if b.Location().String() != "Europe/Berlin" {
		t.Errorf("Location = %v", b.Location())
	}
	if b.Window != "@daily" {
		t.Errorf("window = %q", b.Window)
	}
	// The sink merged from an anchor keeps its own path and the anchor's type.
	search := cfg.Credentials["search"]
	if search.Sinks[1].Type != "vault-kv" {
		t.Errorf("merged sink type = %q", search.Sinks[1].Type)
	}
	var vk struct {
		Address string `yaml:"address"`
		Path    string `yaml:"path"`
	}
	if err := search.Sinks[1].Decode(&vk); err != nil || vk.Path != "search/apex" || vk.Address != "https://vault.internal:8200" {
		t.Errorf("Decode = %+v, %v", vk, err)
	}
	// A check without expect_status gets [200]; no notify.on means every event.
	if got := fmt.Sprint(cfg.Notify[0].On); got != "[success rollback failure overdue]" {
		t.Errorf("notify.on = %s", got)
	}
	if cfg.Daemon.Listen != ":9464" || cfg.Daemon.Concurrency != 1 {
		t.Errorf("daemon = %+v", cfg.Daemon)
	}
	if got := fmt.Sprint(cfg.CredentialNames()); got != "[billing.v2 search]" {
		t.Errorf("CredentialNames = %s", got)
	}
}

func TestConfigPrintsNoLiteral(t *testing.T) {
	cfg, err := Load("testdata/good/everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const literal = "lit3ral-t0ken"
	mon := &cfg.Credentials["billing.v2"].Monitor
	mon.Checks[0].Headers["X-Probe"] = Secret{Ref: literal}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{string(b), fmt.Sprintf("%v", *mon), fmt.Sprintf("%+v", *mon), fmt.Sprintf("%#v", *mon)}
	for _, out := range outs {
		if strings.Contains(out, literal) {
			t.Errorf("output shows a literal header value: %s", out)
		}
	}
	if !strings.Contains(string(b), `"Authorization":"env:HEALTH_TOKEN"`) || !strings.Contains(string(b), `"X-Probe":"[REDACTED]"`) {
		t.Errorf("JSON should show references and redact literals: %s", b)
	}
}

func TestLabelFor(t *testing.T) {
	cr := &Credential{Label: "production-api-{{date}}"}
	now := time.Date(2026, 11, 25, 23, 30, 0, 0, time.FixedZone("X", -5*3600)) // 26th in UTC
	if got, want := cr.LabelFor(now, "7f3a9c01"), "production-api-20261126-7f3a9c01"; got != want {
		t.Errorf("LabelFor = %q, want %q", got, want)
	}
	cr = &Credential{Label: "static"}
	if got := cr.LabelFor(now, "abcdefgh"); got != "static-abcdefgh" {
		t.Errorf("LabelFor = %q", got)
	}
}

func TestLabelLengthLimit(t *testing.T) {
	// The longest accepted template expands to exactly 64 characters with
	// the date and the "-" + 8-character rotation ID.
	base, err := os.ReadFile("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		label string
		ok    bool
	}{
		{strings.Repeat("a", 55), true},
		{strings.Repeat("a", 56), false},
		{strings.Repeat("a", 46) + "-{{date}}", true}, // 46+1+8+9 = 64
		{strings.Repeat("a", 47) + "-{{date}}", false},
	} {
		data := strings.Replace(string(base), "label: api-{{date}}", "label: "+tc.label, 1)
		_, err := Parse("rekey.yaml", []byte(data))
		if (err == nil) != tc.ok {
			t.Errorf("label of %d chars: err = %v, want ok=%v", len(tc.label), err, tc.ok)
		}
		if tc.ok {
			cr := &Credential{Label: tc.label}
			if n := len(cr.LabelFor(time.Now(), "12345678")); n > 64 {
				t.Errorf("accepted label expands to %d chars", n)
			}
		}
	}
}

func TestCredentialLocationWithoutLoad(t *testing.T) {
	if got := (&Credential{Timezone: "Asia/Tokyo"}).Location().String(); got != "Asia/Tokyo" {
		t.Errorf("Location = %s", got)
	}
	if got := (&Credential{Timezone: "Nowhere/Else"}).Location(); got != time.UTC {
		t.Errorf("Location = %v, want UTC", got)
	}
}

package schema

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/config"
)

// TestDurationPatternAgreesWithParser checks the schema's duration pattern
// against config.ParseDuration: an editor must not flag what rekey
// accepts, nor pass what it refuses (negative durations parse, and are
// refused later by validation, so they only need to match).
func TestDurationPatternAgreesWithParser(t *testing.T) {
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{
		"90d", "1d12h", "2w", "30s", "500ms", "1.5h", "10m", "0", "1h30m", " 90d ", "-1h", "3us", "3µs", ".5s",
		"90", "90 days", "d", "", "1x", "1h 30m", "1.2.3s", "h1", "1d12", "ninety",
	} {
		_, err := config.ParseDuration(s)
		if parses, matches := err == nil, re.MatchString(s); parses != matches {
			t.Errorf("%q: ParseDuration ok %v, pattern matches %v", s, parses, matches)
		}
	}
}

func TestSecretPattern(t *testing.T) {
	re := regexp.MustCompile(SecretPattern)
	for s, want := range map[string]bool{
		"env:APEXVERIFY_MANAGEMENT_TOKEN": true, "file:/etc/rekey/state.key": true,
		"env:": false, "file:": false, "avm_literal": false, "env:A=B": false, "": false,
	} {
		if got := re.MatchString(s); got != want {
			t.Errorf("%q: matches %v, want %v", s, got, want)
		}
		if want {
			if err := (config.Secret{Ref: s}).Check(false); err != nil {
				t.Errorf("%q matches the pattern, but config refuses it: %v", s, err)
			}
		}
	}
}

func TestGenerateRefusesBadBackends(t *testing.T) {
	type withType struct {
		Type string `yaml:"type"`
	}
	type plain struct {
		A string `yaml:"a"`
	}
	for name, tc := range map[string]struct {
		b    Backend
		want string
	}{
		"not a struct":    {Backend{Type: "x", Config: 1}, "not a struct"},
		"a type field":    {Backend{Type: "x", Config: withType{}}, "field named type"},
		"an unknown enum": {Backend{Type: "x", Config: plain{}, Enums: map[string][]any{"b": {"c"}}}, "no field b"},
	} {
		_, err := Generate(nil, []Backend{tc.b})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Generate: %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, err := Generate(nil, []Backend{{Type: "x", Config: plain{}, Enums: map[string][]any{"a": {"c"}}}}); err != nil {
		t.Errorf("a good back-end: %v", err)
	}
	out, err := Generate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil || !strings.HasSuffix(string(out), "}\n") {
		t.Fatalf("Generate's output is not one JSON document ending in a newline: %v", err)
	}
}

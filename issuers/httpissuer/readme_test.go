package httpissuer_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEEntriesValidate decodes every issuer entry in the README's
// section on the http issuer, so the worked examples cannot drift from
// the config they describe.
func TestREADMEEntriesValidate(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start := strings.Index(s, "### The `http` issuer")
	end := strings.Index(s, "### Sinks")
	if start < 0 || end < start {
		t.Fatal("README has no http issuer section before Sinks")
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(s[start:end], -1)
	if len(blocks) != 6 {
		t.Fatalf("%d yaml blocks, want one per preset and the no-preset one", len(blocks))
	}
	entry := regexp.MustCompile(`(?s)^issuers:\n  [a-z-]+:\n(.*?)(credentials:|$)`)
	for _, b := range blocks {
		m := entry.FindStringSubmatch(b[1])
		if m == nil {
			t.Errorf("block without an issuer entry:\n%s", b[1])
			continue
		}
		if _, err := decodeIssuer(t, m[1]); err != nil {
			t.Errorf("README entry does not validate: %v\n%s", err, m[1])
		}
	}
}

package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// manyBadCredentials is a config of n credentials with several problems
// each, and as many issuers, so that messages listing the defined issuers
// are long.
func manyBadCredentials(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nstate:\n  encryption_key: env:REKEY_STATE_KEY\nissuers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  issuer-%05d:\n    type: apexverify\n    management_token: env:TOKEN\n", i)
	}
	b.WriteString("credentials:\n")
	for i := range n {
		fmt.Fprintf(&b, "  cred-%05d:\n    issuer: nope\n    label: \"bad label!\"\n    rotate_every: 0d\n    sinks: []\n", i)
	}
	return []byte(b.String())
}

// TestErrorsAreCapped: a huge config with many problems stops with the
// first MaxErrors, by line, and a count of the rest, fast.
func TestErrorsAreCapped(t *testing.T) {
	const n = 5000
	data := manyBadCredentials(n)
	start := time.Now()
	_, err := Parse("big.yaml", data)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Parse accepted the config")
	}
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	if len(lines) != MaxErrors+1 {
		t.Fatalf("%d lines (%d bytes), want %d errors and a last line", len(lines), len(msg), MaxErrors)
	}
	// Each credential has 4 problems: unknown issuer, label, rotate_every,
	// sinks.
	want := fmt.Sprintf("… and %d more errors", 4*n-MaxErrors)
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	// The first errors by line: those of the first credentials.
	if !strings.HasPrefix(lines[0], fmt.Sprintf("big.yaml:%d: credentials.cred-00000.issuer: unknown issuer", 3*n+7)) {
		t.Errorf("first line %q, want cred-00000's issuer", lines[0])
	}
	for _, l := range lines[:MaxErrors] {
		if !strings.Contains(l, "credentials.cred-000") {
			t.Errorf("line %q is not from the first credentials", l)
		}
	}
	if len(msg) > 64<<10 {
		t.Errorf("%d bytes of errors", len(msg))
	}
	if took > 5*time.Second {
		t.Errorf("Parse took %s", took)
	}
	t.Logf("%d credentials: %s, %d bytes of errors", n, took, len(msg))
}

// TestErrorsPrintCapped: Errors built elsewhere (cmd/rekey gathers every
// sink entry's) print at most MaxErrors lines and a count of the rest,
// including what an entry already capped left out.
func TestErrorsPrintCapped(t *testing.T) {
	var es Errors
	for i := range 2 * MaxErrors {
		es = append(es, &Error{File: "f.yaml", Line: i + 1, Msg: "bad"})
	}
	es = append(es, moreErrors(7))
	lines := strings.Split(es.Error(), "\n")
	if len(lines) != MaxErrors+1 || lines[MaxErrors-1] != fmt.Sprintf("f.yaml:%d: bad", MaxErrors) {
		t.Fatalf("%d lines, line %d %q", len(lines), MaxErrors, lines[min(len(lines), MaxErrors)-1])
	}
	if want := fmt.Sprintf("… and %d more errors", MaxErrors+7); lines[MaxErrors] != want {
		t.Errorf("last line %q, want %q", lines[MaxErrors], want)
	}
	if short := es[:3].Error(); strings.Count(short, "\n") != 2 {
		t.Errorf("3 errors print as %q", short)
	}
}

package config

import (
	"fmt"
	"testing"
)

// SecretRefs lists every secret field with its place: the config's own
// (the state key, a health check's header) and those the Backends hooks
// decoded in issuer and sink entries, in file order.
func TestSecretRefs(t *testing.T) {
	const doc = `version: 1
state:
  path: /var/lib/rekey/state.db
  encryption_key: file:/etc/rekey/state.key
issuers:
  apex:
    type: apexverify
    base_url: https://api.apexverify.com
    management_token: env:APEX_TOKEN
credentials:
  prod:
    issuer: apex
    label: prod-{{date}}
    rotate_every: 90d
    monitor:
      checks:
        - url: https://app.example.com/health
          headers:
            Authorization: env:HEALTH_TOKEN
    sinks:
      - type: file
        path: /etc/app/app.env
        key: API_KEY
`
	cfg, err := ParseWith("rekey.yaml", []byte(doc), fleetBackends)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cfg.SecretRefs() {
		got = append(got, fmt.Sprintf("%s:%d %s %s", r.File, r.Line, r.Field, r.Secret))
	}
	want := []string{
		"rekey.yaml:4 state.encryption_key file:/etc/rekey/state.key",
		"rekey.yaml:9 issuers.apex.management_token env:APEX_TOKEN",
		"rekey.yaml:19 credentials.prod.monitor.checks[0].headers.Authorization env:HEALTH_TOKEN",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SecretRefs:\n got %q\nwant %q", got, want)
	}
	// Without Backends the entries are not decoded: their secrets are unknown.
	plain, err := Parse("rekey.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plain.SecretRefs()); n != 2 {
		t.Errorf("Parse: %d refs, want 2 (the state key and the header)", n)
	}
}

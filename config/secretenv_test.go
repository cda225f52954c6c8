package config

import (
	"fmt"
	"testing"
)

func TestSecretEnv(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`version: 1
state:
  encryption_key: env:REKEY_STATE_KEY
issuers:
  apex: {type: apexverify, management_token: env:APEX_TOKEN}
  other: {type: apexverify, management_token: file:/etc/rekey/token}
credentials:
  api:
    issuer: apex
    label: api
    rotate_every: 1d
    sinks:
      - {type: file, path: /etc/app.env, key: K, on_change: [systemctl, reload, app]}
      - {type: github-actions, repository: a/b, name: K, token: env:GITHUB_PAT}
      - {type: aws-secretsmanager, secret_id: s, tags: {note: "env:FROM_A_TAG"}, env:A_KEY: 1}
    monitor:
      checks:
        - url: https://app.example/healthz
          headers: {Authorization: env:CHECK_AUTH, X-Literal: plain, X-File: file:/etc/h}
  web:
    issuer: other
    label: web
    rotate_every: 1d
    sinks:
      - &vault {type: vault-kv, auth: {method: approle, role_id: env:VAULT_ROLE_ID, secret_id: file:/etc/rekey/secret-id}}
  web2:
    issuer: other
    label: web2
    rotate_every: 1d
    sinks: [*vault, {type: file, path: /x, key: "env:"}]
notify:
  - {type: slack, url: env:SLACK_URL}
  - {type: webhook, url: env:APEX_TOKEN}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := "[APEX_TOKEN A_KEY CHECK_AUTH FROM_A_TAG GITHUB_PAT REKEY_STATE_KEY SLACK_URL VAULT_ROLE_ID]"
	if got := fmt.Sprint(cfg.SecretEnv()); got != want {
		t.Errorf("SecretEnv = %s, want %s", got, want)
	}
	for _, s := range append(cfg.Credentials["api"].Sinks, cfg.Credentials["web2"].Sinks...) {
		if got := fmt.Sprint(s.SecretEnv()); got != want {
			t.Errorf("%s: SinkSpec.SecretEnv = %s, want %s", s.Field, got, want)
		}
	}
	if got := (&SinkSpec{}).SecretEnv(); got != nil {
		t.Errorf("a SinkSpec not from Load: %v", got)
	}
}

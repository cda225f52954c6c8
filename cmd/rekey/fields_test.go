package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/issuers"
)

// fieldedIssuer is an issuer whose keys are pairs.
type fieldedIssuer struct {
	issuers.Issuer
	fields []string
}

func (f fieldedIssuer) Fields() []string { return f.fields }

func codeOf(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return -1
}

func loadFieldsConfig(t *testing.T, sinks string) *app {
	t.Helper()
	dir := t.TempDir()
	cfg := `version: 1
state: {path: ` + dir + `/state.db, encryption_key: env:REKEY_STATE_KEY}
issuers:
  apex: {type: apexverify, base_url: "https://api.apexverify.com", management_token: env:T}
credentials:
  aws:
    issuer: apex
    label: aws
    rotate_every: 90d
    sinks:
` + strings.ReplaceAll(sinks, "DIR", dir)
	p := filepath.Join(dir, "rekey.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &app{configPath: p}
}

func TestCheckFieldsAgainstTheIssuer(t *testing.T) {
	pair := fieldedIssuer{fields: []string{"secret", "id"}}
	for _, tc := range []struct {
		name, sinks, want string
	}{
		{"both sinks map the pair", `      - {type: file, path: DIR/a.env, fields: {id: AWS_ACCESS_KEY_ID, secret: AWS_SECRET_ACCESS_KEY}}
      - {type: file, path: DIR/b.json, format: json, fields: {id: access_key_id, secret: secret_access_key}}
`, ""},
		{"single-value sinks", `      - {type: file, path: DIR/a.env, key: AWS_ACCESS_KEY_ID}
`, "credentials.aws.sinks: issuer apex's keys have the fields id, secret: map each of them in every sink with fields:"},
		{"other fields", `      - {type: file, path: DIR/a.env, fields: {id: A, token: B}}
`, "credentials.aws.sinks: the sinks map the fields id, token, but issuer apex's keys have the fields id, secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := loadFieldsConfig(t, tc.sinks)
			cfg, err := a.loadConfig()
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			err = checkFields(cfg.Credentials["aws"], pair)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("checkFields: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("checkFields = %v, want %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), "rekey.yaml:11:"):
				t.Errorf("error %q is not placed at the sinks' line", err)
			case tc.want != "" && codeOf(err) != exitUsage:
				t.Errorf("exit code %d, want %d", codeOf(err), exitUsage)
			}
			// An issuer that decides per value (no Fielded) accepts any
			// shape.
			if err := checkFields(cfg.Credentials["aws"], nil); err != nil {
				t.Errorf("checkFields with an issuer that decides per value: %v", err)
			}
			// An issuer of single values (Fielded, no fields) wants key:.
			err = checkFields(cfg.Credentials["aws"], fieldedIssuer{})
			mapped := cfg.Credentials["aws"].Fields() != nil
			switch {
			case !mapped && err != nil:
				t.Errorf("checkFields of key: sinks with a single-value issuer: %v", err)
			case mapped && (err == nil || !strings.Contains(err.Error(), "issuer apex's keys are single values: the sinks hold them with key:, not fields:")):
				t.Errorf("checkFields of fields: sinks with a single-value issuer = %v, want a refusal", err)
			}
		})
	}
}

func TestValidateRejectsSinksThatDisagreeOnFields(t *testing.T) {
	a := loadFieldsConfig(t, `      - {type: file, path: DIR/a.env, fields: {id: AWS_ACCESS_KEY_ID, secret: AWS_SECRET_ACCESS_KEY}}
      - {type: aws-secretsmanager, secret_id: prod/aws, key: api_key}
`)
	_, err := a.loadConfig()
	want := "rekey.yaml:12: credentials.aws.sinks[1]: holds a single value, but sinks[0] maps the fields id, secret"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("loadConfig = %v, want %q", err, want)
	}
	if codeOf(err) != exitUsage {
		t.Errorf("exit code %d, want %d", codeOf(err), exitUsage)
	}
}

package apexverify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

// decodeIssuer parses a configuration whose issuers section is issuer (the
// lines under "  apex:") and decodes that entry as the type switch in
// cmd/rekey does.
func decodeIssuer(t *testing.T, issuer string) (apexverify.FileConfig, error) {
	t.Helper()
	data := "version: 1\n" + // line 1
		"state: {encryption_key: env:K}\n" + // 2
		"issuers:\n" + // 3
		"  apex:\n" + // 4
		issuer + // from line 5
		"credentials:\n  api: {issuer: apex, label: api, rotate_every: 1d, sinks: [{type: file, path: /x, format: raw}]}\n"
	cfg, err := config.Parse("rekey.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	spec := cfg.Issuers["apex"]
	if spec.Type != apexverify.Type {
		t.Fatalf("type %q", spec.Type)
	}
	var c apexverify.FileConfig
	return c, spec.Decode(&c)
}

func TestFileConfigDefaults(t *testing.T) {
	for name, yaml := range map[string]string{
		"absent": "    type: apexverify\n    management_token: env:APEX\n",
		"null":   "    type: apexverify\n    management_token: env:APEX\n    base_url:\n    timeout: null\n    max_active_keys: ~\n",
	} {
		c, err := decodeIssuer(t, yaml)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := apexverify.FileConfig{BaseURL: "https://api.apexverify.com", ManagementToken: config.Secret{Ref: "env:APEX"},
			Timeout: config.Duration(10 * time.Second), MaxActiveKeys: 10}
		if c != want {
			t.Errorf("%s: decoded %#v, want %#v", name, c, want)
		}
	}
}

func TestFileConfigValues(t *testing.T) {
	c, err := decodeIssuer(t, "    type: apexverify\n    base_url: http://127.0.0.1:8080/\n    management_token: file:/etc/rekey/token\n    timeout: 3s\n    max_active_keys: 2\n")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("REKEY_TEST_APEX", "avm_t0ken")
	c.ManagementToken = config.Secret{Ref: "env:REKEY_TEST_APEX"}
	rc, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if rc.BaseURL != "http://127.0.0.1:8080/" || rc.ManagementToken.Reveal() != "avm_t0ken" || rc.Timeout != 3*time.Second || rc.MaxActiveKeys != 2 {
		t.Errorf("resolved %+v", rc)
	}
	iss, err := apexverify.New(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if iss.MaxActiveKeys() != 2 || iss.Account() != "apexverify http://127.0.0.1:8080" {
		t.Errorf("issuer: limit %d, account %q", iss.MaxActiveKeys(), iss.Account())
	}
}

func TestFileConfigResolveNamesNoValue(t *testing.T) {
	c := apexverify.FileConfig{BaseURL: apexverify.DefaultBaseURL, ManagementToken: config.Secret{Ref: "env:REKEY_TEST_UNSET_APEX"}}
	_, err := c.Resolve()
	if err == nil || !strings.Contains(err.Error(), "REKEY_TEST_UNSET_APEX") || !strings.HasPrefix(err.Error(), "apexverify: management_token: ") {
		t.Errorf("Resolve with an unset variable: %v", err)
	}
}

// Every problem is reported at its file:line with the field's full path.
func TestFileConfigBad(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key": {"    type: apexverify\n    management_token: env:APEX\n    region: eu\n",
			"rekey.yaml:7: issuers.apex.region: unknown field (valid fields: base_url, management_token, timeout, max_active_keys)"},
		"bad base_url": {"    type: apexverify\n    base_url: ftp://api.apexverify.com\n    management_token: env:APEX\n",
			"rekey.yaml:6: issuers.apex.base_url: must be an http:// or https:// URL"},
		"no host": {"    type: apexverify\n    base_url: https://\n    management_token: env:APEX\n",
			"rekey.yaml:6: issuers.apex.base_url: URL needs a host"},
		"negative timeout": {"    type: apexverify\n    management_token: env:APEX\n    timeout: -5s\n",
			"rekey.yaml:7: issuers.apex.timeout: "},
		"zero timeout": {"    type: apexverify\n    management_token: env:APEX\n    timeout: 0s\n",
			"rekey.yaml:7: issuers.apex.timeout: must be greater than 0"},
		"max_active_keys 0": {"    type: apexverify\n    management_token: env:APEX\n    max_active_keys: 0\n",
			"rekey.yaml:7: issuers.apex.max_active_keys: must be at least 1"},
		"max_active_keys negative": {"    type: apexverify\n    management_token: env:APEX\n    max_active_keys: -3\n",
			"rekey.yaml:7: issuers.apex.max_active_keys: must be at least 1"},
		"max_active_keys not a number": {"    type: apexverify\n    management_token: env:APEX\n    max_active_keys: ten\n",
			"rekey.yaml:7: issuers.apex.max_active_keys: expected an integer, got a string"},
		"no token": {"    type: apexverify\n",
			"rekey.yaml:4: issuers.apex.management_token: required"},
		"literal token": {"    type: apexverify\n    management_token: avm_live_s3cr3t\n",
			"rekey.yaml:6: issuers.apex.management_token: literal secret values are not allowed here"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeIssuer(t, tc.yaml)
			var errs config.Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("Decode = %v, want one config error", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Decode = %q, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

package awsiam_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/issuers/awsiam"
)

// decodeIssuer decodes the issuer entry (the lines under "  iam:") as the
// switch in cmd/rekey does.
func decodeIssuer(t *testing.T, issuer string) (awsiam.FileConfig, error) {
	t.Helper()
	data := "version: 1\n" + // line 1
		"state: {encryption_key: env:K}\n" + // 2
		"issuers:\n" + // 3
		"  iam:\n" + // 4
		issuer + // from line 5
		"credentials:\n  api: {issuer: iam, label: api, rotate_every: 1d, sinks: [{type: file, path: /x, format: raw}]}\n"
	cfg, err := config.Parse("rekey.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	spec := cfg.Issuers["iam"]
	var c awsiam.FileConfig
	return c, spec.Decode(&c)
}

func TestFileConfigDefaultsAndValues(t *testing.T) {
	c, err := decodeIssuer(t, "    type: aws-iam\n    user_name: ci-deployer\n")
	if err != nil {
		t.Fatal(err)
	}
	want := awsiam.FileConfig{UserName: "ci-deployer", DeleteAfter: config.Duration(7 * 24 * time.Hour),
		VerifyTimeout: config.Duration(2 * time.Minute), Timeout: config.Duration(10 * time.Second)}
	if c != want {
		t.Errorf("decoded %#v, want %#v", c, want)
	}
	c, err = decodeIssuer(t, "    type: aws-iam\n    user_name: ci-deployer\n    account_id: \"123456789012\"\n    region: eu-west-1\n"+
		"    profile: rekey\n    endpoint: http://127.0.0.1:4566\n    delete_after: 0s\n    verify_timeout: 5m\n    timeout: 3s\n")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if rc.UserName != "ci-deployer" || rc.AccountID != "123456789012" || rc.Region != "eu-west-1" || rc.Profile != "rekey" ||
		rc.Endpoint != "http://127.0.0.1:4566" || rc.DeleteAfter != 0 || rc.VerifyTimeout != 5*time.Minute || rc.Timeout != 3*time.Second {
		t.Errorf("resolved %+v", rc)
	}
}

func TestFileConfigBad(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"no user":       {"    type: aws-iam\n", "rekey.yaml:4: issuers.iam.user_name: required"},
		"bad user":      {"    type: aws-iam\n    user_name: a b\n", "rekey.yaml:6: issuers.iam.user_name: \"a b\" is not an IAM user name"},
		"bad account":   {"    type: aws-iam\n    user_name: u\n    account_id: \"1234\"\n", "rekey.yaml:7: issuers.iam.account_id: must be 12 digits"},
		"bad region":    {"    type: aws-iam\n    user_name: u\n    region: mars\n", "rekey.yaml:7: issuers.iam.region: \"mars\" is not an AWS region"},
		"bad endpoint":  {"    type: aws-iam\n    user_name: u\n    endpoint: ftp://x\n", "rekey.yaml:7: issuers.iam.endpoint: must be an http(s) URL"},
		"negative":      {"    type: aws-iam\n    user_name: u\n    delete_after: -1h\n", "rekey.yaml:7: issuers.iam.delete_after: "},
		"zero verify":   {"    type: aws-iam\n    user_name: u\n    verify_timeout: 0s\n", "rekey.yaml:7: issuers.iam.verify_timeout: must be greater than 0"},
		"unknown field": {"    type: aws-iam\n    user_name: u\n    secret_access_key: x\n", "rekey.yaml:7: issuers.iam.secret_access_key: unknown field"},
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
		})
	}
}

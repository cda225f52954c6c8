package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An aws-iam credential is valid config, but no sink can write its
// two-field values until the sinks map fields: it is refused before any
// key is minted, never written as one encoded string.
func TestAWSIAMNeedsFieldMapping(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REKEY_TEST_IAM_STATE_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	cfg := filepath.Join(dir, "rekey.yaml")
	data := "version: 1\n" +
		"state: {path: " + filepath.Join(dir, "state.db") + ", encryption_key: env:REKEY_TEST_IAM_STATE_KEY}\n" +
		"issuers:\n  iam: {type: aws-iam, user_name: ci-deployer, region: us-east-1, endpoint: 'http://127.0.0.1:9'}\n" +
		"credentials:\n  deployer:\n    issuer: iam\n    label: deployer\n    rotate_every: 30d\n" +
		"    sinks: [{type: file, path: " + filepath.Join(dir, "aws.env") + ", format: dotenv, key: AWS_ACCESS_KEY_ID}]\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"-c", cfg, "validate"}, &out, &errOut); code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code := execute(context.Background(), []string{"-c", cfg, "run"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "fields: mapping") || !strings.Contains(errOut.String(), "access_key_id, secret_access_key") {
		t.Fatalf("run: exit %d, stderr %q; want exit %d refusing for want of a fields: mapping", code, errOut.String(), exitUsage)
	}
	if _, err := os.Stat(filepath.Join(dir, "aws.env")); !os.IsNotExist(err) {
		t.Errorf("the sink's file exists after a refused run (err %v)", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// An aws-iam credential whose sink holds a single value (key:) cannot
// hold its two-field values: it is refused before any key is minted,
// never written as one encoded string.
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
	if code != exitUsage || !strings.Contains(errOut.String(), "issuer iam's keys have the fields access_key_id, secret_access_key: map each of them in every sink with fields:") {
		t.Fatalf("run: exit %d, stderr %q; want exit %d refusing for want of a fields: mapping", code, errOut.String(), exitUsage)
	}
	if _, err := os.Stat(filepath.Join(dir, "aws.env")); !os.IsNotExist(err) {
		t.Errorf("the sink's file exists after a refused run (err %v)", err)
	}
}

// TestAWSIAMRotatesIntoFieldSinks rotates an IAM user's access key into a
// dotenv file (two variables) and a JSON file (two keys) through the CLI,
// against the fake IAM and STS, with a health check that reads the JSON
// file and asks the fake IAM whether its pair is an active key: both files
// end holding the new pair, the old key is deactivated, and no field value
// reaches the output. (TestRotateE2E and TestRollbackE2E run aws-iam too.)
func TestAWSIAMRotatesIntoFieldSinks(t *testing.T) {
	iam := fakeiam.New(t)
	iam.AddUser("ci-deployer")
	old := iam.CreateKey("ci-deployer")
	dir := t.TempDir()
	t.Setenv("REKEY_TEST_IAM_STATE_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	fakeAWSEnv(t, dir)
	env, js := filepath.Join(dir, "aws.env"), filepath.Join(dir, "aws.json")
	if err := os.WriteFile(env, []byte("REGION=eu-west-1\nAWS_ACCESS_KEY_ID="+old.ID+"\nAWS_SECRET_ACCESS_KEY="+old.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, []byte(`{"id": "`+old.ID+`", "secret": "`+old.Secret+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsSink, err := file.New(file.Config{Path: js, Format: "json", Fields: sinks.Fields{"access_key_id": "id", "secret_access_key": "secret"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var healthChecks atomic.Int32
	app := healthServer(t, jsSink, func(_ context.Context, v secret.Value) error {
		healthChecks.Add(1)
		for _, k := range iam.Keys("ci-deployer") {
			if k.Status == "Active" && k.ID == v.Field("access_key_id").Reveal() && k.Secret == v.Field("secret_access_key").Reveal() {
				return nil
			}
		}
		return errors.New("the JSON file's pair is no active key")
	})
	cfg := filepath.Join(dir, "rekey.yaml")
	data := "version: 1\n" +
		"state: {path: " + filepath.Join(dir, "state.db") + ", encryption_key: env:REKEY_TEST_IAM_STATE_KEY}\n" +
		"issuers:\n  iam: {type: aws-iam, user_name: ci-deployer, region: us-east-1, endpoint: '" + iam.URL + "'}\n" +
		"credentials:\n  deployer:\n    issuer: iam\n    label: deployer\n    rotate_every: 30d\n" +
		"    monitor: {window: 1s, interval: 1s, checks: [{url: '" + app.URL + "/healthz'}]}\n" +
		"    sinks:\n" +
		"      - {type: file, path: " + env + ", fields: {access_key_id: AWS_ACCESS_KEY_ID, secret_access_key: AWS_SECRET_ACCESS_KEY}}\n" +
		"      - {type: file, path: " + js + ", format: json, fields: {access_key_id: id, secret_access_key: secret}}\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"-c", cfg, "rotate", "deployer", "--force"}, &out, &errOut); code != exitOK {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if healthChecks.Load() == 0 {
		t.Error("the health check was never called")
	}
	keys := iam.Keys("ci-deployer")
	var fresh fakeiam.Key
	for _, k := range keys {
		switch {
		case k.ID == old.ID && k.Status != "Inactive":
			t.Errorf("old key is %s after the rotation, want Inactive", k.Status)
		case k.ID != old.ID:
			fresh = k
		}
	}
	if fresh.ID == "" || fresh.Status != "Active" {
		t.Fatalf("no new active key among %d", len(keys))
	}
	envData, _ := os.ReadFile(env)
	if want := "REGION=eu-west-1\nAWS_ACCESS_KEY_ID=" + fresh.ID + "\nAWS_SECRET_ACCESS_KEY=" + fresh.Secret + "\n"; string(envData) != want {
		t.Errorf("env file does not hold the new pair (and only it) after the rotation")
	}
	jsData, _ := os.ReadFile(js)
	if !strings.Contains(string(jsData), `"id": "`+fresh.ID+`"`) || !strings.Contains(string(jsData), `"secret": "`+fresh.Secret+`"`) {
		t.Errorf("json file does not hold the new pair")
	}
	for _, secretValue := range []string{old.Secret, fresh.Secret} {
		if strings.Contains(out.String()+errOut.String(), secretValue) {
			t.Errorf("a secret access key appears in rekey's output")
		}
	}
}

// fakeAWSEnv makes rekey's own AWS credentials fakeiam's administrator's,
// and nothing else of the environment or dir's neighbours.
func fakeAWSEnv(t *testing.T, dir string) {
	t.Setenv("AWS_ACCESS_KEY_ID", fakeiam.AdminKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", fakeiam.AdminSecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

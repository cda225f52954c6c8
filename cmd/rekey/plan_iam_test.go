package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/issuers/awsiam/fakeiam"
)

// IAM counts inactive access keys against its quota of two. After a
// rotation the old key stays inactive for delete_after (7 days by
// default), so a second rotation within that grace has no slot: plan must
// say so, naming the key and when it goes, instead of counting active
// keys only ("1 of 2 keys active (1 free)"). A key a person deactivated
// holds its slot until a person deletes it.
func TestPlanCountsInactiveIAMKeys(t *testing.T) {
	iam := fakeiam.New(t)
	iam.AddUser("ci-deployer")
	old := iam.CreateKey("ci-deployer")
	dir := t.TempDir()
	t.Setenv("REKEY_TEST_IAM_STATE_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	fakeAWSEnv(t, dir)
	env := filepath.Join(dir, "aws.env")
	if err := os.WriteFile(env, []byte("AWS_ACCESS_KEY_ID="+old.ID+"\nAWS_SECRET_ACCESS_KEY="+old.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rekey.yaml")
	data := "version: 1\n" +
		"state: {path: " + filepath.Join(dir, "state.db") + ", encryption_key: env:REKEY_TEST_IAM_STATE_KEY}\n" +
		"issuers:\n  iam: {type: aws-iam, user_name: ci-deployer, region: us-east-1, endpoint: '" + iam.URL + "'}\n" +
		"credentials:\n  deployer:\n    issuer: iam\n    label: deployer\n    rotate_every: 30d\n" +
		"    monitor: {window: 1s, interval: 1s}\n" +
		"    sinks:\n" +
		"      - {type: file, path: " + env + ", fields: {access_key_id: AWS_ACCESS_KEY_ID, secret_access_key: AWS_SECRET_ACCESS_KEY}}\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	issuerCheck := func() planCheck {
		t.Helper()
		var out, errOut bytes.Buffer
		execute(context.Background(), []string{"-c", cfg, "plan", "-o", "json"}, &out, &errOut)
		var r planReport
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("plan json: %v\n%s%s", err, out.String(), errOut.String())
		}
		checks := checksByKind(r, "issuer")
		if len(checks) != 1 {
			t.Fatalf("plan has %d issuer checks, want 1", len(checks))
		}
		return checks[0]
	}
	if c := issuerCheck(); c.Status != checkOK || !strings.Contains(c.Detail, "1 of 2 keys active (1 free)") {
		t.Fatalf("before any rotation: issuer check %+v; want ok with 1 of 2 keys active", c)
	}

	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"-c", cfg, "rotate", "deployer", "--force"}, &out, &errOut); code != exitOK {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	c := issuerCheck()
	if c.Status != checkProblem || !strings.Contains(c.Detail, "1 active and 1 inactive of 2 keys") ||
		!strings.Contains(c.Detail, old.ID+" is deleted after ") || !strings.Contains(c.Detail, "a rotation before then fails") {
		t.Fatalf("within the old key's grace: issuer check %+v; want a problem naming %s and when it is deleted", c, old.ID)
	}

	// Delete the old key as a person would, and deactivate the new one:
	// a slot is free, and the inactive key holds the other for good.
	var fresh fakeiam.Key
	for _, k := range iam.Keys("ci-deployer") {
		if k.ID != old.ID {
			fresh = k
		}
	}
	iam.Deactivate(fresh.ID)
	iam.Delete(old.ID)
	c = issuerCheck()
	if c.Status != checkOK || !strings.Contains(c.Detail, "0 active and 1 inactive of 2 keys (1 free)") ||
		!strings.Contains(c.Detail, fresh.ID+" is inactive and was not revoked by rekey") {
		t.Fatalf("with one key a person deactivated: issuer check %+v", c)
	}
}

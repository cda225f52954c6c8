package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks/awssm/fakesm"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
)

// TestRotateIntoAWSSecretsManager rotates a credential whose sinks are a
// JSON field of a Secrets Manager secret and a file. The app's health
// check reads the key back from Secrets Manager and calls the simulator.
// Then the same with failing health: rollback moves AWSCURRENT back.
func TestRotateIntoAWSSecretsManager(t *testing.T) {
	sm := fakesm.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := newEnv(t, envOptions{sinks: []string{
		`{type: aws-secretsmanager, secret_id: prod/crm/apexverify, key: api_key, region: us-east-1, endpoint: "` + sm.URL + `"}`,
	}})
	seedValue := e.current()
	sm.Seed("prod/crm/apexverify", `{"db_password":"keep-me","api_key":"`+seedValue.Reveal()+`"}`)
	fromAWS := func() (secret.Value, error) {
		cur, ok := sm.Current("prod/crm/apexverify")
		if !ok {
			return secret.Value{}, errors.New("no AWSCURRENT")
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(cur), &doc); err != nil {
			return secret.Value{}, err
		}
		if doc["db_password"] != "keep-me" {
			return secret.Value{}, errors.New("other fields of the secret were lost")
		}
		return secret.New(doc["api_key"]), nil
	}
	var appHealthy atomic.Bool
	appHealthy.Store(true)
	e.setHealthy(func() bool {
		v, err := fromAWS()
		if err != nil {
			return false
		}
		rememberValue(v)
		return e.Issuer.Verify(context.Background(), v) == nil && appHealthy.Load()
	})

	if code, out, errOut := e.cli("rotate", "prod"); code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out, errOut)
	}
	inAWS, err := fromAWS()
	if err != nil || !inAWS.Equal(e.current()) || inAWS.Equal(seedValue) {
		t.Fatalf("Secrets Manager does not hold the new key (err %v)", err)
	}
	e.invariants()
	versions := len(sm.Versions("prod/crm/apexverify"))

	appHealthy.Store(false)
	code, out, errOut := e.cli("rotate", "prod")
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d\n%s%s", code, out, errOut)
	}
	back, err := fromAWS()
	if err != nil || !back.Equal(inAWS) || !e.current().Equal(inAWS) {
		t.Fatalf("rollback did not restore AWSCURRENT and the file to the previous key (err %v)", err)
	}
	if got := len(sm.Versions("prod/crm/apexverify")); got != versions+1 {
		t.Errorf("%d versions after a rollback, want %d: rollback must move the stage, not write a copy", got, versions+1)
	}
	appHealthy.Store(true)
	e.invariants()
}

// TestRotateIntoGitHubActions rotates into an environment secret of the
// GitHub test server (which decrypts every PUT) and a file, then rolls
// back: the server holds the old plaintext again.
func TestRotateIntoGitHubActions(t *testing.T) {
	gh := ghtest.New(t)
	gh.AddRepo("acme/crm")
	gh.AddEnvironment("acme/crm", "production")
	t.Setenv("REKEY_TEST_GITHUB_TOKEN", gh.Token())
	e := newEnv(t, envOptions{sinks: []string{
		`{type: github-actions, repository: acme/crm, environment: production, name: APEXVERIFY_API_KEY, token: env:REKEY_TEST_GITHUB_TOKEN, base_url: "` + gh.URL + `/"}`,
	}})
	scope := ghtest.EnvScope("acme/crm", "production")
	seedValue := e.current()
	gh.SetSecret(scope, "APEXVERIFY_API_KEY", seedValue.Reveal())
	var appHealthy atomic.Bool
	appHealthy.Store(true)
	e.setHealthy(appHealthy.Load)

	if code, out, errOut := e.cli("rotate", "prod"); code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out, errOut)
	}
	plain, ok := gh.Plaintext(scope, "APEXVERIFY_API_KEY")
	if !ok || plain != e.current().Reveal() || plain == seedValue.Reveal() {
		t.Fatalf("GitHub does not hold the new key")
	}
	e.invariants()

	newKey := e.current()
	appHealthy.Store(false)
	if code, out, errOut := e.cli("rotate", "prod"); code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d\n%s%s", code, out, errOut)
	}
	plain, _ = gh.Plaintext(scope, "APEXVERIFY_API_KEY")
	if plain != newKey.Reveal() {
		t.Fatalf("rollback did not put the previous key back into GitHub")
	}
	appHealthy.Store(true)
	e.invariants()
}

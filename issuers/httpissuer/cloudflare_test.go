package httpissuer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// cloudflarePolicies is the create body a user writes for the preset.
const cloudflareBody = `{"name": "{{label}}", "policies": [{"effect": "allow", "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f"}], "resources": {"com.cloudflare.api.account.zone.*": "*"}}]}`

func cloudflareEntry(t *testing.T, srv *presettest.Cloudflare) string {
	t.Setenv("REKEY_TEST_CF_TOKEN", srv.ManagementToken())
	return "    type: http\n    preset: cloudflare-account-tokens\n    base_url: " + srv.BaseURL() + "\n" +
		"    auth: {token: env:REKEY_TEST_CF_TOKEN}\n" +
		"    create:\n      body: '" + cloudflareBody + "'\n"
}

func TestCloudflareContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		srv := presettest.NewCloudflare()
		t.Cleanup(srv.Close)
		iss, logs, _ := build(t, cloudflareEntry(t, srv))
		return issuertest.Fixture{
			Issuer: iss, ActiveCount: srv.ActiveCount, Advance: srv.Advance,
			UnknownID: "0123456789abcdef0123456789abcdef", Logs: logs.String,
		}
	})
}

// TestCloudflarePaginates: 120 tokens are 3 pages of 50; List reads all.
func TestCloudflarePaginates(t *testing.T) {
	srv := presettest.NewCloudflare()
	defer srv.Close()
	for range 120 {
		srv.Seed("old")
	}
	iss, _, _ := build(t, cloudflareEntry(t, srv))
	before := srv.Requests()
	keys, err := iss.List(context.Background())
	if err != nil || len(keys) != 120 {
		t.Fatalf("List = %d keys, %v; want 120", len(keys), err)
	}
	if n := srv.Requests() - before; n != 3 {
		t.Errorf("%d requests, want 3 pages of 50", n)
	}
	if _, ok := iss.(issuers.Identifier); ok {
		t.Error("cloudflare-account-tokens claims to identify keys; Cloudflare shows no public part of a token")
	}
}

// TestCloudflareRollRefused: a config that maps create to the Roll Token
// endpoint is refused at validation, whatever else it says.
func TestCloudflareRollRefused(t *testing.T) {
	for _, path := range []string{"/tokens/{{id}}/value", "/tokens/abc/value"} {
		_, err := decodeIssuer(t, "    type: http\n    preset: cloudflare-account-tokens\n    base_url: https://api.cloudflare.com/client/v4/accounts/x\n"+
			"    auth: {token: env:T}\n    create: {method: PUT, path: \""+path+"\", body: '{\"name\": \"{{label}}\"}'}\n")
		if err == nil || !strings.Contains(err.Error(), "create.path") || !strings.Contains(err.Error(), "revokes the old key at once") {
			t.Errorf("create.path %s: err = %v, want a refusal naming the roll", path, err)
		}
	}
}

// TestCloudflareNeedsPolicies: the preset cannot guess a token's
// permissions; without create.body the entry is refused, saying why.
func TestCloudflareNeedsPolicies(t *testing.T) {
	_, err := decodeIssuer(t, "    type: http\n    preset: cloudflare-account-tokens\n    base_url: https://api.cloudflare.com/client/v4/accounts/x\n    auth: {token: env:T}\n")
	if err == nil || !strings.Contains(err.Error(), "rekey.yaml:4: issuers.api.create.body: required by preset cloudflare-account-tokens") {
		t.Fatalf("err = %v", err)
	}
}

// TestCloudflareManagementRefused: Cloudflare's 403 "Authentication
// error" on a management call is the permanent management-auth error.
func TestCloudflareManagementRefused(t *testing.T) {
	srv := presettest.NewCloudflare()
	defer srv.Close()
	entry := cloudflareEntry(t, srv)
	t.Setenv("REKEY_TEST_CF_TOKEN", "not-the-management-token-0123456789abcd")
	iss, _, _ := build(t, entry)
	_, err := iss.List(context.Background())
	if !errors.Is(err, issuers.ErrUnauthorized) || !strings.Contains(err.Error(), "Authentication error") {
		t.Fatalf("List = %v, want the management-auth error with Cloudflare's message", err)
	}
}

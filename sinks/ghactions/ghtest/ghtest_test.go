package ghtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/nacl/box"
)

const value = "avk_live_ghtestvalue0123456789"

func client(t *testing.T, s *Server, token string) *github.Client {
	t.Helper()
	c := github.NewClient(nil).WithAuthToken(token)
	u, err := url.Parse(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

func sealFor(t *testing.T, key string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("public key is not 32 base64 bytes: %v", err)
	}
	var pub [32]byte
	copy(pub[:], raw)
	out, err := box.SealAnonymous(nil, []byte(value), &pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func status(resp *github.Response) int {
	if resp == nil || resp.Response == nil {
		return 0
	}
	return resp.StatusCode
}

func TestRepositorySecretProtocol(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(t, WithClock(clock))
	s.AddRepo("acme/crm")
	c := client(t, s, s.Token())
	ctx := context.Background()

	k, _, err := c.Actions.GetRepoPublicKey(ctx, "acme", "crm")
	if err != nil {
		t.Fatal(err)
	}
	put := func(keyID, sealed string) int {
		resp, _ := c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "crm",
			&github.EncryptedSecret{Name: "API_KEY", KeyID: keyID, EncryptedValue: sealed})
		return status(resp)
	}

	// Sealed for another key: GitHub cannot open it.
	otherPub, _, _ := box.GenerateKey(rand.Reader)
	if got := put(k.GetKeyID(), sealFor(t, base64.StdEncoding.EncodeToString(otherPub[:]))); got != http.StatusUnprocessableEntity {
		t.Errorf("value sealed for a wrong key: status %d, want 422", got)
	}
	if _, ok := s.Plaintext(RepoScope("acme/crm"), "API_KEY"); ok {
		t.Error("server stored a value it could not open")
	}
	if got := put(k.GetKeyID(), sealFor(t, k.GetKey())); got != http.StatusCreated {
		t.Errorf("create: status %d, want 201", got)
	}
	clock.Advance(90 * time.Second)
	if got := put(k.GetKeyID(), sealFor(t, k.GetKey())); got != http.StatusNoContent {
		t.Errorf("update: status %d, want 204", got)
	}
	if got, _ := s.Plaintext(RepoScope("acme/crm"), "api_key"); got != value {
		t.Error("server does not hold the value (names are case-insensitive)")
	}

	s.RotateKey(RepoScope("acme/crm"))
	if got := put(k.GetKeyID(), sealFor(t, k.GetKey())); got != http.StatusUnprocessableEntity {
		t.Errorf("stale key_id: status %d, want 422", got)
	}

	sec, _, err := c.Actions.GetRepoSecret(ctx, "acme", "crm", "API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if !sec.CreatedAt.Time.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) || !sec.UpdatedAt.Time.Equal(time.Date(2025, 1, 2, 3, 5, 35, 0, time.UTC)) {
		t.Errorf("created_at %s updated_at %s", sec.CreatedAt, sec.UpdatedAt)
	}
	req, _ := c.NewRequest("GET", "repos/acme/crm/actions/secrets/API_KEY", nil)
	var raw strings.Builder
	if _, err := c.Do(ctx, req, &raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw.String(), value) {
		t.Error("GET secret returned the value")
	}

	for _, name := range []string{"GITHUB_X", "1X", "A-B"} {
		resp, _ := c.Actions.CreateOrUpdateRepoSecret(ctx, "acme", "crm", &github.EncryptedSecret{Name: name, KeyID: s.KeyID(RepoScope("acme/crm")), EncryptedValue: "x"})
		if status(resp) != http.StatusUnprocessableEntity {
			t.Errorf("name %q: status %d, want 422", name, status(resp))
		}
	}
}

func TestAuthAndScopes(t *testing.T) {
	s := New(t)
	s.AddEnvironment("acme/crm", "production")
	s.AddOrg("acme")
	ctx := context.Background()

	if _, resp, _ := client(t, s, "ghp_wrong").Actions.GetRepoPublicKey(ctx, "acme", "crm"); status(resp) != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", status(resp))
	}
	c := client(t, s, s.Token())
	repo, _, err := c.Repositories.Get(ctx, "acme", "crm")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Actions.GetEnvPublicKey(ctx, int(repo.GetID()), "production"); err != nil {
		t.Errorf("environment public key: %v", err)
	}
	if _, resp, _ := c.Actions.GetEnvPublicKey(ctx, int(repo.GetID()), "staging"); status(resp) != http.StatusNotFound {
		t.Errorf("unknown environment: status %d, want 404", status(resp))
	}
	k, _, err := c.Actions.GetOrgPublicKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := c.Actions.CreateOrUpdateOrgSecret(ctx, "acme", &github.EncryptedSecret{Name: "K", KeyID: k.GetKeyID(), EncryptedValue: sealFor(t, k.GetKey())})
	if status(resp) != http.StatusUnprocessableEntity {
		t.Errorf("org secret without visibility: status %d, want 422", status(resp))
	}
	s.Forbid(OrgScope("acme"))
	if _, resp, _ := c.Actions.GetOrgPublicKey(ctx, "acme"); status(resp) != http.StatusForbidden {
		t.Errorf("forbidden scope: status %d, want 403", status(resp))
	}
}

func TestRateLimitRefusesEarlyRetries(t *testing.T) {
	clock := clockwork.NewFakeClock()
	s := New(t, WithClock(clock))
	s.AddRepo("acme/crm")
	get := func() *http.Response {
		req, _ := http.NewRequest("GET", s.URL+"/repos/acme/crm", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	s.SecondaryRateLimit(1, 10*time.Second, http.StatusTooManyRequests)
	if r := get(); r.StatusCode != 429 || r.Header.Get("Retry-After") != "10" {
		t.Fatalf("status %d Retry-After %q, want 429 and 10", r.StatusCode, r.Header.Get("Retry-After"))
	}
	clock.Advance(5 * time.Second)
	if r := get(); r.StatusCode != 429 {
		t.Errorf("retry before Retry-After: status %d, want 429", r.StatusCode)
	}
	clock.Advance(5 * time.Second)
	if r := get(); r.StatusCode != 200 {
		t.Errorf("retry after Retry-After: status %d, want 200", r.StatusCode)
	}
	s.PrimaryRateLimit(1, time.Minute)
	r := get()
	if r.StatusCode != 403 || r.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("primary: status %d remaining %q", r.StatusCode, r.Header.Get("X-RateLimit-Remaining"))
	}
	if r.Header.Get("X-RateLimit-Reset") == "" {
		t.Error("primary limit without X-RateLimit-Reset")
	}
}

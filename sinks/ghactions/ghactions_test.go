package ghactions

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

func TestContract(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		scope string
		setup func(*ghtest.Server)
	}{
		{
			name: "repository", cfg: Config{Repository: "acme/crm"},
			scope: ghtest.RepoScope("acme/crm"),
			setup: func(s *ghtest.Server) { s.AddRepo("acme/crm") },
		},
		{
			name: "environment", cfg: Config{Repository: "acme/crm", Environment: "production"},
			scope: ghtest.EnvScope("acme/crm", "production"),
			setup: func(s *ghtest.Server) { s.AddEnvironment("acme/crm", "production") },
		},
		{
			name: "environment-with-space", cfg: Config{Repository: "acme/crm", Environment: "staging eu"},
			scope: ghtest.EnvScope("acme/crm", "staging eu"),
			setup: func(s *ghtest.Server) { s.AddEnvironment("acme/crm", "staging eu") },
		},
		{
			name:  "organization",
			cfg:   Config{Organization: "acme", Visibility: "selected", SelectedRepositories: []string{"crm", "billing"}},
			scope: ghtest.OrgScope("acme"),
			setup: func(s *ghtest.Server) { s.AddOrg("acme"); s.AddRepo("acme/crm"); s.AddRepo("acme/billing") },
		},
		{
			name: "dependabot-repository", cfg: Config{Repository: "acme/crm", Dependabot: true},
			scope: ghtest.Dependabot(ghtest.RepoScope("acme/crm")),
			setup: func(s *ghtest.Server) { s.AddRepo("acme/crm") },
		},
		{
			name: "dependabot-organization", cfg: Config{Organization: "acme", Visibility: "private", Dependabot: true},
			scope: ghtest.Dependabot(ghtest.OrgScope("acme")),
			setup: func(s *ghtest.Server) { s.AddOrg("acme") },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Fixture {
				e := newEnv(t)
				tc.setup(e.srv)
				s := e.sink(t, tc.cfg)
				if want := "github-actions:" + tc.scope + "/" + secretName; s.Name() != want {
					t.Fatalf("Name() = %q, want %q", s.Name(), want)
				}
				return sinktest.Fixture{
					Sink: s,
					Peek: func(t *testing.T) (string, bool) { return e.srv.Plaintext(tc.scope, secretName) },
					Seed: func(t *testing.T, v string) { e.srv.SetSecret(tc.scope, secretName, v) },
				}
			})
		})
	}
}

func TestSinkIsWriteOnly(t *testing.T) {
	var s sinks.Sink = &Sink{}
	if _, ok := s.(sinks.Reader); ok {
		t.Error("Sink is a Reader, but GitHub never returns a secret's value")
	}
	if _, ok := s.(sinks.Rollbacker); ok {
		t.Error("Sink is a Rollbacker, but only a put of the old value can restore a GitHub secret")
	}
}

func TestPutReceipt(t *testing.T) {
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	s := e.sink(t, Config{Repository: "acme/crm"})
	ctx := context.Background()
	v1, v2 := sinktest.Value(t, "v1"), sinktest.Value(t, "v2")

	first, err := s.Put(ctx, v1, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || !first.At.Equal(start) || first.Version != "" || first.Previous != "" {
		t.Errorf("first receipt = %+v, want Created at %s and no version", first, start)
	}

	// GitHub answers 204 to the repeat; the receipt must still be the first's.
	e.clock.Advance(5 * time.Second)
	again, err := s.Put(ctx, v1, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("repeated put: receipt %+v, want the first %+v", again, first)
	}
	if got, _ := e.srv.Lookup(ghtest.RepoScope("acme/crm"), secretName); !got.UpdatedAt.Equal(start.Add(5 * time.Second)) {
		t.Errorf("repeat did not write again: updated_at %s", got.UpdatedAt)
	}

	next, err := s.Put(ctx, v2, "rot-2")
	if err != nil {
		t.Fatal(err)
	}
	if next.Created || next.RotationID != "rot-2" || !next.At.Equal(start.Add(5*time.Second)) {
		t.Errorf("second rotation receipt = %+v, want an update at %s", next, start.Add(5*time.Second))
	}
}

func TestOrganizationVisibility(t *testing.T) {
	for _, dependabot := range []bool{false, true} {
		t.Run(fmt.Sprintf("dependabot=%v", dependabot), func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddOrg("acme")
			crm, billing := e.srv.AddRepo("acme/crm"), e.srv.AddRepo("acme/billing")
			e.srv.AddRepo("acme/other")
			s := e.sink(t, Config{Organization: "acme", Visibility: "selected",
				SelectedRepositories: []string{"crm", "billing"}, Dependabot: dependabot})
			if _, err := s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1"); err != nil {
				t.Fatal(err)
			}
			scope := ghtest.OrgScope("acme")
			if dependabot {
				scope = ghtest.Dependabot(scope)
			}
			got, ok := e.srv.Lookup(scope, secretName)
			if !ok || got.Visibility != "selected" || fmt.Sprint(got.SelectedIDs) != fmt.Sprint([]int64{crm, billing}) {
				t.Errorf("org secret = visibility %q repos %v (present %v), want selected %v", got.Visibility, got.SelectedIDs, ok, []int64{crm, billing})
			}
		})
	}
}

func TestStaleKeyIsRefetchedOnce(t *testing.T) {
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	scope := ghtest.RepoScope("acme/crm")
	s := e.sink(t, Config{Repository: "acme/crm"})
	ctx := context.Background()
	if _, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1"); err != nil {
		t.Fatal(err)
	}
	e.srv.RotateKey(scope)
	v2 := sinktest.Value(t, "v2")
	if _, err := s.Put(ctx, v2, "rot-2"); err != nil {
		t.Fatalf("put after GitHub rotated its key: %v", err)
	}
	if got, _ := e.srv.Plaintext(scope, secretName); got != v2.Reveal() {
		t.Error("server does not hold the second value")
	}
	keyPath := "/repos/acme/crm/actions/secrets/public-key"
	putPath := "/repos/acme/crm/actions/secrets/" + secretName
	if n := e.srv.Count("GET", keyPath); n != 2 {
		t.Errorf("public key fetched %d times, want 2 (once, then once more when stale)", n)
	}
	if n := e.srv.Count("PUT", putPath); n != 3 {
		t.Errorf("%d PUTs, want 3 (rot-1, stale rot-2, retried rot-2)", n)
	}
}

func TestKeyRejectedAfterRefetchIsPermanent(t *testing.T) {
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	// Every PUT carries a key_id GitHub does not know.
	breakKeyID := rewriteTransport(func(r *http.Request) *http.Request {
		if r.Method != http.MethodPut {
			return r
		}
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["key_id"] = "1"
		body, _ = json.Marshal(m)
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		return r
	})
	s := e.sink(t, Config{Repository: "acme/crm"}, WithTransport(breakKeyID))
	ctx := context.Background()
	if _, err := s.Put(ctx, sinktest.Value(t, "v0"), "rot-0"); err == nil {
		t.Fatal("put with a rejected key succeeded")
	}
	v := sinktest.Value(t, "v1")
	_, err := s.Put(ctx, v, "rot-1") // cached key: rejected, refetched, rejected again
	assertPermanent(t, err, v, "github-actions:repos/acme/crm/"+secretName, "rejected the secret")
	if n := e.srv.Count("GET", "/repos/acme/crm/actions/secrets/public-key"); n != 2 {
		t.Errorf("public key fetched %d times, want 2", n)
	}
}

func TestRateLimits(t *testing.T) {
	cases := []struct {
		name  string
		limit func(*ghtest.Server)
		want  []time.Duration
	}{
		{"primary", func(s *ghtest.Server) { s.PrimaryRateLimit(2, 30*time.Second) }, []time.Duration{31 * time.Second, 31 * time.Second}},
		{"secondary-403", func(s *ghtest.Server) { s.SecondaryRateLimit(1, 20*time.Second, http.StatusForbidden) }, []time.Duration{20 * time.Second}},
		{"secondary-429", func(s *ghtest.Server) { s.SecondaryRateLimit(2, 1500*time.Millisecond, http.StatusTooManyRequests) }, []time.Duration{2 * time.Second, 2 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddRepo("acme/crm")
			s := e.sink(t, Config{Repository: "acme/crm"})
			tc.limit(e.srv)
			v := sinktest.Value(t, "v")
			if _, err := s.Put(context.Background(), v, "rot-1"); err != nil {
				t.Fatalf("put under a rate limit: %v", err)
			}
			if got, _ := e.srv.Plaintext(ghtest.RepoScope("acme/crm"), secretName); got != v.Reveal() {
				t.Error("server does not hold the value")
			}
			if got := e.waits(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("waited %v, want %v", got, tc.want)
			}
			logged := e.logs.FilterMessage("github rate limit: waiting").All()
			if len(logged) != len(tc.want) {
				t.Errorf("logged %d waits, want %d", len(logged), len(tc.want))
			}
			for _, entry := range e.logs.All() {
				sinktest.AssertNoLeak(t, fmt.Sprintf("%s %v", entry.Message, entry.ContextMap()), v)
			}
		})
	}
}

func TestRateLimitGivesUp(t *testing.T) {
	cases := []struct {
		name      string
		limit     func(*ghtest.Server)
		wantWaits int
	}{
		{"reset-too-far", func(s *ghtest.Server) { s.PrimaryRateLimit(1, time.Hour) }, 0},
		{"still-limited", func(s *ghtest.Server) { s.SecondaryRateLimit(100, time.Second, http.StatusTooManyRequests) }, maxRateLimitRetries},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddRepo("acme/crm")
			s := e.sink(t, Config{Repository: "acme/crm"})
			tc.limit(e.srv)
			v := sinktest.Value(t, "v")
			_, err := s.Put(context.Background(), v, "rot-1")
			if err == nil {
				t.Fatal("put succeeded under a lasting rate limit")
			}
			if errors.As(err, new(*backoff.PermanentError)) {
				t.Errorf("rate limit error is permanent, want retryable: %v", err)
			}
			if !strings.Contains(err.Error(), "rate limited") {
				t.Errorf("error %q does not say it was rate limited", err)
			}
			sinktest.AssertNoLeak(t, err.Error(), v)
			if n := len(e.waits()); n != tc.wantWaits {
				t.Errorf("waited %d times, want %d", n, tc.wantWaits)
			}
		})
	}
}

func TestRateLimitWaitHonoursContext(t *testing.T) {
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := clockwork.NewFakeClockAt(start) // timers never fire by themselves
	s := e.sink(t, Config{Repository: "acme/crm"}, WithClock(fake))
	e.srv.SecondaryRateLimit(1, time.Minute, http.StatusTooManyRequests)
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, sinktest.Value(t, "v"), "rot-1")
		done <- err
	}()
	if err := fake.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("put cancelled while waiting: err = %v, want context.Canceled", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		setup func(*ghtest.Server)
		token string // overrides the server's token
		want  []string
	}{
		{
			name: "missing-repository", cfg: Config{Repository: "acme/nope"},
			want: []string{"github-actions:repos/acme/nope/" + secretName, "repository acme/nope not found", "404"},
		},
		{
			name: "missing-environment-repository", cfg: Config{Repository: "acme/nope", Environment: "production"},
			want: []string{"repos/acme/nope/environments/production/" + secretName, "repository acme/nope not found"},
		},
		{
			name: "missing-environment", cfg: Config{Repository: "acme/crm", Environment: "production"},
			setup: func(s *ghtest.Server) { s.AddRepo("acme/crm") },
			want:  []string{"repos/acme/crm/environments/production/" + secretName, "environment production of repository acme/crm not found"},
		},
		{
			name: "missing-organization", cfg: Config{Organization: "acme", Visibility: "all"},
			want: []string{"orgs/acme/" + secretName, "organization acme not found"},
		},
		{
			name: "missing-selected-repository", cfg: Config{Organization: "acme", Visibility: "selected", SelectedRepositories: []string{"gone"}},
			setup: func(s *ghtest.Server) { s.AddOrg("acme") },
			want:  []string{"orgs/acme/" + secretName, "selected repository acme/gone not found"},
		},
		{
			name: "forbidden-repository", cfg: Config{Repository: "acme/crm"},
			setup: func(s *ghtest.Server) { s.AddRepo("acme/crm"); s.Forbid(ghtest.RepoScope("acme/crm")) },
			want:  []string{"repos/acme/crm/" + secretName, `"Secrets: read and write"`, "classic: repo", "403"},
		},
		{
			name: "forbidden-environment", cfg: Config{Repository: "acme/crm", Environment: "production"},
			setup: func(s *ghtest.Server) {
				s.AddEnvironment("acme/crm", "production")
				s.Forbid(ghtest.EnvScope("acme/crm", "production"))
			},
			want: []string{`"Environments: read and write"`},
		},
		{
			name: "forbidden-organization", cfg: Config{Organization: "acme", Visibility: "private"},
			setup: func(s *ghtest.Server) { s.AddOrg("acme"); s.Forbid(ghtest.OrgScope("acme")) },
			want:  []string{"orgs/acme/" + secretName, "admin:org"},
		},
		{
			name: "bad-token", cfg: Config{Repository: "acme/crm"}, token: "ghp_wrong",
			setup: func(s *ghtest.Server) { s.AddRepo("acme/crm") },
			want:  []string{"rejected the credentials", "401"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e.srv)
			}
			if tc.token != "" {
				tc.cfg.Token = tokenFile(t, tc.token)
			}
			s := e.sink(t, tc.cfg)
			v := sinktest.Value(t, "v")
			_, err := s.Put(context.Background(), v, "rot-1")
			assertPermanent(t, err, v, tc.want...)
			perr := s.Preflight(context.Background())
			assertPermanent(t, perr, v, tc.want...)
		})
	}
}

func assertPermanent(t *testing.T, err error, v secret.Value, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	sinktest.AssertNoLeak(t, err.Error(), v)
	t.Logf("error: %v", err)
	if !errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("error is not permanent: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestConfirm(t *testing.T) {
	ctx := context.Background()
	scope := ghtest.RepoScope("acme/crm")
	setup := func(t *testing.T) (*env, *Sink) {
		e := newEnv(t)
		e.srv.AddRepo("acme/crm")
		return e, e.sink(t, Config{Repository: "acme/crm"})
	}

	t.Run("WriteDidNotLand", func(t *testing.T) {
		e, s := setup(t)
		e.srv.SetSecret(scope, secretName, "old")
		e.clock.Advance(time.Hour)
		e.srv.DropWrites(true)
		r, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Confirm(ctx, r)
		if err == nil || !strings.Contains(err.Error(), "has not landed") {
			t.Fatalf("Confirm of a dropped write: err = %v, want updated_at not moved", err)
		}
		if errors.As(err, new(*backoff.PermanentError)) {
			t.Errorf("Confirm error is permanent; GitHub may still be propagating: %v", err)
		}
		e.srv.DropWrites(false)
		if _, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Confirm(ctx, r); err != nil {
			t.Errorf("Confirm after the write landed: %v", err)
		}
	})

	t.Run("NextWriteDropped", func(t *testing.T) {
		e, s := setup(t)
		e.srv.SetSecret(scope, secretName, "old")
		e.clock.Advance(time.Hour)
		e.srv.DropNextWrites(1)
		r, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Confirm(ctx, r); err == nil {
			t.Fatal("Confirm of the dropped write succeeded")
		}
		if r, err = s.Put(ctx, sinktest.Value(t, "v1"), "rot-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Confirm(ctx, r); err != nil {
			t.Errorf("Confirm of the write after the dropped one: %v", err)
		}
	})

	t.Run("SecretMissing", func(t *testing.T) {
		e, s := setup(t)
		e.srv.DropWrites(true)
		r, err := s.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Confirm(ctx, r); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("Confirm with no secret: err = %v", err)
		}
	})

	t.Run("SecondGranularity", func(t *testing.T) {
		e, s := setup(t)
		e.srv.SetSecret(scope, secretName, "v")
		updated := start
		r := sinks.Receipt{Sink: s.Name(), RotationID: "rot-1"}
		for _, tc := range []struct {
			at time.Time
			ok bool
		}{
			{updated, true},
			{updated.Add(999 * time.Millisecond), true},
			{updated.Add(time.Second + 999*time.Millisecond), true}, // write at x.999, Date one second later
			{updated.Add(2 * time.Second), false},
		} {
			r.At = tc.at
			if err := s.Confirm(ctx, r); (err == nil) != tc.ok {
				t.Errorf("updated_at %s, ack %s: err = %v, want ok %v", updated.Format(time.RFC3339), tc.at.Format(time.RFC3339Nano), err, tc.ok)
			}
		}
	})

	t.Run("OtherSinksReceipt", func(t *testing.T) {
		_, s := setup(t)
		err := s.Confirm(ctx, sinks.Receipt{Sink: "file:/etc/app.env#KEY", At: start})
		if !errors.As(err, new(*backoff.PermanentError)) {
			t.Errorf("Confirm of another sink's receipt: err = %v, want permanent", err)
		}
	})
}

func TestPreflight(t *testing.T) {
	e := newEnv(t)
	e.srv.AddEnvironment("acme/crm", "production")
	s := e.sink(t, Config{Repository: "acme/crm", Environment: "production"})
	if err := s.Preflight(context.Background()); err != nil {
		t.Fatalf("Preflight with no secret yet: %v", err)
	}
	e.srv.SetSecret(ghtest.EnvScope("acme/crm", "production"), secretName, "v0")
	if err := s.Preflight(context.Background()); err != nil {
		t.Fatalf("Preflight with a secret: %v", err)
	}
	for _, r := range e.srv.Requests() {
		if strings.HasPrefix(r, "PUT ") {
			t.Errorf("Preflight wrote: %s", r)
		}
	}
}

func TestAppInstallationAuth(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	app := &App{AppID: 42, InstallationID: 99, PrivateKey: config.Secret{Ref: "file:" + keyFile}}
	ctx := context.Background()

	t.Run("MintsAndRefreshes", func(t *testing.T) {
		// Installation tokens expire in real time, which the App transport
		// checks against time.Now: the server uses the real clock here.
		srv := ghtest.New(t)
		srv.AddRepo("acme/crm")
		srv.AddApp(42, 99, &key.PublicKey)
		// A token that expires within a minute is refreshed before use.
		srv.SetInstallationTokenTTL(30 * time.Second)
		s, err := New(Config{Repository: "acme/crm", Name: secretName, App: app, BaseURL: srv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		v1 := sinktest.Value(t, "v1")
		if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
			t.Fatalf("put as an app installation: %v", err)
		}
		if got, _ := srv.Plaintext(ghtest.RepoScope("acme/crm"), secretName); got != v1.Reveal() {
			t.Fatal("server does not hold the value")
		}
		if n := srv.MintedTokens(); n != 3 {
			t.Errorf("minted %d tokens for three requests (get, public key, put) with short-lived tokens, want 3", n)
		}
		srv.SetInstallationTokenTTL(time.Hour)
		if _, err := s.Put(ctx, sinktest.Value(t, "v2"), "rot-2"); err != nil { // refreshes the short-lived token once more
			t.Fatal(err)
		}
		if err := s.Preflight(ctx); err != nil { // reuses the hour-long token
			t.Fatal(err)
		}
		if n := srv.MintedTokens(); n != 4 {
			t.Errorf("minted %d tokens, want 4: the hour-long token must be reused", n)
		}
		sinktest.AssertNoLeak(t, fmt.Sprintf("%v %+v %#v", s, s, s), secret.New(string(pemBytes)))
	})

	t.Run("WrongKey", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		srv := ghtest.New(t)
		srv.AddRepo("acme/crm")
		srv.AddApp(42, 99, &other.PublicKey)
		s, err := New(Config{Repository: "acme/crm", Name: secretName, App: app, BaseURL: srv.URL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := sinktest.Value(t, "v")
		_, err = s.Put(ctx, v, "rot-1")
		assertPermanent(t, err, v, "app 42 installation 99", "app.private_key", "repos/acme/crm/"+secretName)
		if n := srv.MintedTokens(); n != 0 {
			t.Errorf("server minted %d tokens for a JWT signed with the wrong key", n)
		}
	})
}

func TestNew(t *testing.T) {
	t.Run("DefaultTokenFromEnvironment", func(t *testing.T) {
		e := newEnv(t)
		e.srv.AddRepo("acme/crm")
		t.Setenv("GITHUB_TOKEN", e.srv.Token())
		s, err := New(Config{Repository: "acme/crm", Name: secretName, BaseURL: e.srv.URL + "/"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1"); err != nil {
			t.Fatalf("put with $GITHUB_TOKEN: %v", err)
		}
		sinktest.AssertNoLeak(t, fmt.Sprintf("%v %+v %#v %s", s, s, s, s.Name()), secret.New(e.srv.Token()))
	})

	t.Run("MissingToken", func(t *testing.T) {
		t.Setenv("GITHUB_TOKEN", "")
		os.Unsetenv("GITHUB_TOKEN")
		_, err := New(Config{Repository: "acme/crm", Name: secretName}, nil)
		if err == nil || !strings.Contains(err.Error(), "env:GITHUB_TOKEN") {
			t.Errorf("New without a token: err = %v, want it to name env:GITHUB_TOKEN", err)
		}
	})

	t.Run("InvalidConfig", func(t *testing.T) {
		_, err := New(Config{Repository: "acme/crm", Name: "GITHUB_KEY", Token: config.Secret{Ref: "env:X"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("New with a reserved name: err = %v", err)
		}
	})

	t.Run("NoNetwork", func(t *testing.T) {
		// An unroutable base URL: New must not dial it.
		_, err := New(Config{Repository: "acme/crm", Name: secretName, Token: tokenFile(t, "ghp_x"), BaseURL: "https://192.0.2.1/api/v3"}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
}

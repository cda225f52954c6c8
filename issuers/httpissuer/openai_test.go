package httpissuer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// openAIEntry is an entry for preset openai-admin against srv. The list
// leaves out the management key (it is an admin key too, so the API lists
// it): the contract's account holds only the keys under test.
func openAIEntry(t *testing.T, srv *presettest.OpenAI) string {
	t.Setenv("REKEY_TEST_OPENAI_ADMIN_KEY", srv.ManagementKey())
	return "    type: http\n    preset: openai-admin\n    base_url: " + srv.URL + "\n" +
		"    auth: {token: env:REKEY_TEST_OPENAI_ADMIN_KEY}\n" +
		"    list: {items: \"$.data[?@.name != 'management']\"}\n"
}

func TestOpenAIContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		srv := presettest.NewOpenAI()
		t.Cleanup(srv.Close)
		iss, logs, _ := build(t, openAIEntry(t, srv))
		return issuertest.Fixture{
			Issuer:      iss,
			ActiveCount: func() int { return srv.ActiveCount() - 1 },
			Advance:     srv.Advance,
			UnknownID:   "key_0123456789abcdef",
			Logs:        logs.String,
		}
	})
}

func TestOpenAIAbilities(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	iss, _, _ := build(t, openAIEntry(t, srv))
	if _, ok := iss.(issuers.Identifier); !ok {
		t.Error("openai-admin is not an Identifier: the redacted value identifies a key")
	}
	if _, ok := iss.(issuers.UsageReporter); !ok {
		t.Error("openai-admin is not a UsageReporter: last_used_at is mapped")
	}
	if _, ok := iss.(issuers.KeyLimiter); ok {
		t.Error("openai-admin claims a key limit; OpenAI documents none")
	}
	if a := iss.(issuers.Account).Account(); a != "http "+srv.URL {
		t.Errorf("Account = %q", a)
	}
}

// TestOpenAICreateLostAnswer: the server creates the key, then the answer
// is lost. The issuer deletes the orphan and tries again: one key exists.
func TestOpenAICreateLostAnswer(t *testing.T) {
	for _, f := range []presettest.Fault{presettest.CreateThen500, presettest.CreateThenHangUp} {
		srv := presettest.NewOpenAI()
		iss, logs, _ := build(t, openAIEntry(t, srv))
		srv.InjectCreateFault(f)
		k, v, err := iss.Create(context.Background(), "lost-answer")
		if err != nil {
			t.Fatalf("fault %d: Create: %v", f, err)
		}
		keys, err := iss.Find(context.Background(), "lost-answer")
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, fk := range keys {
			if fk.Status == issuers.Active {
				active++
				if fk.ID != k.ID {
					t.Errorf("fault %d: active key %s is not the one returned (%s)", f, fk.ID, k.ID)
				}
			}
		}
		if active != 1 || srv.ActiveCount() != 2 {
			t.Errorf("fault %d: %d active keys labelled, %d at the server; want 1 and 2 (with the management key)", f, active, srv.ActiveCount())
		}
		if !strings.Contains(logs.String(), "create response was lost") {
			t.Errorf("fault %d: the orphan's revocation was not logged", f)
		}
		issuertest.AssertNoLeak(t, logs.String(), v, secret.New(srv.ManagementKey()))
		srv.Close()
	}
}

// TestOpenAIRateLimit: a 429 waits for its Retry-After, on the clock.
func TestOpenAIRateLimit(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	iss, _, auto := build(t, openAIEntry(t, srv))
	srv.InjectCreateFault(presettest.RateLimited)
	if _, _, err := iss.Create(context.Background(), "rate-limited"); err != nil {
		t.Fatalf("Create after a 429: %v", err)
	}
	if w := auto.Waits(); len(w) != 1 || w[0] != 7*time.Second {
		t.Errorf("waits %v, want [7s] (Retry-After)", w)
	}
	if srv.ActiveCount() != 2 {
		t.Errorf("%d keys, want 2: a 429 creates nothing and is retried once", srv.ActiveCount())
	}
}

// TestOpenAIManagementRefused: a wrong admin key is a permanent
// management-auth error, not a refused key, and names no secret.
func TestOpenAIManagementRefused(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	entry := openAIEntry(t, srv)
	t.Setenv("REKEY_TEST_OPENAI_ADMIN_KEY", "sk-admin-wrongwrongwrongwrongwrongwrong")
	iss, _, _ := build(t, entry)
	_, _, err := iss.Create(context.Background(), "x")
	if !errors.Is(err, issuers.ErrUnauthorized) || !strings.Contains(err.Error(), "management credentials refused") {
		t.Fatalf("Create with a refused admin key = %v, want the management-auth error", err)
	}
	if strings.Contains(err.Error(), "wrongwrong") {
		t.Errorf("the error carries the management key: %v", err)
	}
	if srv.ActiveCount() != 1 {
		t.Errorf("%d keys after a refused create", srv.ActiveCount())
	}
}

// TestOpenAICreateNeverAnswered: every create lands and its connection
// drops. Each orphan is deleted, and the final error wraps
// ErrMaybeCreated: the last request may still land after the clean-up.
func TestOpenAICreateNeverAnswered(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	iss, _, _ := build(t, openAIEntry(t, srv))
	for range 4 {
		srv.InjectCreateFault(presettest.CreateThenHangUp)
	}
	_, _, err := iss.Create(context.Background(), "never")
	if !errors.Is(err, issuers.ErrMaybeCreated) {
		t.Fatalf("Create = %v, want ErrMaybeCreated", err)
	}
	if n := srv.ActiveCount(); n != 1 {
		t.Errorf("%d admin keys, want 1 (the management key): every orphan deleted", n)
	}
}

package httpissuer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// sendgridEntry is preset sendgrid-api-keys against srv with management
// key mgmt; the list leaves out the management key (it is one of the
// account's keys).
func sendgridEntry(t *testing.T, srv *presettest.SendGrid, mgmt string) string {
	t.Setenv("REKEY_TEST_SENDGRID_KEY", mgmt)
	return "    type: http\n    preset: sendgrid-api-keys\n    base_url: " + srv.URL + "\n" +
		"    auth: {token: env:REKEY_TEST_SENDGRID_KEY}\n" +
		"    list: {items: \"$.result[?@.name != 'management']\"}\n"
}

// TestSendGridContract: SendGrid shows no creation time, so the suite runs
// with NoCreatedAt: keys must carry a zero CreatedAt, not a made-up one.
func TestSendGridContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		srv := presettest.NewSendGrid()
		t.Cleanup(srv.Close)
		iss, logs, _ := build(t, sendgridEntry(t, srv, srv.ManagementKey()))
		return issuertest.Fixture{
			Issuer: iss, ActiveCount: func() int { return srv.ActiveCount() - 1 },
			UnknownID: "aaaaaaaaaaaaaaaaaaaaaa", Logs: logs.String, NoCreatedAt: true,
		}
	})
}

// TestSendGridKeyLimitAndForbidden: SendGrid answers both a full account
// and a management key without the api_keys scopes with 403; only the
// first is the key limit (errors.key_limit_message), the second is
// refused management credentials. The preset reports the documented
// limit of 100 keys.
func TestSendGridKeyLimitAndForbidden(t *testing.T) {
	ctx := context.Background()
	srv := presettest.NewSendGrid()
	defer srv.Close()
	iss, _, _ := build(t, sendgridEntry(t, srv, srv.ManagementKey()))
	if kl, ok := iss.(issuers.KeyLimiter); !ok || kl.MaxActiveKeys() != 100 {
		t.Fatalf("issuer is not a KeyLimiter of 100 keys (%v)", ok)
	}
	srv.SetKeyLimit(2) // the management key and one more
	if _, _, err := iss.Create(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	_, _, err := iss.Create(ctx, "two")
	if !errors.Is(err, issuers.ErrKeyLimit) || errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("Create on a full account = %v, want issuers.ErrKeyLimit only", err)
	}
	mailOnly := srv.Seed("mail-only", []string{"mail.send"})
	weak, _, _ := build(t, sendgridEntry(t, srv, mailOnly))
	_, err = weak.List(ctx)
	if !errors.Is(err, httpissuer.ErrManagementAuth) || errors.Is(err, issuers.ErrKeyLimit) {
		t.Errorf("List with a key lacking api_keys.read = %v, want ErrManagementAuth, not the key limit", err)
	}
	// A key with any scopes may verify itself (GET /v3/scopes).
	if err := iss.Verify(ctx, secret.New(mailOnly)); err != nil {
		t.Errorf("Verify(mail.send key) = %v, want nil", err)
	}
}

// TestSendGridIdentifiesByIDInValue: the value SG.<id>.<secret> names its
// key; a value of another shape identifies nothing.
func TestSendGridIdentifiesByIDInValue(t *testing.T) {
	ctx := context.Background()
	srv := presettest.NewSendGrid()
	defer srv.Close()
	seed := srv.Seed("app", nil)
	srv.Seed("other", nil)
	iss, _, _ := build(t, sendgridEntry(t, srv, srv.ManagementKey()))
	id := iss.(issuers.Identifier)
	k, err := id.Identify(ctx, secret.New(seed))
	if err != nil || "SG."+k.ID+"." != seed[:len("SG.")+len(k.ID)+1] || k.Label != "app" {
		t.Fatalf("Identify(seeded key) = %+v, %v", k, err)
	}
	for _, v := range []string{"not-a-sendgrid-key", "SG..abc"} {
		if _, err := id.Identify(ctx, secret.New(v)); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Identify(%q) = %v, want issuers.ErrNotFound", v, err)
		}
	}
}

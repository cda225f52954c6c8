package httpissuer_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// twilioEntry is preset twilio-api-keys against srv, authenticated with
// the account SID and auth token; more is appended to the entry.
func twilioEntry(t *testing.T, srv *presettest.Twilio, more string) string {
	t.Setenv("REKEY_TEST_TWILIO_SID", srv.AccountSID())
	t.Setenv("REKEY_TEST_TWILIO_TOKEN", srv.AuthToken())
	return "    type: http\n    preset: twilio-api-keys\n    base_url: " + srv.BaseURL() + "\n" +
		"    auth: {basic: {username: env:REKEY_TEST_TWILIO_SID, password: env:REKEY_TEST_TWILIO_TOKEN}}\n" + more
}

// TestTwilioContract: Twilio keys are a SID and a secret, a two-field
// value; the suite checks every created value carries both fields.
func TestTwilioContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		srv := presettest.NewTwilio()
		t.Cleanup(srv.Close)
		iss, logs, _ := build(t, twilioEntry(t, srv, ""))
		return issuertest.Fixture{
			Issuer: iss, ActiveCount: srv.ActiveCount,
			UnknownID: "SK00000000000000000000000000000000", Logs: logs.String,
		}
	})
}

// TestTwilioPagesByNextPageURI: with pages of 2, five keys are three
// pages, followed through next_page_uri (which carries the PageToken the
// server insists on); no key is read twice or missed, and each seeded pair
// is identified by its SID.
func TestTwilioPagesByNextPageURI(t *testing.T) {
	ctx := context.Background()
	srv := presettest.NewTwilio()
	defer srv.Close()
	pairs := map[string]string{}
	for range 5 {
		sid, sec := srv.Seed("old")
		pairs[sid] = sec
	}
	iss, _, _ := build(t, twilioEntry(t, srv, "    list: {query: {PageSize: \"2\"}}\n"))
	before := srv.Requests()
	keys, err := iss.List(ctx)
	if err != nil || len(keys) != 5 {
		t.Fatalf("List = %d keys, %v; want 5", len(keys), err)
	}
	if n := srv.Requests() - before; n != 3 {
		t.Errorf("List made %d requests, want 3 pages", n)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
		if k.CreatedAt.IsZero() {
			t.Errorf("key %s has no created_at (RFC 2822 date_created)", k.ID)
		}
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != 5 {
		t.Errorf("List returned duplicates: %v", ids)
	}
	id := iss.(issuers.Identifier)
	for sid, sec := range pairs {
		k, err := id.Identify(ctx, secret.NewFields(map[string]string{"sid": sid, "secret": sec}))
		if err != nil || k.ID != sid {
			t.Errorf("Identify(pair %s) = %s, %v", sid, k.ID, err)
		}
	}
	if _, err := id.Identify(ctx, secret.New("SK00000000000000000000000000000000")); !errors.Is(err, issuers.ErrNotFound) {
		t.Errorf("Identify(a single value) = %v, want issuers.ErrNotFound", err)
	}
}

// TestTwilioVerifyNeedsBothFields: the verify call sends the pair as basic
// auth; a right SID with a wrong secret is refused.
func TestTwilioVerifyNeedsBothFields(t *testing.T) {
	ctx := context.Background()
	srv := presettest.NewTwilio()
	defer srv.Close()
	sid, sec := srv.Seed("app")
	iss, _, _ := build(t, twilioEntry(t, srv, ""))
	if err := iss.Verify(ctx, secret.NewFields(map[string]string{"sid": sid, "secret": sec})); err != nil {
		t.Fatalf("Verify(seeded pair) = %v", err)
	}
	err := iss.Verify(ctx, secret.NewFields(map[string]string{"sid": sid, "secret": sec + "x"}))
	if !errors.Is(err, issuers.ErrUnauthorized) {
		t.Errorf("Verify(wrong secret) = %v, want issuers.ErrUnauthorized", err)
	}
	if err := iss.Verify(ctx, secret.New(sec)); err == nil {
		t.Error("Verify(a single value) succeeded; want an error")
	}
	if f, ok := iss.(issuers.Fielded); !ok || !slices.Equal(f.Fields(), []string{"secret", "sid"}) {
		t.Errorf("issuer is not Fielded with [secret sid] (%v)", ok)
	}
}

// TestURLPaginationToOtherHostRefused: with pagination type url, the
// management credentials never follow a next page URL to another host.
func TestURLPaginationToOtherHostRefused(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other host got a request (Authorization set: %v)", r.Header.Get("Authorization") != "")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys": [{"sid": "SK00000000000000000000000000000001", "friendly_name": "a", "date_created": "Mon, 13 Jun 2016 22:50:08 +0000"}], "next_page_uri": %q}`,
			other.URL+"/2010-04-01/Accounts/AC1/Keys.json?Page=1")
	}))
	defer srv.Close()
	t.Setenv("U", "AC1")
	t.Setenv("P", "token")
	iss, _, _ := build(t, "    type: http\n    preset: twilio-api-keys\n    base_url: "+srv.URL+"/2010-04-01/Accounts/AC1\n    auth: {basic: {username: env:U, password: env:P}}\n")
	_, err := iss.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("List = %v, want a refusal of the foreign next page URL", err)
	}
}

// TestFieldsHalfAPairIsNoValue: a create answer carrying the SID but not
// the secret is no value: Create fails, and the key it made is deleted
// rather than left valid with its secret lost.
func TestFieldsHalfAPairIsNoValue(t *testing.T) {
	const sid = "SK00000000000000000000000000000001"
	key := `{"sid": "` + sid + `", "friendly_name": "half", "date_created": "Mon, 13 Jun 2016 22:50:08 +0000"}`
	var deleted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, key) // no "secret"
		case r.Method == http.MethodGet:
			fmt.Fprint(w, key)
		case r.Method == http.MethodDelete:
			deleted = append(deleted, r.URL.Path)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	t.Setenv("U", "AC1")
	t.Setenv("P", "token")
	iss, _, _ := build(t, "    type: http\n    preset: twilio-api-keys\n    base_url: "+srv.URL+"/2010-04-01/Accounts/AC1\n    auth: {basic: {username: env:U, password: env:P}}\n")
	_, v, err := iss.Create(context.Background(), "half")
	if err == nil || !v.IsZero() {
		t.Fatalf("Create = %v (value set: %v), want an error and no value", err, !v.IsZero())
	}
	if !slices.Equal(deleted, []string{"/2010-04-01/Accounts/AC1/Keys/" + sid + ".json"}) {
		t.Errorf("deleted %v, want the half-answered key", deleted)
	}
}

package httpissuer_test

import (
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
	"github.com/rekeyhq/rekey/issuers/issuertest"
)

// datadogEntry is preset datadog-api-keys against srv; the list leaves
// out the management API key (it is one of the organization's keys).
func datadogEntry(t *testing.T, srv *presettest.Datadog, listSize string) string {
	t.Setenv("REKEY_TEST_DD_API_KEY", srv.ManagementAPIKey())
	t.Setenv("REKEY_TEST_DD_APP_KEY", srv.ApplicationKey())
	list := "    list: {items: \"$.data[?@.attributes.name != 'management']\"}\n"
	if listSize != "" {
		list = "    list:\n      items: \"$.data[?@.attributes.name != 'management']\"\n      pagination: {size: " + listSize + "}\n"
	}
	return "    type: http\n    preset: datadog-api-keys\n    base_url: " + srv.URL + "\n" +
		"    auth:\n      token: env:REKEY_TEST_DD_API_KEY\n      extra: [{header: DD-APPLICATION-KEY, token: env:REKEY_TEST_DD_APP_KEY}]\n" + list
}

func TestDatadogContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		srv := presettest.NewDatadog()
		t.Cleanup(srv.Close)
		iss, logs, _ := build(t, datadogEntry(t, srv, ""))
		return issuertest.Fixture{
			Issuer: iss, ActiveCount: func() int { return srv.ActiveCount() - 1 }, Advance: srv.Advance,
			UnknownID: "00000000-0000-0000-0000-000000000000", Logs: logs.String,
		}
	})
}

// TestDatadogPagesFromZero: page[number] starts at 0 and a short page
// ends the list; with pages of 2, five keys (and the management key) are
// three pages, and no key is read twice or missed.
func TestDatadogPagesFromZero(t *testing.T) {
	srv := presettest.NewDatadog()
	defer srv.Close()
	var seeded []string
	for range 5 {
		seeded = append(seeded, srv.Seed("old"))
	}
	iss, _, _ := build(t, datadogEntry(t, srv, "2"))
	keys, err := iss.List(context.Background())
	if err != nil || len(keys) != 5 {
		t.Fatalf("List = %d keys, %v; want 5", len(keys), err)
	}
	ids := map[string]bool{}
	for _, k := range keys {
		ids[k.ID] = true
	}
	if len(ids) != 5 {
		t.Errorf("List returned duplicates: %d distinct IDs", len(ids))
	}
	// Identify by last4 finds each seeded key, unless two share their
	// last four characters: then it must find neither.
	id := iss.(issuers.Identifier)
	last4 := map[string]int{}
	for _, v := range seeded { // the list leaves out the management key
		last4[v[len(v)-4:]]++
	}
	for _, v := range seeded {
		_, err := id.Identify(context.Background(), secret.New(v))
		if unique := last4[v[len(v)-4:]] == 1; unique != (err == nil) {
			t.Errorf("Identify(seeded key, last4 unique %v) = %v", unique, err)
		}
	}
}

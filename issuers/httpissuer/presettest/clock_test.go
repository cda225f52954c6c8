package presettest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/issuers/httpissuer/presettest"
)

func openAICall(t *testing.T, srv *presettest.OpenAI, method, path, key string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestKeysKeepDeletedWithTheClocksTime: with SetClock, a deleted key stays
// in Keys with its deletion time from that clock, KeyID still names it,
// and the server refuses it as OpenAI does (401); keys made in the same
// second of the clock are still a second apart.
func TestKeysKeepDeletedWithTheClocksTime(t *testing.T) {
	srv := presettest.NewOpenAI()
	defer srv.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	srv.SetClock(func() time.Time { return now })
	a, b := srv.Seed("a"), srv.Seed("b")
	idA, ok := srv.KeyID(a)
	if !ok {
		t.Fatal("KeyID does not know a live key")
	}
	if st := openAICall(t, srv, http.MethodGet, "/v1/organization/admin_api_keys?limit=1", a); st != http.StatusOK {
		t.Fatalf("live key: status %d, want 200", st)
	}
	now = now.Add(90 * time.Second)
	if st := openAICall(t, srv, http.MethodDelete, "/v1/organization/admin_api_keys/"+idA, srv.ManagementKey()); st != http.StatusOK {
		t.Fatalf("delete: status %d", st)
	}
	if st := openAICall(t, srv, http.MethodGet, "/v1/organization/admin_api_keys?limit=1", a); st != http.StatusUnauthorized {
		t.Errorf("deleted key: status %d, want 401", st)
	}
	if id, ok := srv.KeyID(a); !ok || id != idA {
		t.Errorf("KeyID of the deleted key = %q, %v; want %q", id, ok, idA)
	}
	var recA, recB presettest.KeyRecord
	for _, k := range srv.Keys() {
		switch k.Name {
		case "a":
			recA = k
		case "b":
			recB = k
		}
	}
	if !recA.Deleted.Equal(now) {
		t.Errorf("deleted key's Deleted = %v, want the clock's %v", recA.Deleted, now)
	}
	if !recB.Deleted.IsZero() {
		t.Errorf("live key's Deleted = %v, want zero", recB.Deleted)
	}
	if d := recB.Created.Sub(recA.Created); d < time.Second {
		t.Errorf("keys made in the same second of the clock are %v apart, want at least 1s", d)
	}
	if recA.Created.Before(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("created %v, before the clock's time", recA.Created)
	}
	if !recB.LastUsed.IsZero() {
		t.Errorf("unused key has LastUsed %v", recB.LastUsed)
	}
	if st := openAICall(t, srv, http.MethodGet, "/v1/organization/admin_api_keys?limit=1", b); st != http.StatusOK || srv.Keys()[2].LastUsed != now {
		t.Errorf("use of b: status %d, last used %v; want 200 at %v", st, srv.Keys()[2].LastUsed, now)
	}
}

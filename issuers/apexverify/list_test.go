package apexverify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

// keyList is a GET /v1/api-keys answer of n active keys of realistic size,
// the last with prefix "avk_live_Zz9".
func keyList(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"data": [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		prefix := fmt.Sprintf("avk_live_%03d", i%1000)
		if i == n-1 {
			prefix = "avk_live_Zz9"
		}
		fmt.Fprintf(&b, `{"id": "key_%024d", "label": "service-%05d-20261125-7f3a9b2c", "prefix": %q, "status": "active", "created_at": "2026-11-25T03:00:01Z", "last_used_at": "2026-11-26T10:11:12Z", "revoked_at": null}`, i, i, prefix)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// The bound of a key list grows with max_active_keys: an account of 10,000
// keys identifies a key among 8,000 (1.6 MB, past the 1 MiB every other
// answer is held to); the same answer to an issuer told the account has 10
// keys is refused, and says what to set.
func TestListBoundScalesWithMaxActiveKeys(t *testing.T) {
	const n = 8_000
	list := keyList(n)
	if len(list) <= 1<<20 {
		t.Fatalf("the list is %d bytes: it must exceed 1 MiB to test the bound", len(list))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/api-keys" && r.URL.Query().Get("label") == "" {
			_, _ = w.Write(list)
			return
		}
		_, _ = w.Write([]byte(`{"data": []}`))
	}))
	defer srv.Close()
	newIssuer := func(maxKeys int) *apexverify.Issuer {
		t.Helper()
		iss, err := apexverify.New(apexverify.Config{BaseURL: srv.URL, ManagementToken: secret.New("mgmt-token-0123456789"), MaxActiveKeys: maxKeys},
			nil, apexverify.WithClock(clocktest.New(clockwork.NewFakeClock())))
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	k, err := newIssuer(10_000).Identify(context.Background(), secret.New("avk_live_Zz9"+strings.Repeat("x", 37)))
	if err != nil || k.ID != fmt.Sprintf("key_%024d", n-1) {
		t.Fatalf("Identify among %d keys (max_active_keys 10000) = %+v, %v", n, k, err)
	}
	_, err = newIssuer(0).List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "key list exceeds 1048576 bytes (1024 per key of max_active_keys 10): set max_active_keys") {
		t.Errorf("List of %d keys (max_active_keys default) = %v, want the bound named", n, err)
	}
	if !errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("an oversized list is retried: %v", err)
	}
}

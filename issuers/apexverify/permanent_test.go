package apexverify_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

// calls runs every issuer call once, naming each.
func calls(iss *apexverify.Issuer, key secret.Value) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"create": func(ctx context.Context) error { _, _, err := iss.Create(ctx, "label-1"); return err },
		"list":   func(ctx context.Context) error { _, err := iss.List(ctx); return err },
		"find":   func(ctx context.Context) error { _, err := iss.Find(ctx, "label-1"); return err },
		"get":    func(ctx context.Context) error { _, err := iss.Get(ctx, "key_1"); return err },
		"revoke": func(ctx context.Context) error { return iss.Revoke(ctx, "key_1") },
		"verify": func(ctx context.Context) error { return iss.Verify(ctx, key) },
	}
}

// An untrusted certificate never becomes trusted by retrying: every call
// makes exactly one attempt (one TLS handshake at the server) and fails
// with a permanent error that names the cause.
func TestUntrustedCertificateIsNotRetried(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a request got through an unverified TLS connection")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()

	token := secret.New("mgmt-token-untrusted-0123456789")
	key := secret.New("sk_live_untrusted_0123456789abcdef")
	auto := clocktest.New(clockwork.NewFakeClock())
	iss, err := apexverify.New(apexverify.Config{BaseURL: srv.URL, ManagementToken: token}, nil, apexverify.WithClock(auto))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range calls(iss, key) {
		before := conns.Load()
		err := call(context.Background())
		if err == nil {
			t.Fatalf("%s: succeeded against an untrusted certificate", name)
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("%s: %d connections, want exactly 1", name, n)
		}
		if !errors.As(err, new(*backoff.PermanentError)) {
			t.Errorf("%s: error is not permanent: %v", name, err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: error does not name the certificate: %v", name, err)
		}
		for _, s := range []secret.Value{token, key} {
			if strings.Contains(err.Error(), s.Reveal()) {
				t.Errorf("%s: error holds a secret", name)
			}
		}
	}
	if w := auto.Waits(); len(w) != 0 {
		t.Errorf("waited %v between attempts; want no retry", w)
	}
}

// countingTransport counts the requests handed to it.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// A management token or key that cannot be sent as a header (here, one
// holding a newline) fails once, permanently, without its value in the
// error.
func TestInvalidHeaderValueIsNotRetried(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	rt := &countingTransport{}
	token := secret.New("mgmt-token-\nbroken-0123456789")
	key := secret.New("sk_live_\nbroken_0123456789abcdef")
	auto := clocktest.New(clockwork.NewFakeClock())
	iss, err := apexverify.New(apexverify.Config{BaseURL: srv.URL, ManagementToken: token,
		HTTPClient: &http.Client{Transport: rt}}, nil, apexverify.WithClock(auto))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range calls(iss, key) {
		before := rt.n.Load()
		err := call(context.Background())
		if err == nil {
			t.Fatalf("%s: succeeded with an invalid header", name)
		}
		if n := rt.n.Load() - before; n != 1 {
			t.Errorf("%s: %d attempts, want exactly 1", name, n)
		}
		if !errors.As(err, new(*backoff.PermanentError)) {
			t.Errorf("%s: error is not permanent: %v", name, err)
		}
		for _, s := range []secret.Value{token, key} {
			if strings.Contains(err.Error(), s.Reveal()) || strings.Contains(err.Error(), "broken") {
				t.Errorf("%s: error holds a secret", name)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests; want none", n)
	}
	if w := auto.Waits(); len(w) != 0 {
		t.Errorf("waited %v between attempts; want no retry", w)
	}
}

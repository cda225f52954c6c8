package apexverify_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
)

// Issuers of one host share one transport, which keeps as many idle
// connections per host as calls may run at once.
func TestTransportsShareByHost(t *testing.T) {
	trs := &apexverify.Transports{IdlePerHost: 40}
	a := trs.For("https://api.apexverify.com")
	if b := trs.For("HTTPS://api.apexverify.com/"); b != a {
		t.Error("the same base URL, spelled differently, got another transport")
	}
	if b := trs.For("https://api.apexverify.com/v2"); b != a {
		t.Error("another base path on the same host got another transport")
	}
	if b := trs.For("https://eu.apexverify.com"); b == a {
		t.Error("another host shares the transport")
	}
	if a.MaxIdleConnsPerHost != 40 {
		t.Errorf("MaxIdleConnsPerHost = %d, want IdlePerHost (40)", a.MaxIdleConnsPerHost)
	}
	if a.Proxy == nil || a.TLSHandshakeTimeout == 0 {
		t.Error("the transport lost http.DefaultTransport's proxy and timeouts")
	}
	var zero apexverify.Transports
	if n := zero.For("https://api.apexverify.com").MaxIdleConnsPerHost; n != apexverify.DefaultIdlePerHost {
		t.Errorf("zero Transports: MaxIdleConnsPerHost = %d, want %d", n, apexverify.DefaultIdlePerHost)
	}
}

// roundTripCounter counts the requests sent through it.
type roundTripCounter struct {
	n    int
	next http.RoundTripper
}

func (c *roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n++
	return c.next.RoundTrip(r)
}

// Config.Transport carries the issuer's requests, and redirects are still
// not followed.
func TestConfigTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("moved") == "" {
			http.Redirect(w, r, "/v1/api-keys?moved=1", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(`{"data": []}`))
	}))
	defer srv.Close()
	rt := &roundTripCounter{next: srv.Client().Transport}
	iss, err := apexverify.New(apexverify.Config{BaseURL: srv.URL, ManagementToken: secret.New("t"), Transport: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.List(context.Background()); err == nil {
		t.Error("List followed a redirect")
	}
	if rt.n != 1 {
		t.Errorf("%d requests through Config.Transport, want 1 (no redirect followed)", rt.n)
	}
}

// CloseIdleConnections closes every host's idle connections: the next
// request dials again.
func TestTransportsCloseIdleConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	trs := &apexverify.Transports{}
	c := &http.Client{Transport: trs.For(srv.URL)}
	get := func() {
		t.Helper()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get()
	get()
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for two sequential requests, want 1 (kept alive)", n)
	}
	trs.CloseIdleConnections()
	get()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections after CloseIdleConnections, want 2 (the idle one closed)", n)
	}
}

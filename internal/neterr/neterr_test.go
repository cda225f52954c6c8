package neterr_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/neterr"
)

// get makes one request with client and returns its error.
func get(t *testing.T, client *http.Client, url string, h http.Header) error {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		req.Header = h
	}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func trusting(srv *httptest.Server, edit func(*tls.Config)) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: pool}
	edit(cfg)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestPermanentRealErrors(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsSrv.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()

	const secretValue = "sk-live-neterr-test-0123456789"
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"unknown authority", get(t, &http.Client{}, tlsSrv.URL, nil), true},
		{"hostname mismatch", get(t, trusting(tlsSrv, func(c *tls.Config) { c.ServerName = "other.invalid" }), tlsSrv.URL, nil), true},
		{"expired", get(t, trusting(tlsSrv, func(c *tls.Config) {
			c.Time = func() time.Time { return time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }
		}), tlsSrv.URL, nil), true},
		{"invalid header value", get(t, plain.Client(), plain.URL, http.Header{"X-Api-Key": {secretValue + "\n"}}), true},
		{"invalid header name", get(t, plain.Client(), plain.URL, http.Header{"X Api Key": {"v"}}), true},
		{"trusted", get(t, tlsSrv.Client(), tlsSrv.URL, nil), false},
		{"connection refused", get(t, &http.Client{}, closedURL, nil), false},
		{"nil", nil, false},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), false},
		{"server message quoting net/http", errors.New("apexverify: status 400: net/http: invalid header field value for \"X\""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want && tt.err == nil {
				t.Fatal("request succeeded; want an error")
			}
			if got := neterr.Permanent(tt.err); got != tt.want {
				t.Errorf("Permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if tt.err != nil && strings.Contains(tt.err.Error(), secretValue) {
				t.Error("error holds the header value")
			}
		})
	}
}

func TestPermanentThroughWrapping(t *testing.T) {
	base := x509.UnknownAuthorityError{}
	for _, err := range []error{
		fmt.Errorf("a: %w", base),
		fmt.Errorf("a: %w", fmt.Errorf("b: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "h"}})),
		errors.Join(errors.New("other"), x509.CertificateInvalidError{Reason: x509.Expired}),
		fmt.Errorf("a: %w", errors.New("net/http: invalid header field value for \"X-Api-Key\"")),
	} {
		if !neterr.Permanent(err) {
			t.Errorf("Permanent(%v) = false, want true", err)
		}
	}
	if neterr.TLSVerification(fmt.Errorf("a: %w", errors.New("net/http: invalid header field value for \"X\""))) {
		t.Error("TLSVerification of a header error = true")
	}
}

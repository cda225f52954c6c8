package server_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/server"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "rekey_up 1\n") })
	s, err := server.Start("127.0.0.1:0", metrics)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	for _, c := range []struct {
		method, path string
		ready        bool
		code         int
		body         string
	}{
		{"GET", "/healthz", false, 200, "ok\n"},
		{"GET", "/readyz", false, 503, "not ready\n"},
		{"GET", "/metrics", false, 200, "rekey_up 1\n"},
		{"GET", "/readyz", true, 200, "ready\n"},
		{"GET", "/healthz", true, 200, "ok\n"},
		{"POST", "/healthz", true, 405, ""},
		{"GET", "/other", true, 404, ""},
	} {
		s.SetReady(c.ready)
		code, body := get(t, c.method, base+c.path)
		if code != c.code || c.body != "" && body != c.body {
			t.Errorf("%s %s (ready %v): %d %q, want %d %q", c.method, c.path, c.ready, code, body, c.code, c.body)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.Done():
		if err != nil {
			t.Errorf("Done after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Done not signalled after Close")
	}
}

func TestStartListenError(t *testing.T) {
	s, err := server.Start("127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := server.Start(s.Addr(), http.NotFoundHandler()); err == nil {
		t.Fatal("second listener on the same address")
	}
}

func TestWithPage(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "rekey_up 1\n") })
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<p>status</p>") })
	s, err := server.Start("127.0.0.1:0", metrics, server.WithPage(page))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	for _, c := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", 200, "<p>status</p>"},
		{"HEAD", "/", 200, ""},
		{"POST", "/", 405, ""},
		{"GET", "/other", 404, ""},
		{"GET", "/metrics", 200, "rekey_up 1\n"},
		{"GET", "/healthz", 200, "ok\n"},
	} {
		code, body := get(t, c.method, base+c.path)
		if code != c.code || c.body != "" && body != c.body {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, body, c.code, c.body)
		}
	}
	// Without the page, / is not found.
	s2, err := server.Start("127.0.0.1:0", metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if code, _ := get(t, "GET", "http://"+s2.Addr()+"/"); code != 404 {
		t.Errorf("GET / without a page: %d, want 404", code)
	}
}

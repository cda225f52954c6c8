package rotation_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/neterr"
	"github.com/rekeyhq/rekey/rotation"
)

// headerLog records the headers each request to a server carried.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) add(h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, h.Clone())
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

const checkSecret = "hc-secret-0123456789abcdef"

func TestHTTPCheckSendsHeadersOnlyToItsOrigin(t *testing.T) {
	var other, same headerLog
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.add(r.Header)
		_, _ = io.WriteString(w, "ok")
	}))
	defer second.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, second.URL+"/landing", http.StatusFound)
		case "/home":
			http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect)
		case "/ok":
			same.add(r.Header)
			_, _ = io.WriteString(w, "ok")
		default:
			http.NotFound(w, r)
		}
	}))
	defer first.Close()

	for name, client := range map[string]*http.Client{
		"default client":    nil,
		"configured client": {Timeout: 5 * time.Second}, // as cmd/rekey builds it
	} {
		t.Run(name, func(t *testing.T) {
			other.seen, same.seen = nil, nil
			header := http.Header{"X-Api-Key": {checkSecret}, "Authorization": {"Bearer " + checkSecret}}
			away := &rotation.HTTPCheck{URL: first.URL + "/away", Header: header, BodyContains: "ok", Client: client}
			if err := away.Check(context.Background()); err != nil {
				t.Fatalf("check through a redirect: %v", err)
			}
			seen := other.all()
			if len(seen) != 1 {
				t.Fatalf("second server saw %d requests, want 1", len(seen))
			}
			for k, v := range seen[0] {
				if strings.Contains(strings.Join(v, " "), checkSecret) {
					t.Errorf("the other host received the configured header %s", k)
				}
			}
			if seen[0].Get("Referer") != "" {
				t.Error("the other host received a Referer naming the check URL")
			}

			home := &rotation.HTTPCheck{URL: first.URL + "/home", Header: header, Client: client}
			if err := home.Check(context.Background()); err != nil {
				t.Fatalf("check through a same-origin redirect: %v", err)
			}
			if got := same.all(); len(got) != 1 || got[0].Get("X-Api-Key") != checkSecret {
				t.Error("a redirect within the check's origin lost the configured header")
			}
			if client != nil && client.CheckRedirect != nil {
				t.Error("the configured client was modified")
			}
		})
	}
}

func TestHTTPCheckKeepsTheClientsRedirectPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	defer srv.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c := &rotation.HTTPCheck{URL: srv.URL, ExpectStatus: []int{http.StatusFound}, Client: noFollow}
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("the client's CheckRedirect was ignored: %v", err)
	}
	loop := &rotation.HTTPCheck{URL: srv.URL}
	if err := loop.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "10 redirects") {
		t.Fatalf("endless redirects: %v, want stopped after 10", err)
	}
}

// A check that cannot verify the server's certificate, or cannot send its
// header, says so; it is still an ordinary failed probe.
func TestHTTPCheckNamesLocalFailures(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	err := (&rotation.HTTPCheck{Name: "crm", URL: tlsSrv.URL}).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check crm: server certificate not trusted") || !neterr.Permanent(err) {
		t.Errorf("untrusted certificate: %v", err)
	}

	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	err = (&rotation.HTTPCheck{Name: "crm", URL: plain.URL, Header: http.Header{"X-Api-Key": {checkSecret + "\n"}}}).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check crm: configured header cannot be sent") || !neterr.Permanent(err) {
		t.Errorf("invalid header value: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), checkSecret) {
		t.Error("the error holds the header value")
	}
}

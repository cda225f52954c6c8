package soak

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultRule answers (or delays) the next n requests whose method is one of
// methods (empty: any) and whose path contains frag.
type faultRule struct {
	methods []string
	frag    string
	n       int // < 0: until cleared
	status  int // 0: forward after delay
	body    string
	delay   time.Duration
}

// faultProxy is a reverse proxy that injects faults in front of a server:
// statuses instead of answers, and delays longer than the caller's timeout.
type faultProxy struct {
	URL   string
	rp    *httputil.ReverseProxy
	mu    sync.Mutex
	rules []*faultRule
	hits  int
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{rp: httputil.NewSingleHostReverseProxy(u)}
	p.rp.ErrorLog = nil
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// add queues a rule; methods is a comma-separated list ("" for any).
func (p *faultProxy) add(methods, frag string, n, status int, delay time.Duration, body string) {
	r := &faultRule{frag: frag, n: n, status: status, delay: delay, body: body}
	if methods != "" {
		r.methods = strings.Split(methods, ",")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

// clear drops every rule not yet used up.
func (p *faultProxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// injected returns how many requests a rule has hit.
func (p *faultProxy) injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

func (p *faultProxy) take(r *http.Request) *faultRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, rule := range p.rules {
		if len(rule.methods) > 0 && !contains(rule.methods, r.Method) {
			continue
		}
		if !strings.Contains(r.URL.Path, rule.frag) {
			continue
		}
		p.hits++
		if rule.n > 0 {
			rule.n--
			if rule.n == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		c := *rule
		return &c
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rule := p.take(r); rule != nil {
		if rule.delay > 0 {
			t := time.NewTimer(rule.delay)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the caller gave up: nothing reaches the server
				t.Stop()
				return
			}
		}
		if rule.status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rule.status)
			w.Write([]byte(rule.body))
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

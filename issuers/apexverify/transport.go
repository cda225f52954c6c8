package apexverify

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// DefaultIdlePerHost is the MaxIdleConnsPerHost of a Transports' transports
// when IdlePerHost is smaller: Go's default of 2 makes every third
// concurrent caller of one host open, and soon close, a new connection.
const DefaultIdlePerHost = 16

// Transports hands out one *http.Transport per API host (scheme and host of
// a base URL), so that the issuers of a config, often many entries for one
// ApexVerify account, share their connections instead of each holding a
// pool. Its zero value is ready; it is safe for concurrent use. The
// transports live as long as the Transports: idle connections close after
// the transport's IdleConnTimeout.
type Transports struct {
	// IdlePerHost is each transport's MaxIdleConnsPerHost, at least
	// DefaultIdlePerHost; set it to the number of calls that may run at
	// once (the daemon's concurrency) before the first For.
	IdlePerHost int

	mu     sync.Mutex
	byHost map[string]*http.Transport
}

// For returns the transport for baseURL's scheme and host, creating it on
// first use from http.DefaultTransport's settings (proxy from the
// environment, timeouts) with MaxIdleConnsPerHost set.
func (t *Transports) For(baseURL string) *http.Transport {
	key := strings.TrimRight(baseURL, "/")
	if u, err := url.Parse(key); err == nil && u.Host != "" {
		key = strings.ToLower(u.Scheme + "://" + u.Host)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.byHost[key]; ok {
		return tr
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(t.IdlePerHost, DefaultIdlePerHost)
	tr.MaxIdleConns = 0 // no limit across hosts: each host has its own transport
	if t.byHost == nil {
		t.byHost = map[string]*http.Transport{}
	}
	t.byHost[key] = tr
	return tr
}

// CloseIdleConnections closes the idle connections of every transport
// handed out; those in use are not affected and stay reusable after.
func (t *Transports) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byHost {
		tr.CloseIdleConnections()
	}
}

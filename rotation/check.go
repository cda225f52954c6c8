package rotation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/neterr"
)

// Check is one health check run during the monitoring window.
type Check interface {
	// Check returns nil when healthy. Errors hold no secret.
	Check(ctx context.Context) error
}

// HTTPCheck requests a URL and judges the answer.
//
// Redirects are followed (up to the client's limit, 10 by default), but
// Header is sent only to the origin of URL (its scheme, host and port):
// when a redirect leads to another origin, every header named in Header is
// removed from that request and those after it, as is the Referer, the way
// curl --location (without --location-trusted) treats credentials. A
// redirect back to URL's origin sends Header again. The Client's own
// CheckRedirect, if any, still runs after that.
type HTTPCheck struct {
	Name         string
	Method       string // default GET
	URL          string
	Header       http.Header // may hold secrets: never logged
	ExpectStatus []int       // default [200]
	BodyContains string
	BodyRegex    *regexp.Regexp
	Timeout      time.Duration // default 5s
	Client       *http.Client  // default http.DefaultClient; never modified
}

// Check implements Check.
func (h *HTTPCheck) Check(ctx context.Context) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL, nil)
	if err != nil {
		return fmt.Errorf("check %s: %w", h.name(), err)
	}
	if h.Header != nil {
		req.Header = h.Header.Clone()
	}
	resp, err := h.client().Do(req)
	if err != nil {
		switch {
		case neterr.TLSVerification(err):
			return fmt.Errorf("check %s: server certificate not trusted: %w", h.name(), err)
		case neterr.InvalidHeader(err):
			return fmt.Errorf("check %s: configured header cannot be sent: %w", h.name(), err)
		}
		return fmt.Errorf("check %s: %w", h.name(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("check %s: read body: %w", h.name(), err)
	}
	want := h.ExpectStatus
	if len(want) == 0 {
		want = []int{http.StatusOK}
	}
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("check %s: status %d, want %v", h.name(), resp.StatusCode, want)
	}
	if h.BodyContains != "" && !strings.Contains(string(body), h.BodyContains) {
		return fmt.Errorf("check %s: body lacks %q", h.name(), h.BodyContains)
	}
	if h.BodyRegex != nil && !h.BodyRegex.Match(body) {
		return fmt.Errorf("check %s: body does not match %s", h.name(), h.BodyRegex)
	}
	return nil
}

// client returns a copy of the configured client (sharing its transport)
// whose CheckRedirect keeps Header from other origins.
func (h *HTTPCheck) client() *http.Client {
	c := http.Client{}
	if h.Client != nil {
		c = *h.Client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != origin(via[0].URL) {
			for k := range h.Header {
				req.Header.Del(k)
			}
			req.Header.Del("Referer")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// origin is u's scheme, host and port, the port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func (h *HTTPCheck) name() string {
	if h.Name != "" {
		return h.Name
	}
	return h.URL
}

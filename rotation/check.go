package rotation

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Check is one health check run during the monitoring window.
type Check interface {
	// Check returns nil when healthy. Errors hold no secret.
	Check(ctx context.Context) error
}

// HTTPCheck requests a URL and judges the answer.
type HTTPCheck struct {
	Name         string
	Method       string // default GET
	URL          string
	Header       http.Header // may hold secrets: never logged
	ExpectStatus []int       // default [200]
	BodyContains string
	BodyRegex    *regexp.Regexp
	Timeout      time.Duration // default 5s
	Client       *http.Client  // default http.DefaultClient
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
	req.Header = h.Header.Clone()
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
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

func (h *HTTPCheck) name() string {
	if h.Name != "" {
		return h.Name
	}
	return h.URL
}

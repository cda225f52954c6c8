package ghactions

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
)

const (
	// maxRateLimitWait bounds one wait; a longer reset fails the call with
	// a retryable error instead of holding a rotation for up to an hour.
	maxRateLimitWait = 15 * time.Minute
	// maxRateLimitRetries bounds the attempts after rate-limited answers.
	maxRateLimitRetries = 4
	// secondaryWait is GitHub's advice when a secondary limit names no time.
	secondaryWait = time.Minute
)

// rateLimitTransport waits out GitHub's rate limits below go-github, so that
// go-github's own rate-limit bookkeeping (which uses the real clock) never
// sees a limited answer it would then enforce client-side. Primary limits
// (403/429 with X-RateLimit-Remaining: 0) wait until X-RateLimit-Reset;
// secondary ones until Retry-After, or a minute when it is missing.
type rateLimitTransport struct {
	next  http.RoundTripper
	clock clockwork.Clock
	sleep func(context.Context, time.Duration) error
	log   *zap.Logger
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	try := req
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(try)
		if err != nil {
			return nil, err
		}
		wait, limited := t.waitFor(resp)
		canReplay := req.Body == nil || req.GetBody != nil
		if !limited || attempt > maxRateLimitRetries || wait > maxRateLimitWait || !canReplay {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		t.log.Info("github rate limit: waiting", zap.Duration("wait", wait), zap.Int("attempt", attempt))
		if err := t.sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		try = req.Clone(req.Context())
		if req.GetBody != nil {
			if try.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// waitFor reports whether resp is a rate-limit answer and how long to wait.
func (t *rateLimitTransport) waitFor(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	now := t.clock.Now()
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			return max(time.Duration(secs)*time.Second, time.Second), true
		}
		if at, err := http.ParseTime(ra); err == nil {
			return max(at.Sub(now), time.Second), true
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(reset, 0).Sub(now)+time.Second, time.Second), true
		}
		return secondaryWait, true
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return secondaryWait, true
	}
	// A 403 is a permission problem unless its message names a secondary
	// rate limit; peek at it and put it back for go-github.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
	if strings.Contains(strings.ToLower(string(body)), "secondary rate limit") {
		return secondaryWait, true
	}
	return 0, false
}

type readCloser struct {
	io.Reader
	io.Closer
}

package ghactions

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/retry"
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
	log   *zap.Logger
}

// rateLimited is a rate-limited answer worth waiting for, and how long.
type rateLimited time.Duration

func (l rateLimited) Error() string { return "rate limited for " + time.Duration(l).String() }

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var resp *http.Response
	p := retry.Policy{
		Tries: maxRateLimitRetries + 1, Clock: t.clock,
		Permanent: func(err error) bool { return !errors.As(err, new(rateLimited)) },
		After: func(err error) time.Duration {
			var l rateLimited
			errors.As(err, &l)
			return time.Duration(l)
		},
		OnRetry: func(attempt int, wait time.Duration, _ error) {
			discard(resp)
			resp = nil
			t.log.Info("github rate limit: waiting", zap.Duration("wait", wait), zap.Int("attempt", attempt))
		},
	}
	sent := 0
	attempts, err := p.Do(req.Context(), func(context.Context) error {
		try := req
		if sent++; sent > 1 {
			try = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return err
				}
				try.Body = body
			}
		}
		var err error
		if resp, err = t.next.RoundTrip(try); err != nil {
			return err
		}
		wait, limited := t.waitFor(resp)
		canReplay := req.Body == nil || req.GetBody != nil
		if !limited || wait > maxRateLimitWait || !canReplay {
			return nil
		}
		return rateLimited(wait)
	})
	switch {
	case err == nil:
		return resp, nil
	case p.Permanent(err):
		return nil, err
	case attempts == p.Tries: // still limited: go-github reports the last answer
		return resp, nil
	default: // ctx ended
		discard(resp)
		return nil, req.Context().Err()
	}
}

// discard drains and closes a response that will not be returned, if any,
// so that its connection can be reused.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
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

// Package retry runs a step again after transient failures: exponential
// backoff with jitter, bounded by tries and by time, waiting on an injected
// clock so that tests never sleep. It is the one retry loop of rekey's
// engine, issuer client, sinks and notifiers.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/neterr"
)

// Policy says how often and how long to retry. The zero value retries
// forever with a 1 s initial wait doubling to 30 s, on the real clock.
type Policy struct {
	// Initial is the first wait; it doubles up to Max.
	Initial, Max time.Duration
	// Jitter spreads each wait by up to ±Jitter of itself (0.5 = ±50%);
	// 0 waits exactly.
	Jitter float64
	// Tries bounds the attempts (0: no bound).
	Tries int
	// For bounds the time from the first attempt: no wait starts that
	// would end past it (0: no bound).
	For time.Duration
	// Clock waits and tells the time; nil is the real clock.
	Clock clockwork.Clock
	// Permanent reports an error no retry can fix; nil is IsPermanent.
	Permanent func(error) bool
	// After returns a wait the server named for err (Retry-After), or 0.
	After func(error) time.Duration
	// OnRetry, if set, is called before each wait.
	OnRetry func(attempt int, wait time.Duration, err error)
}

// IsPermanent reports whether err was marked permanent (backoff.Permanent)
// or is a local error no retry can fix (neterr.Permanent).
func IsPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p) || neterr.Permanent(err)
}

// Do calls f until it returns nil, returns a permanent error, the policy's
// tries or time run out, or ctx ends. It returns f's last error, and the
// number of attempts made. An interrupted wait returns f's last error too:
// the caller learns what failed, and ctx.Err() says why it stopped.
func (p Policy) Do(ctx context.Context, f func(context.Context) error) (attempts int, err error) {
	clock := p.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	permanent := p.Permanent
	if permanent == nil {
		permanent = IsPermanent
	}
	wait, limit := p.Initial, p.Max
	if wait <= 0 {
		wait = time.Second
	}
	if limit <= 0 {
		limit = 30 * time.Second
	}
	start := clock.Now()
	for n := 1; ; n++ {
		err = f(ctx)
		if err == nil || permanent(err) || ctx.Err() != nil || n == p.Tries {
			return n, err
		}
		d := p.jitter(wait)
		if p.After != nil {
			if a := p.After(err); a > 0 {
				d = a
			}
		}
		if p.For > 0 && clock.Since(start)+d > p.For {
			return n, err
		}
		if p.OnRetry != nil {
			p.OnRetry(n, d, err)
		}
		if Sleep(ctx, clock, d) != nil {
			return n, err
		}
		wait = min(wait*2, limit)
	}
}

func (p Policy) jitter(d time.Duration) time.Duration {
	if p.Jitter <= 0 {
		return d
	}
	spread := float64(d) * p.Jitter
	return d + time.Duration((rand.Float64()*2-1)*spread)
}

// Sleep waits d on clock, or until ctx ends (then it returns ctx.Err()).
func Sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) error {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.Chan():
		return nil
	}
}

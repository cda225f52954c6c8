package rotation

// Step timeouts, retries and sleeps, all on the engine's clock.

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
)

// call runs one issuer or sink call with the step timeout.
func call[T any](e *Engine, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, e.stepTimeout())
	defer cancel()
	return f(cctx)
}

// callErr is call for a step that returns only an error.
func callErr(e *Engine, ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, e.stepTimeout())
	defer cancel()
	return f(cctx)
}

// retry repeats f with backoff until it succeeds, fails permanently, or
// RetryFor passes.
func (e *Engine) retry(ctx context.Context, f func(context.Context) error) error {
	return e.retryN(ctx, 0, f)
}

// retryN is retry bounded to tries attempts as well (0: no bound).
func (e *Engine) retryN(ctx context.Context, tries int, f func(context.Context) error) error {
	_, err := retry.Policy{Initial: time.Second, Max: 30 * time.Second, Jitter: 0.5, Tries: tries, For: e.retryFor(),
		Clock: e.Clock, Permanent: isPermanent}.Do(ctx, func(ctx context.Context) error { return callErr(e, ctx, f) })
	return err
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	return retry.Sleep(ctx, e.Clock, d)
}

func (e *Engine) stepTimeout() time.Duration {
	if e.StepTimeout > 0 {
		return e.StepTimeout
	}
	return 2 * time.Minute
}

func (e *Engine) retryFor() time.Duration {
	if e.RetryFor > 0 {
		return e.RetryFor
	}
	return 5 * time.Minute
}

// isPermanent reports whether retrying err is pointless: marked permanent
// by a back-end, or a local error no retry can fix (an untrusted
// certificate, a header that cannot be sent).
func isPermanent(err error) bool { return retry.IsPermanent(err) }

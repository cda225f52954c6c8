package retry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/retry"
)

func newClock() *clocktest.Auto { return clocktest.New(clockwork.NewFakeClock()) }

var errFlaky = errors.New("503")

func TestDoSucceedsAfterTransientFailures(t *testing.T) {
	clock := newClock()
	start := clock.Now()
	var waits []time.Duration
	calls := 0
	n, err := retry.Policy{Initial: time.Second, Max: 4 * time.Second, Clock: clock,
		OnRetry: func(_ int, d time.Duration, _ error) { waits = append(waits, d) },
	}.Do(context.Background(), func(context.Context) error {
		calls++
		if calls < 5 {
			return errFlaky
		}
		return nil
	})
	if err != nil || n != 5 {
		t.Fatalf("attempts %d err %v, want 5 and nil", n, err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v (doubling, capped)", waits, want)
	}
	if got := clock.Since(start); got != 11*time.Second {
		t.Errorf("clock moved %v, want 11s", got)
	}
}

func TestDoStopsAtPermanentErrors(t *testing.T) {
	for name, perm := range map[string]error{
		"marked":    backoff.Permanent(errFlaky),
		"wrapped":   fmt.Errorf("put: %w", backoff.Permanent(errFlaky)),
		"untrusted": &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}},
	} {
		t.Run(name, func(t *testing.T) {
			n, err := retry.Policy{Clock: newClock()}.Do(context.Background(), func(context.Context) error { return perm })
			if n != 1 || err != perm {
				t.Errorf("attempts %d err %v, want one attempt and the error itself", n, err)
			}
		})
	}
}

func TestDoBoundsTriesAndTime(t *testing.T) {
	fail := func(context.Context) error { return errFlaky }
	if n, err := (retry.Policy{Tries: 3, Clock: newClock()}).Do(context.Background(), fail); n != 3 || !errors.Is(err, errFlaky) {
		t.Errorf("tries: attempts %d err %v, want 3", n, err)
	}
	clock := newClock()
	start := clock.Now()
	n, err := retry.Policy{Initial: time.Second, Max: time.Second, For: 10 * time.Second, Clock: clock}.Do(context.Background(), fail)
	if !errors.Is(err, errFlaky) || n != 11 || clock.Since(start) > 10*time.Second {
		t.Errorf("time: attempts %d after %v, want 11 within 10s", n, clock.Since(start))
	}
}

func TestDoWaitsWhatTheServerNames(t *testing.T) {
	var waits []time.Duration
	calls := 0
	_, err := retry.Policy{Initial: time.Second, Clock: newClock(),
		After:   func(error) time.Duration { return 7 * time.Second },
		OnRetry: func(_ int, d time.Duration, _ error) { waits = append(waits, d) },
	}.Do(context.Background(), func(context.Context) error {
		if calls++; calls < 3 {
			return errFlaky
		}
		return nil
	})
	if err != nil || fmt.Sprint(waits) != "[7s 7s]" {
		t.Errorf("waits %v err %v, want Retry-After honoured", waits, err)
	}
}

func TestDoJitterStaysInBounds(t *testing.T) {
	for range 200 {
		var wait time.Duration
		_, _ = retry.Policy{Initial: time.Second, Jitter: 0.5, Tries: 2, Clock: newClock(),
			OnRetry: func(_ int, d time.Duration, _ error) { wait = d },
		}.Do(context.Background(), func(context.Context) error { return errFlaky })
		if wait < 500*time.Millisecond || wait > 1500*time.Millisecond {
			t.Fatalf("wait %v outside 1s ±50%%", wait)
		}
	}
}

func TestDoStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := clockwork.NewFakeClock() // timers never fire by themselves
	done := make(chan error)
	go func() {
		_, err := retry.Policy{Clock: clock}.Do(ctx, func(context.Context) error { return errFlaky })
		done <- err
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, errFlaky) {
		t.Errorf("err %v, want the last error", err)
	}
}

package apexverify

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Waits records the waits an Issuer asked for instead of waiting.
type Waits struct {
	mu  sync.Mutex
	d   []time.Duration
	now time.Time
}

// All returns every wait asked for so far.
func (w *Waits) All() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.d)
}

// NoWait makes i record its retry waits instead of sleeping; its notion of
// elapsed time advances by each wait, so the overall bound still applies.
func NoWait(i *Issuer) *Waits {
	w := &Waits{now: time.Now()}
	i.now = func() time.Time {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.now
	}
	i.sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.d = append(w.d, d)
		w.now = w.now.Add(d)
		return nil
	}
	return w
}

// Package clocktest has a fake clock for tests of code that waits on an
// injected clockwork.Clock (internal/retry and its callers).
package clocktest

import (
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Auto is a fake clock whose timers made by NewTimer fire at once, moving
// its time forward by their duration, and which records every such
// duration. Waits cost no real time, and time budgets still run out.
type Auto struct {
	*clockwork.FakeClock
	mu    sync.Mutex
	waits []time.Duration
}

// New returns an Auto on fake: fake's time moves with every wait, so code
// sharing fake (a simulator, say) sees the waits pass.
func New(fake *clockwork.FakeClock) *Auto { return &Auto{FakeClock: fake} }

// NewTimer returns a timer that has already fired, d later than now.
func (c *Auto) NewTimer(d time.Duration) clockwork.Timer {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	t := c.FakeClock.NewTimer(d)
	c.FakeClock.Advance(d)
	return t
}

// Waits returns the duration of every timer made so far, in order.
func (c *Auto) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.waits)
}

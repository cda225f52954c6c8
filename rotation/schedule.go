package rotation

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/rekeyhq/rekey/internal/human"
)

// Window is the set of minutes in which a due rotation may start, given
// as a cron expression: "0 3 * * MON-FRI" allows 03:00 on weekdays,
// "* 3-5 * * *" any minute from 03:00 to 05:59.
type Window struct {
	expr  string
	sched cron.Schedule
	loc   *time.Location
}

// ParseWindow parses a 5-field cron expression (or a descriptor such as
// @daily) evaluated in loc (UTC if nil).
func ParseWindow(expr string, loc *time.Location) (*Window, error) {
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("rotation: window %q: %w", expr, err)
	}
	if loc == nil {
		loc = time.UTC
	}
	return &Window{expr: expr, sched: s, loc: loc}, nil
}

func (w *Window) String() string { return w.expr }

// equal reports whether w and o allow the same minutes; either may be nil
// (any time).
func (w *Window) equal(o *Window) bool {
	if w == nil || o == nil {
		return w == o
	}
	return w.expr == o.expr && w.loc.String() == o.loc.String()
}

// Next returns the first allowed minute at or after t.
func (w *Window) Next(t time.Time) time.Time {
	// cron's Next is strictly after its argument: start just before the
	// minute t falls in, so that minute itself counts.
	return w.sched.Next(t.In(w.loc).Truncate(time.Minute).Add(-time.Second))
}

// Due says whether, and from when, a credential should rotate.
type Due struct {
	Due bool
	// At is when the credential is or becomes due (taking rotate_every,
	// backoff after failures and the window into account).
	At time.Time
	// Reason says why, in a few words, for status and logs.
	Reason string
	// LastRotated is when the current key was put in place by rekey; zero
	// if rekey has never rotated this credential.
	LastRotated time.Time
	// Failures counts failed or rolled-back rotations since the last success.
	Failures int
	// Overdue is set when the current key is older than rotate_every.
	Overdue bool
}

// Backoff after n consecutive failures: 1 min doubling to at most 6 h.
func Backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := time.Minute
	for i := 1; i < n && d < 6*time.Hour; i++ {
		d *= 2
	}
	return min(d, 6*time.Hour)
}

// Due computes the credential's schedule from the journal.
func (e *Engine) Due(ctx context.Context, c *Credential) (Due, error) {
	st, err := e.state(ctx, c.Name)
	if err != nil {
		return Due{}, err
	}
	return schedule(c, st.hist, e.Clock.Now()), nil
}

// DueOf is Due computed from the credential's records as Store.Recent (or
// RecentAll) returned them, for a caller that read many credentials at once.
func (e *Engine) DueOf(c *Credential, recent []*Record) Due {
	return schedule(c, e.stateOf(recent).hist, e.Clock.Now())
}

func schedule(c *Credential, hist []*Record, now time.Time) Due {
	var d Due
	var lastFail time.Time
	for _, r := range hist { // newest first
		if r.Phase == Done {
			d.LastRotated = r.FinishedAt
			break
		}
		if r.Phase == RolledBack || r.Phase == Failed {
			d.Failures++
			if lastFail.IsZero() {
				lastFail = r.FinishedAt
			}
		}
	}
	at, reason := now, "never rotated by rekey"
	if !d.LastRotated.IsZero() {
		at = d.LastRotated.Add(c.RotateEvery)
		d.Overdue = !now.Before(at)
		if d.Overdue {
			reason = "the key is " + human.About(now.Sub(d.LastRotated)) + " old; rotate_every is " + human.Duration(c.RotateEvery)
		} else {
			reason = "rotate_every " + human.Duration(c.RotateEvery) + " from the last rotation"
		}
	}
	if d.Failures > 0 {
		if retry := lastFail.Add(Backoff(d.Failures)); retry.After(at) {
			at, reason = retry, fmt.Sprintf("backing off after %d failed attempts", d.Failures)
		}
	}
	if c.Window != nil {
		start := at
		if start.Before(now) {
			start = now
		}
		if next := c.Window.Next(start); next.After(now) {
			at, reason = next, reason+"; then waits for the window "+c.Window.String()
		}
	}
	d.At, d.Reason = at, reason
	d.Due = !at.After(now)
	return d
}

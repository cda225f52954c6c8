package rotation

// Monitor, drain and revoke: the steps after deploy, up to done.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/internal/human"
	"github.com/rekeyhq/rekey/issuers"
)

// monitor polls the health checks through the window; FailureThreshold
// consecutive failures roll back. A resumed rotation watches a full window
// again: I1 wants the whole window after the last restart.
func (e *Engine) monitor(ctx context.Context, c *Credential, rec *Record) error {
	m := c.Monitor
	end := e.Clock.Now().Add(m.Window)
	e.emit(rec, "", "monitoring for "+human.Duration(m.Window), nil)
	fails, passed, failed := 0, 0, 0
	for {
		err := e.probe(ctx, c, rec)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failed++
		} else {
			passed++
		}
		if e.Observe != nil {
			e.Observe(Event{Time: e.Clock.Now(), Credential: rec.Credential, RotationID: rec.ID, Phase: rec.Phase,
				Probe: &Probe{Passed: passed, Failed: failed, Left: max(end.Sub(e.Clock.Now()), 0), Err: err}})
		}
		if err != nil {
			fails++
			e.emit(rec, "", fmt.Sprintf("health check failed (%d/%d)", fails, m.FailureThreshold), err)
			if fails >= m.FailureThreshold {
				return e.fail(ctx, rec, fmt.Errorf("monitor: %d consecutive failures: %w", fails, err))
			}
		} else {
			if fails > 0 {
				e.emit(rec, "", "health check passed", nil)
			}
			fails = 0
		}
		left := end.Sub(e.Clock.Now())
		if left <= 0 {
			break
		}
		if err := e.sleep(ctx, min(m.Interval, left)); err != nil {
			return err
		}
		if e.Clock.Now().After(end) && fails == 0 {
			break
		}
	}
	e.emit(rec, "", "monitoring window passed", nil)
	next := Revoking
	if c.Drain != nil && rec.OldKeyID != "" {
		next = Draining
	}
	return e.advance(ctx, rec, next, nil)
}

// probe runs every health check once and the issuer's verify of the new key.
func (e *Engine) probe(ctx context.Context, c *Credential, rec *Record) error {
	for _, ch := range c.Monitor.Checks {
		if err := ch.Check(ctx); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, e.stepTimeout())
	defer cancel()
	if err := c.Issuer.Verify(cctx, rec.NewValue); err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	return nil
}

// drain waits until the issuer reports the old key unused for IdleFor,
// giving up after MaxWait (counted from entering Draining).
func (e *Engine) drain(ctx context.Context, c *Credential, rec *Record) error {
	if err := e.waitIdle(ctx, c, rec, rec.OldKeyID, "old"); err != nil {
		return err
	}
	return e.advance(ctx, rec, Revoking, nil)
}

// waitIdle waits until the issuer reports the key unused for
// Drain.IdleFor, at most Drain.MaxWait from rec's last journal write.
// Without a drain config or a UsageReporter it waits one monitor interval:
// the time a client that re-reads its key needs to pick up a change.
func (e *Engine) waitIdle(ctx context.Context, c *Credential, rec *Record, keyID, which string) error {
	ur, ok := c.Issuer.(issuers.UsageReporter)
	if !ok || c.Drain == nil {
		return e.sleep(ctx, c.Monitor.Interval)
	}
	since := rec.UpdatedAt
	for {
		last, err := call(e, ctx, func(ctx context.Context) (time.Time, error) { return ur.LastUsed(ctx, keyID) })
		if err != nil && ctx.Err() != nil {
			return err
		}
		now := e.Clock.Now()
		if err == nil && (last.IsZero() || now.Sub(last) >= c.Drain.IdleFor) {
			e.emit(rec, "", which+" key idle", nil)
			return nil
		}
		if now.Sub(since) >= c.Drain.MaxWait {
			e.emit(rec, "", fmt.Sprintf("%s key still in use after max_wait %s: revoking", which, human.Duration(c.Drain.MaxWait)), nil)
			return nil
		}
		wait := c.Drain.IdleFor
		if err == nil {
			wait = c.Drain.IdleFor - now.Sub(last)
		}
		wait = min(max(wait, time.Second), c.Monitor.Interval, c.Drain.MaxWait-now.Sub(since))
		if err := e.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// revokeOld revokes the replaced key (I1: only now), after looking once
// more at the world it depends on (I8, see recheck.go), then any key an
// earlier rotation left valid that no sink holds any more. A revoke that
// keeps failing leaves the rotation in Revoking, safe and resumable: both
// keys still work and every sink holds the new one.
func (e *Engine) revokeOld(ctx context.Context, c *Credential, rec *Record) error {
	if rec.OldKeyID != "" || len(rec.Left) > 0 {
		held, err := e.recheckSinks(ctx, c, rec)
		if err != nil {
			return fmt.Errorf("rotation: %s/%s: read sinks back before revoking: %w", rec.Credential, rec.ID, err)
		}
		if len(held) > 0 {
			return e.reverted(ctx, c, rec, held)
		}
	}
	if rec.OldKeyID == "" {
		e.warn(rec, "the old key was never identified at the issuer, so rekey revoked nothing: revoke it by hand once it is unused")
	} else {
		ok, err := e.checkIdentity(ctx, c, rec)
		if err != nil || !ok {
			return err
		}
	}
	if rec.OldKeyID != "" {
		err := e.retry(ctx, func(ctx context.Context) error { return c.Issuer.Revoke(ctx, rec.OldKeyID) })
		if errors.Is(err, issuers.ErrNotFound) {
			e.warn(rec, "old key "+rec.OldKeyID+" no longer exists at the issuer")
		} else if err != nil {
			return fmt.Errorf("rotation: %s/%s: revoke old key %s: %w", rec.Credential, rec.ID, rec.OldKeyID, err)
		} else {
			e.emit(rec, "", "old key "+rec.OldKeyID+" revoked", nil)
		}
	}
	if err := e.revokeLeft(ctx, c, rec); err != nil {
		return err
	}
	// A create whose answer was lost can still land after the issuer's
	// clean-up looked (the server acts on a request its client gave up
	// on): look once more, now that the window has passed (I2).
	if err := e.revokeOrphans(ctx, c, rec); err != nil {
		return fmt.Errorf("rotation: %s/%s: revoke orphans: %w", rec.Credential, rec.ID, err)
	}
	rec.FinishedAt = e.Clock.Now().UTC()
	return e.advance(ctx, rec, Done, nil)
}

package rotation

// Rollback: undoing a rotation that failed before its revocation.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/sinks"
)

// fail moves rec to RollingBack and records why.
func (e *Engine) fail(ctx context.Context, rec *Record, cause error) error {
	if isHookErr(cause) {
		return cause
	}
	rec.Error = cause.Error()
	e.emit(rec, "", "failed: rolling back", cause)
	return e.advance(ctx, rec, RollingBack, cause)
}

// rollback restores every sink the rotation may have written to the old
// value, and only then revokes the new key (I3). Before restoring it checks
// that the old key still authenticates (I8): restoring a dead key is an
// outage, so then the new key is kept in every sink instead. A sink that
// cannot be restored does not stop the others; the rotation then fails for
// a person, with the new key left valid.
func (e *Engine) rollback(ctx context.Context, c *Credential, rec *Record) error {
	if rec.reachedDeploy() {
		if !rec.OldValue.IsZero() {
			alive, err := e.oldKeyAlive(ctx, c, rec)
			if err != nil {
				return fmt.Errorf("rotation: %s/%s: check the old key before rolling back: %w", rec.Credential, rec.ID, err)
			}
			if !alive {
				return e.keepNew(ctx, c, rec)
			}
		}
		// Undo in reverse write order, so that sinks sharing a back-end
		// (two fields of one secret) unwind like a stack.
		var failed []string
		for _, s := range slices.Backward(c.Sinks) {
			if slices.Contains(rec.Untouched, s.Name()) && !e.holdsNew(ctx, s, rec) {
				continue
			}
			if err := e.restore(ctx, s, rec); err != nil {
				if ctx.Err() != nil {
					return err
				}
				failed = append(failed, s.Name())
				rec.Error = fmt.Sprintf("%s; rollback of %s: %v", rec.Error, s.Name(), err)
				e.emit(rec, s.Name(), "could not be restored", err)
				continue
			}
			e.emit(rec, s.Name(), "restored", nil)
			// Readers that may have picked up the new key (a restart after
			// the write) move back to the old one before it is revoked.
			if _, written := receipt(rec, s.Name()); written {
				if err := e.settle(ctx, s, rec, rec.ID+".rollback"); err != nil {
					if ctx.Err() != nil {
						return err
					}
					failed = append(failed, s.Name())
					rec.Error = fmt.Sprintf("%s; rollback of %s: settle: %v", rec.Error, s.Name(), err)
					e.emit(rec, s.Name(), "restored, but its readers did not settle", err)
				}
			}
		}
		if len(failed) > 0 {
			slices.Reverse(failed)
			rec.Error += fmt.Sprintf(" (the new key %s was left valid: %s may hold it)", rec.NewKeyID, strings.Join(failed, ", "))
			e.leave(rec, rec.NewKeyID, "rollback could not restore every sink", failed)
			return e.failed(ctx, c, rec, errors.New("rollback incomplete"))
		}
	}
	if rec.NewKeyID != "" {
		if rec.reachedDeploy() {
			// Clients may have read the new key just before its sink was
			// restored: give them time to move back before revoking it (I3).
			if err := e.waitIdle(ctx, c, rec, rec.NewKeyID, "new"); err != nil {
				return err
			}
		}
		err := e.retry(ctx, func(ctx context.Context) error { return c.Issuer.Revoke(ctx, rec.NewKeyID) })
		if err != nil && !errors.Is(err, issuers.ErrNotFound) {
			return fmt.Errorf("rotation: %s/%s: revoke new key %s: %w", rec.Credential, rec.ID, rec.NewKeyID, err)
		}
		e.emit(rec, "", "new key "+rec.NewKeyID+" revoked", nil)
	}
	// A create whose answer was lost may have landed after the issuer's
	// clean-up looked, whether or not a later create succeeded (I2).
	if err := e.revokeOrphans(ctx, c, rec); err != nil {
		return fmt.Errorf("rotation: %s/%s: revoke orphans: %w", rec.Credential, rec.ID, err)
	}
	rec.FinishedAt = e.Clock.Now().UTC()
	return e.advance(ctx, rec, RolledBack, nil)
}

// holdsNew reports whether a sink that the rotation's last Put left
// untouched holds the new key all the same: a process of the rotation
// killed after its Put landed and before the receipt was journaled wrote
// it. Only a sink that can be read and reads as the new key does; a
// write-only or unreadable one is taken at the Sink contract's word.
func (e *Engine) holdsNew(ctx context.Context, s sinks.Sink, rec *Record) bool {
	rd, ok := s.(sinks.Reader)
	if !ok {
		return false
	}
	got, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
	return err == nil && got.Equal(rec.NewValue)
}

// restore puts the old value back into one sink and proves it.
func (e *Engine) restore(ctx context.Context, s sinks.Sink, rec *Record) error {
	r, hasReceipt := receipt(rec, s.Name())
	if rb, ok := s.(sinks.Rollbacker); ok && hasReceipt && !r.Created {
		if err := e.retry(ctx, func(ctx context.Context) error { return rb.Rollback(ctx, r) }); err != nil {
			return err
		}
		err := e.check(ctx, s, rec, rec.OldValue)
		var other *heldOther
		if !errors.As(err, &other) || rec.OldValue.IsZero() {
			return err
		}
		// The sink's own rollback brought back another value than the
		// journaled old one (the version before the put held something
		// else: a second put of a resumed rotation, or a write between
		// adoption and the put). The journaled old value is the one known
		// to work: put it back as a new write.
		e.emit(rec, s.Name(), "its rollback brought back another value than the old key; putting the old key back", err)
		if _, err := e.put(ctx, s, rec.OldValue, rec.ID+".rollback", true); err != nil {
			return err
		}
		return e.check(ctx, s, rec, rec.OldValue)
	}
	if rd, ok := s.(sinks.Reader); ok {
		got, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
		switch {
		case errors.Is(err, sinks.ErrPartial):
			// Half a pair: put the whole old value back over it.
		case errors.Is(err, sinks.ErrNotFound) && rec.OldValue.IsZero():
			return nil // never written, nothing to restore
		case err != nil && !errors.Is(err, sinks.ErrNotFound):
			return err
		case err == nil && !got.Equal(rec.NewValue):
			return nil // does not hold the new key: never written, or restored already
		}
	}
	// A write-only sink is restored whether or not it has a receipt: it may
	// have been written just before a crash.
	if rec.OldValue.IsZero() {
		return errors.New("the sink had no value before and cannot be emptied; no old key to restore")
	}
	if _, err := e.put(ctx, s, rec.OldValue, rec.ID+".rollback", true); err != nil {
		return err
	}
	if _, ok := s.(sinks.Reader); ok {
		return e.check(ctx, s, rec, rec.OldValue)
	}
	return nil
}

func (r *Record) reachedDeploy() bool {
	for _, t := range r.Transitions {
		if t.Phase == Verified {
			return true
		}
	}
	return false
}

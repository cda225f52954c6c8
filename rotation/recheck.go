package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/sinks"
)

// The checks in this file are invariant I8, "look before you leap": right
// before an irreversible step the engine looks at the world again instead
// of trusting the journal's picture of it.

// sinkHolding is a readable sink found holding something other than the
// new key right before a revocation.
type sinkHolding struct {
	sink sinks.Sink
	what string // "the old key", "another value (fingerprint …)"
}

// recheckSinks reads back every readable sink and returns those that no
// longer hold the new key (config management or a person put something
// else there). A sink that cannot be read is an error: without knowing,
// nothing is revoked.
func (e *Engine) recheckSinks(ctx context.Context, c *Credential, rec *Record) ([]sinkHolding, error) {
	var out []sinkHolding
	for _, s := range c.Sinks {
		rd, ok := s.(sinks.Reader)
		if !ok {
			continue
		}
		var got secret.Value
		partial := false
		err := e.retry(ctx, func(ctx context.Context) error {
			var err error
			got, err = rd.Get(ctx)
			if errors.Is(err, sinks.ErrPartial) {
				partial = true // an answer, not a failure to read: no retry
				return nil
			}
			partial = false
			return err
		})
		if err != nil && !errors.Is(err, sinks.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
		if !partial && got.Equal(rec.NewValue) {
			continue
		}
		what := "another value (" + fingerprint(got) + ")"
		switch {
		case partial:
			what = "only some of the key's fields"
		case got.IsZero():
			what = "no value"
		case got.Equal(rec.OldValue):
			what = "the old key " + rec.OldKeyID
		}
		out = append(out, sinkHolding{sink: s, what: what})
	}
	return out, nil
}

// reverted handles sinks found holding something other than the new key
// before revocation: the first time, the new key is deployed to them again
// and the monitoring window runs again; the second time the rotation fails
// with both keys valid, saying which sink holds which key.
func (e *Engine) reverted(ctx context.Context, c *Credential, rec *Record, held []sinkHolding) error {
	var desc []string
	for _, h := range held {
		desc = append(desc, h.sink.Name()+" holds "+h.what)
	}
	if rec.Reverts == 0 {
		rec.Reverts++
		for _, h := range held {
			e.emit(rec, h.sink.Name(), "holds "+h.what+" instead of the new key before revocation: deploying the new key again", nil)
			r, err := e.put(ctx, h.sink, rec.NewValue, rec.ID+".redeploy", true)
			if err == nil {
				setReceipt(rec, r)
				err = e.check(ctx, h.sink, rec, rec.NewValue)
			}
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				return e.fail(ctx, rec, fmt.Errorf("redeploy %s after it was changed behind rekey's back: %w", h.sink.Name(), err))
			}
		}
		e.emit(rec, "", "old key not revoked: "+strings.Join(desc, "; ")+"; monitoring again", nil)
		return e.advance(ctx, rec, Monitoring, nil)
	}
	var holdingNew []string
	for _, s := range c.Sinks {
		if !slices.ContainsFunc(held, func(h sinkHolding) bool { return h.sink == s }) {
			holdingNew = append(holdingNew, s.Name())
		}
	}
	rec.Error = fmt.Sprintf("sinks changed behind rekey's back again before the old key's revocation: %s; the other sinks hold the new key %s. "+
		"Nothing was revoked: both keys %s and %s stay valid until a person settles which the sinks should hold",
		strings.Join(desc, "; "), rec.NewKeyID, rec.OldKeyID, rec.NewKeyID)
	e.leave(rec, rec.NewKeyID, "sinks disagree: changed behind rekey's back twice", holdingNew)
	return e.failed(ctx, c, rec, errors.New("sinks reverted twice"))
}

// checkIdentity makes sure the key ID about to be revoked is the key whose
// value the journal holds as the old one, when the issuer can tell. It
// returns true when the revocation may go ahead. When the old value no
// longer identifies as an active key, the old key is already gone and
// nothing is revoked; when it identifies as another key, the journal is
// wrong: nothing is revoked, the rotation fails with the new key kept in
// every sink, and the key the old value really is is left for a person.
func (e *Engine) checkIdentity(ctx context.Context, c *Credential, rec *Record) (bool, error) {
	idf, ok := c.Issuer.(issuers.Identifier)
	if !ok || rec.OldValue.IsZero() {
		return true, nil
	}
	var k issuers.Key
	err := e.retry(ctx, func(ctx context.Context) error {
		var err error
		k, err = idf.Identify(ctx, rec.OldValue)
		return err
	})
	switch {
	case err == nil && k.ID == rec.OldKeyID:
		return true, nil
	case errors.Is(err, issuers.ErrNotFound):
		// The old value identifies no single active key: it is no active
		// key, or several share its public part (the new key may, by
		// chance). If it matches the key the journal names, that is the
		// key; otherwise revoking OldKeyID is either a no-op or the
		// revocation of some other key: skip it.
		old, named, gerr := e.getActive(ctx, c, rec.OldKeyID)
		if gerr != nil {
			return false, fmt.Errorf("rotation: %s/%s: look up old key %s: %w", rec.Credential, rec.ID, rec.OldKeyID, gerr)
		}
		if m, ok := c.Issuer.(issuers.Matcher); ok && named && m.Matches(old, rec.OldValue) {
			return true, nil
		}
		if !named {
			e.warn(rec, "old key "+rec.OldKeyID+" is no longer active at the issuer: nothing to revoke")
			if err := e.revokeLeft(ctx, c, rec); err != nil {
				return false, err
			}
			rec.FinishedAt = e.Clock.Now().UTC()
			return false, e.advance(ctx, rec, Done, nil)
		}
		return false, e.mismatch(ctx, c, rec, "is no active key of the issuer", "")
	case err != nil:
		return false, fmt.Errorf("rotation: %s/%s: identify old key before revoking: %w", rec.Credential, rec.ID, err)
	}
	return false, e.mismatch(ctx, c, rec, "identifies as key "+k.ID, k.ID)
}

// mismatch ends a rotation whose journaled old key ID does not match the
// old value: the new key stays in every sink, nothing is revoked.
func (e *Engine) mismatch(ctx context.Context, c *Credential, rec *Record, what, realID string) error {
	rec.Error = fmt.Sprintf("the journal's old key ID %s does not match the old key's value, which %s: nothing was revoked; "+
		"the new key %s is in every sink and stays current", rec.OldKeyID, what, rec.NewKeyID)
	if realID != "" {
		e.leave(rec, realID, "the old key's value identifies as this key, not the journal's "+rec.OldKeyID, nil)
	}
	e.leave(rec, rec.OldKeyID, "named as the old key by the journal, but not the old key's value", nil)
	rec.Kept = true
	return e.failed(ctx, c, rec, errors.New("old key identity mismatch"))
}

// activeKey reports whether id is an active key at the issuer.
func (e *Engine) activeKey(ctx context.Context, c *Credential, id string) (bool, error) {
	_, active, err := e.getActive(ctx, c, id)
	return active, err
}

// getActive returns the key id and whether it is active; a key the
// issuer does not know is not active, and no error.
func (e *Engine) getActive(ctx context.Context, c *Credential, id string) (issuers.Key, bool, error) {
	var k issuers.Key
	err := e.retry(ctx, func(ctx context.Context) error {
		var err error
		k, err = c.Issuer.Get(ctx, id)
		return err
	})
	if errors.Is(err, issuers.ErrNotFound) {
		return k, false, nil
	}
	return k, err == nil && k.Status == issuers.Active, err
}

// oldKeyAlive reports whether the old key still authenticates. A refusal
// is confirmed at the issuer when the old key's ID is known, so that one
// stray 401 does not count as a dead key.
func (e *Engine) oldKeyAlive(ctx context.Context, c *Credential, rec *Record) (bool, error) {
	err := e.retry(ctx, func(ctx context.Context) error {
		err := c.Issuer.Verify(ctx, rec.OldValue)
		if errors.Is(err, issuers.ErrUnauthorized) {
			return backoff.Permanent(err)
		}
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, issuers.ErrUnauthorized):
		return false, err
	case rec.OldKeyID == "":
		return false, nil
	}
	active, err := e.activeKey(ctx, c, rec.OldKeyID)
	if err != nil {
		return false, err
	}
	if active {
		return false, fmt.Errorf("the old key is refused but %s is active at the issuer: not restoring until they agree", rec.OldKeyID)
	}
	return false, nil
}

// keepNew rolls forward instead of back: the old key is dead, so every sink
// gets the new key, which is not revoked. The rotation fails for a person,
// with the new key as the credential's current key.
func (e *Engine) keepNew(ctx context.Context, c *Credential, rec *Record) error {
	e.emit(rec, "", "the old key no longer authenticates: keeping the new key instead of restoring a dead one", nil)
	var failed []string
	for _, s := range c.Sinks {
		if err := e.check(ctx, s, rec, rec.NewValue); err == nil {
			continue
		}
		r, err := e.put(ctx, s, rec.NewValue, rec.ID+".keep", true)
		if err == nil {
			setReceipt(rec, r)
			err = e.check(ctx, s, rec, rec.NewValue)
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, s.Name())
			e.emit(rec, s.Name(), "could not be given the new key", err)
			continue
		}
		e.emit(rec, s.Name(), "holds the new key", nil)
	}
	rec.Error = fmt.Sprintf("%s; the old key %s no longer authenticates (revoked outside rekey?): rolling back would restore a dead key, "+
		"so the new key %s was kept in every sink and nothing was revoked", rec.Error, rec.OldKeyID, rec.NewKeyID)
	if len(failed) > 0 {
		rec.Error += "; these sinks could not be given the new key: " + strings.Join(failed, ", ")
	}
	rec.Kept = true
	return e.failed(ctx, c, rec, errors.New("old key dead: new key kept"))
}

// leave records a key left valid for a person.
func (e *Engine) leave(rec *Record, keyID, reason string, heldBy []string) {
	if keyID == "" || slices.ContainsFunc(rec.Left, func(l LeftKey) bool { return l.KeyID == keyID }) {
		return
	}
	rec.Left = append(rec.Left, LeftKey{KeyID: keyID, RotationID: rec.ID, Reason: reason, HeldBy: heldBy, At: e.Clock.Now().UTC()})
	e.warn(rec, "key "+keyID+" left valid for a person: "+reason)
}

// revokeLeft revokes the keys earlier rotations left valid, now that every
// sink holds this rotation's new key (just read back, or confirmed), after
// the same drain rules as the old key. A key that cannot be revoked stays
// on the list.
func (e *Engine) revokeLeft(ctx context.Context, c *Credential, rec *Record) error {
	var keep []LeftKey
	for _, l := range rec.Left {
		if l.KeyID == rec.NewKeyID || l.RotationID == rec.ID {
			keep = append(keep, l)
			continue
		}
		if err := e.waitIdle(ctx, c, rec, l.KeyID, "left"); err != nil {
			return err
		}
		err := e.retry(ctx, func(ctx context.Context) error { return c.Issuer.Revoke(ctx, l.KeyID) })
		if err != nil && !errors.Is(err, issuers.ErrNotFound) {
			if ctx.Err() != nil {
				return err
			}
			e.emit(rec, "", "could not revoke key "+l.KeyID+" left by rotation "+l.RotationID, err)
			keep = append(keep, l)
			continue
		}
		e.emit(rec, "", "revoked key "+l.KeyID+", left valid by rotation "+l.RotationID+": no sink holds it any more", nil)
	}
	rec.Left = keep
	return nil
}

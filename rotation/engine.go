// Package rotation runs the safe rotation sequence (ARCHITECTURE.md): mint,
// verify, deploy, monitor, drain, revoke — or roll back. Every phase change
// is journaled durably before the side effect that follows it, and every
// step is safe to repeat, so an interrupted rotation resumes where the
// journal says it stood.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/sinks"
)

// Credential is one credential as the engine sees it: built by cmd/rekey
// from the config, with live issuer and sinks.
type Credential struct {
	Name   string
	Issuer issuers.Issuer
	Sinks  []sinks.Sink
	// Label returns the new key's label for a rotation started at now with
	// the given short rotation ID.
	Label func(now time.Time, rotationID string) string
	// KeyID names the key in the sinks at the issuer when it cannot be
	// identified by prefix (I7). Used only on the first rotation; when the
	// issuer can identify the key in the sinks, the two must agree.
	KeyID string
	// Setup identifies the issuer (type, address, account where known) and
	// the sinks, as text holding no secret. A credential's journal history
	// belongs to one setup: a record written for another is refused (I8).
	// Empty: not checked.
	Setup string

	RotateEvery  time.Duration
	Window       *Window // nil: any time
	StageTimeout time.Duration

	// VerifyTimeout bounds how long the new key may take to authenticate.
	VerifyTimeout time.Duration
	Monitor       Monitor
	Drain         *Drain
}

// Monitor is the post-deploy health window.
type Monitor struct {
	Window           time.Duration
	Interval         time.Duration
	FailureThreshold int
	Checks           []Check
}

// Drain waits until the old key has been idle for IdleFor, at most MaxWait.
type Drain struct {
	IdleFor time.Duration
	MaxWait time.Duration
}

// Engine runs rotations. Its zero value is not usable; set Store, Clock and Log.
type Engine struct {
	Store Store
	Clock clockwork.Clock
	Log   *zap.Logger
	// Observe, if set, receives every progress event, synchronously.
	Observe func(Event)
	Hooks   Hooks
	// StepTimeout bounds a single call to an issuer or sink (default 2m).
	StepTimeout time.Duration
	// RetryFor bounds how long a failing revoke or rollback step is
	// retried before the engine gives up for this run (default 5m).
	RetryFor time.Duration

	// OnTransition observers receive each phase change once it is durable
	// (see TransitionEvent), synchronously and in order, at most once per
	// transition across processes. Set them before the first rotation.
	OnTransition []func(TransitionEvent)
}

// Options change one call to Rotate.
type Options struct {
	// Force rotates even if the credential is not due or is backing off.
	Force bool
	// Stage stops a new rotation once the new key is deployed, with the
	// old key still valid (the first half of a deploy hook).
	Stage bool
	// Finish continues a staged rotation: monitor, drain, revoke.
	Finish bool
}

// Outcome of a call to Rotate.
type Outcome struct {
	RotationID string
	Phase      Phase // Done, RolledBack, Failed, or Deployed when staged
	// Skipped is set when nothing was done and why (not due, staged).
	Skipped string
	// DueAt is when the credential becomes due, for a rotation skipped as
	// not due.
	DueAt time.Time
	// Staged is set when the rotation is staged (rotate --stage): its new
	// key is live everywhere and it waits for --finish.
	Staged bool
	Err    error
}

var (
	// ErrInterrupted is returned when ctx ends mid-rotation; the journal
	// holds the last completed step and the next run resumes from it.
	ErrInterrupted = errors.New("rotation: interrupted; the next run resumes it")
	// ErrNotStaged is returned by Rotate with Finish when no staged
	// rotation exists.
	ErrNotStaged = errors.New("rotation: no staged rotation to finish")
)

// Rotate takes the credential's lock, resumes its unfinished rotation if
// there is one, and otherwise starts a new rotation when due (or forced).
// It returns ErrBusy if another process holds the lock.
func (e *Engine) Rotate(ctx context.Context, c *Credential, opt Options) (Outcome, error) {
	ctx, unlock, err := e.lock(ctx, c.Name)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()

	st, err := e.state(ctx, c.Name)
	if err != nil {
		return Outcome{}, err
	}
	if err := checkSetup(c, st); err != nil {
		return Outcome{}, err
	}
	if st.unreadable > 0 {
		e.Log.Warn(fmt.Sprintf("%d journal records fail to authenticate: going on from the newest readable one", st.unreadable), zap.String("credential", c.Name))
	}
	rec := st.unfinished
	if rec == nil {
		if opt.Finish {
			return Outcome{}, ErrNotStaged
		}
		if !opt.Force {
			if due := schedule(c, st.hist, e.Clock.Now()); !due.Due {
				return Outcome{Skipped: due.Reason, DueAt: due.At}, nil
			}
		}
		if rec, err = e.plan(ctx, c, opt, st); err != nil {
			return Outcome{}, err
		}
	} else if opt.Finish && rec.Staged {
		rec.Staged = false
	}
	return e.drive(ctx, c, rec)
}

// lock takes the credential's lock. The context it returns ends, with
// cause ErrLockLost, once a Store that can tell (LockWatcher) sees the lock
// lost, so that calls in flight end too; unlock releases the lock.
func (e *Engine) lock(ctx context.Context, credential string) (context.Context, func(), error) {
	unlock, err := e.Store.Lock(ctx, credential)
	if err != nil {
		return ctx, nil, err
	}
	w, ok := e.Store.(LockWatcher)
	if !ok {
		return ctx, unlock, nil
	}
	lost := w.LockLost(credential)
	if lost == nil {
		return ctx, unlock, nil
	}
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lost:
			cancel(ErrLockLost)
		case <-lctx.Done():
		}
	}()
	return lctx, func() { cancel(nil); unlock() }, nil
}

// lockLost reports whether err, or the end of ctx, is a lost lock.
func lockLost(ctx context.Context, err error) bool {
	return errors.Is(err, ErrLockLost) || errors.Is(context.Cause(ctx), ErrLockLost)
}

// Resume continues the credential's unfinished rotation, if any, without
// starting a new one. A staged rotation is left alone until its stage
// timeout has passed.
func (e *Engine) Resume(ctx context.Context, c *Credential) (Outcome, error) {
	ctx, unlock, err := e.lock(ctx, c.Name)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	st, err := e.state(ctx, c.Name)
	if err != nil || st.unfinished == nil {
		return Outcome{}, err
	}
	if err := checkSetup(c, st); err != nil {
		return Outcome{}, err
	}
	return e.drive(ctx, c, st.unfinished)
}

// plan journals a new rotation: the old key is the one the last successful
// rotation made, or on the first rotation the one found in the sinks (I7).
// Keys left for a person and unsure mints are carried forward.
func (e *Engine) plan(ctx context.Context, c *Credential, opt Options, st state) (*Record, error) {
	now := e.Clock.Now().UTC()
	id := newID()
	rec := &Record{
		Credential: c.Name,
		ID:         id,
		Label:      c.Label(now, id),
		Staged:     opt.Stage,
		Forced:     opt.Force,
		StartedAt:  now,
		Setup:      c.Setup,
		planned:    true,
	}
	if st.latest != nil {
		rec.Left = slices.Clone(st.latest.Left)
	}
	if st.current != nil {
		rec.OldKeyID, rec.OldValue = st.current.NewKeyID, st.current.NewValue
	} else {
		note, err := e.adopt(ctx, c, rec)
		if err != nil {
			return nil, err
		}
		if rec.OldKeyID == "" {
			e.warn(rec, note)
		}
	}
	if err := e.advance(ctx, rec, Planned, nil); err != nil {
		return nil, err
	}
	return rec, nil
}

// adopt identifies the key currently in the sinks (I7) and says how, in
// plain words. If it cannot be identified, the rotation proceeds but
// revokes nothing. A key_id that contradicts the key in the sinks is a
// permanent error: rotating would revoke a key the sinks do not hold.
func (e *Engine) adopt(ctx context.Context, c *Credential, rec *Record) (string, error) {
	var partial []string // sinks holding some fields of a pair but not all
	for _, s := range c.Sinks {
		rd, ok := s.(sinks.Reader)
		if !ok {
			continue
		}
		v, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
		if errors.Is(err, sinks.ErrNotFound) {
			continue
		}
		if errors.Is(err, sinks.ErrPartial) {
			// Half a pair identifies no key; the deploy writes the whole
			// new value over it.
			partial = append(partial, s.Name())
			continue
		}
		if err != nil {
			return "", fmt.Errorf("rotation: read current key from %s: %w", s.Name(), err)
		}
		rec.OldValue = v
		break
	}
	idf, canIdentify := c.Issuer.(issuers.Identifier)
	var found issuers.Key
	identified := false
	if canIdentify && !rec.OldValue.IsZero() {
		k, err := call(e, ctx, func(ctx context.Context) (issuers.Key, error) { return idf.Identify(ctx, rec.OldValue) })
		switch {
		case err == nil:
			found, identified = k, true
		case !errors.Is(err, issuers.ErrNotFound):
			return "", fmt.Errorf("rotation: identify current key: %w", err)
		}
	}
	switch {
	case c.KeyID != "":
		k, err := call(e, ctx, func(ctx context.Context) (issuers.Key, error) { return c.Issuer.Get(ctx, c.KeyID) })
		if errors.Is(err, issuers.ErrNotFound) {
			return "", backoff.Permanent(fmt.Errorf("rotation: key_id %s: no such key at the issuer", c.KeyID))
		}
		if err != nil {
			return "", fmt.Errorf("rotation: adopt key_id %s: %w", c.KeyID, err)
		}
		if k.Status != issuers.Active {
			return "", backoff.Permanent(fmt.Errorf("rotation: adopt key_id %s: key is %s", c.KeyID, k.Status))
		}
		if canIdentify && !rec.OldValue.IsZero() && (!identified || found.ID != k.ID) {
			what := "identifies no single active key of this issuer"
			if identified {
				what = "is key " + found.ID
			}
			return "", backoff.Permanent(fmt.Errorf("rotation: key_id %s does not match the key in the sinks, which %s: "+
				"refusing to rotate, as that would revoke a key the sinks do not hold; correct or remove key_id", c.KeyID, what))
		}
		rec.OldKeyID = k.ID
		return "current key " + k.ID + " named by key_id", nil
	case rec.OldValue.IsZero() && len(partial) > 0:
		return strings.Join(partial, ", ") + " holds only some of the key's fields, which identify no key, and no readable sink holds a whole key: the new key will be deployed over it, and nothing will be revoked", nil
	case rec.OldValue.IsZero():
		return "no readable sink holds a key yet: nothing will be revoked", nil
	case !canIdentify:
		return "issuer cannot identify keys by prefix and no key_id is set: the new key will be deployed and monitored, but the old key will not be revoked", nil
	case !identified:
		return "the key in the sinks identifies no single active key of this issuer (none has its public prefix, or several share it; key_id can name it): the new key will be deployed and monitored, but the old key will not be revoked", nil
	}
	rec.OldKeyID = found.ID
	return "current key " + found.ID + " identified by its prefix", nil
}

// drive runs rec forward from its journaled phase until it ends, is
// staged, or ctx ends.
func (e *Engine) drive(ctx context.Context, c *Credential, rec *Record) (Outcome, error) {
	for {
		if err := ctx.Err(); err != nil {
			if lockLost(ctx, nil) {
				return e.lostLock(rec, ErrLockLost)
			}
			return Outcome{RotationID: rec.ID, Phase: rec.Phase}, ErrInterrupted
		}
		var err error
		switch rec.Phase {
		case Planned:
			err = e.mint(ctx, c, rec)
		case Minted:
			err = e.verify(ctx, c, rec)
		case Verified:
			err = e.deploy(ctx, c, rec)
		case Deployed:
			if rec.Staged && e.Clock.Since(rec.UpdatedAt) < c.StageTimeout {
				return Outcome{RotationID: rec.ID, Phase: Deployed, Staged: true, Skipped: "staged: waiting for --finish"}, nil
			}
			err = e.advance(ctx, rec, Monitoring, nil)
		case Monitoring:
			err = e.monitor(ctx, c, rec)
		case Draining:
			err = e.drain(ctx, c, rec)
		case Revoking:
			err = e.revokeOld(ctx, c, rec)
		case RollingBack:
			err = e.rollback(ctx, c, rec)
		case Done, RolledBack, Failed:
			var out error
			if rec.Phase != Done {
				out = errors.New(rec.Error)
			}
			return Outcome{RotationID: rec.ID, Phase: rec.Phase, Err: out}, nil
		default:
			return Outcome{}, fmt.Errorf("rotation: %s/%s: unknown phase %q", rec.Credential, rec.ID, rec.Phase)
		}
		if err != nil {
			if lockLost(ctx, err) {
				return e.lostLock(rec, err)
			}
			if errors.Is(err, errHook) || ctx.Err() != nil {
				return Outcome{RotationID: rec.ID, Phase: rec.Phase}, interrupted(err)
			}
			return Outcome{RotationID: rec.ID, Phase: rec.Phase}, err
		}
	}
}

// lostLock ends a rotation whose lock was lost: it says so once and
// returns an error wrapping ErrLockLost. Nothing further is journaled or
// done; whoever holds the lock now resumes from the journal.
func (e *Engine) lostLock(rec *Record, err error) (Outcome, error) {
	if !errors.Is(err, ErrLockLost) {
		err = fmt.Errorf("%w (%w)", ErrLockLost, err)
	}
	e.Log.Error("lost the credential's lock: stopped this rotation without acting; whoever holds the lock now resumes it from the journal",
		zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID), zap.String("phase", string(rec.Phase)), zap.Error(err))
	return Outcome{RotationID: rec.ID, Phase: rec.Phase}, err
}

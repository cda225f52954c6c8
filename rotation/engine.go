// Package rotation runs the safe rotation sequence of DESIGN §1: mint,
// verify, deploy, monitor, drain, revoke — or roll back. Every phase change
// is journaled durably before the side effect that follows it, and every
// step is safe to repeat, so an interrupted rotation resumes where the
// journal says it stood.
package rotation

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/neterr"
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

// Event reports progress to an Observer (the CLI's live output, the demo).
// It never carries a key value.
type Event struct {
	Time       time.Time
	Credential string
	RotationID string
	Phase      Phase
	// Sink is set for per-sink steps.
	Sink string
	// Msg is a short human description of what just happened; empty for a
	// phase transition.
	Msg string
	Err error
	// Transition is set when the event is a journaled phase change; the
	// fields below are filled for transitions only.
	Transition bool
	OldKeyID   string
	NewKeyID   string
	// Sinks names the credential's sinks written so far.
	Sinks []string
	// Error is the rotation's recorded error, for rolling_back, rolled_back
	// and failed.
	Error string
	// Probe is set on the event that follows each probe of the monitoring
	// window (live progress); such events are not logged.
	Probe *Probe
}

// Probe is the monitoring window's progress after one probe.
type Probe struct {
	Passed, Failed int           // probes so far in this window
	Left           time.Duration // until the window ends
	Err            error         // this probe's failure, if any
}

// Hooks let tests stop the engine around journal writes, as a crash would.
// A hook that returns an error makes the engine return that error at once,
// with no further side effect.
type Hooks struct {
	BeforeSave func(r *Record) error
	AfterSave  func(r *Record) error
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
	Err     error
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
	unlock, err := e.Store.Lock(ctx, c.Name)
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
				return Outcome{Skipped: due.Reason}, nil
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

// Resume continues the credential's unfinished rotation, if any, without
// starting a new one. A staged rotation is left alone until its stage
// timeout has passed.
func (e *Engine) Resume(ctx context.Context, c *Credential) (Outcome, error) {
	unlock, err := e.Store.Lock(ctx, c.Name)
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
	}
	if st.latest != nil {
		rec.Left = slices.Clone(st.latest.Left)
		rec.Unsure = slices.Clone(st.latest.Unsure)
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
	for _, s := range c.Sinks {
		rd, ok := s.(sinks.Reader)
		if !ok {
			continue
		}
		v, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
		if errors.Is(err, sinks.ErrNotFound) {
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
			what := "is not an active key of this issuer"
			if identified {
				what = "is key " + found.ID
			}
			return "", backoff.Permanent(fmt.Errorf("rotation: key_id %s does not match the key in the sinks, which %s: "+
				"refusing to rotate, as that would revoke a key the sinks do not hold; correct or remove key_id", c.KeyID, what))
		}
		rec.OldKeyID = k.ID
		return "current key " + k.ID + " named by key_id", nil
	case rec.OldValue.IsZero():
		return "no readable sink holds a key yet: nothing will be revoked", nil
	case !canIdentify:
		return "issuer cannot identify keys by prefix and no key_id is set: the new key will be deployed and monitored, but the old key will not be revoked", nil
	case !identified:
		return "the key in the sinks is not an active key of this issuer: the new key will be deployed and monitored, but the old key will not be revoked", nil
	}
	rec.OldKeyID = found.ID
	return "current key " + found.ID + " identified by its prefix", nil
}

// drive runs rec forward from its journaled phase until it ends, is
// staged, or ctx ends.
func (e *Engine) drive(ctx context.Context, c *Credential, rec *Record) (Outcome, error) {
	for {
		if err := ctx.Err(); err != nil {
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
				return Outcome{RotationID: rec.ID, Phase: Deployed, Skipped: "staged: waiting for --finish"}, nil
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
			if errors.Is(err, errHook) || ctx.Err() != nil {
				return Outcome{RotationID: rec.ID, Phase: rec.Phase}, interrupted(err)
			}
			return Outcome{RotationID: rec.ID, Phase: rec.Phase}, err
		}
	}
}

func interrupted(err error) error {
	if errors.Is(err, errHook) {
		return err
	}
	return ErrInterrupted
}

// mint creates the new key. A rotation resumed in Planned may have created
// a key whose value was lost with the crash: those are revoked first (I2),
// with any key an earlier mint of unknown outcome may have left. A mint
// that fails changed nothing, so the rotation ends at once in RolledBack
// with nothing to undo; if the issuer could not be asked whether a key was
// made after all, the label is carried forward for the next mint to clean.
func (e *Engine) mint(ctx context.Context, c *Credential, rec *Record) error {
	if err := e.revokeOrphans(ctx, c, rec); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return e.abandon(ctx, rec, fmt.Errorf("clean up before mint: %w", err))
	}
	var key issuers.Key
	value, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) {
		k, v, err := c.Issuer.Create(ctx, rec.Label)
		key = k
		return v, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if cerr := e.revokeOrphans(ctx, c, rec); cerr != nil && !slices.Contains(rec.Unsure, rec.Label) {
			rec.Unsure = append(rec.Unsure, rec.Label)
		}
		return e.abandon(ctx, rec, fmt.Errorf("mint: %w", err))
	}
	rec.NewKeyID, rec.NewValue = key.ID, value
	e.emit(rec, "", fmt.Sprintf("new key %s (%s)", key.ID, key.Label), nil)
	return e.advance(ctx, rec, Minted, nil)
}

// abandon ends a rotation that changed nothing: no key was minted, no sink
// written. There is nothing to roll back.
func (e *Engine) abandon(ctx context.Context, rec *Record, cause error) error {
	rec.Error = cause.Error() + " (nothing was changed)"
	rec.FinishedAt = e.Clock.Now().UTC()
	e.emit(rec, "", "failed before mint: nothing to undo", cause)
	return e.advance(ctx, rec, RolledBack, cause)
}

// revokeOrphans revokes every active key labelled like this rotation, or
// like an earlier mint of unknown outcome, except the current key. On
// success the unsure labels are cleared.
func (e *Engine) revokeOrphans(ctx context.Context, c *Credential, rec *Record) error {
	for _, label := range append([]string{rec.Label}, rec.Unsure...) {
		keys, err := call(e, ctx, func(ctx context.Context) ([]issuers.Key, error) { return c.Issuer.Find(ctx, label) })
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Status != issuers.Active || k.ID == rec.OldKeyID || k.ID == rec.NewKeyID {
				continue
			}
			e.emit(rec, "", "revoking orphan key "+k.ID+" left by an interrupted mint", nil)
			if err := callErr(e, ctx, func(ctx context.Context) error { return c.Issuer.Revoke(ctx, k.ID) }); err != nil {
				return err
			}
		}
	}
	rec.Unsure = nil
	return nil
}

// verify waits until the new key authenticates at the issuer.
func (e *Engine) verify(ctx context.Context, c *Credential, rec *Record) error {
	deadline := e.Clock.Now().Add(c.VerifyTimeout)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 500*time.Millisecond, 15*time.Second
	for {
		err := callErr(e, ctx, func(ctx context.Context) error { return c.Issuer.Verify(ctx, rec.NewValue) })
		if err == nil {
			e.emit(rec, "", "new key authenticates", nil)
			return e.advance(ctx, rec, Verified, nil)
		}
		if ctx.Err() != nil {
			return err
		}
		wait := b.NextBackOff()
		if !errors.Is(err, issuers.ErrUnauthorized) && isPermanent(err) || e.Clock.Now().Add(wait).After(deadline) {
			return e.fail(ctx, rec, fmt.Errorf("verify new key: %w", err))
		}
		if err := e.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// deploy writes the new key to every sink, journaling each receipt, then
// reads it back (or confirms write-only sinks).
func (e *Engine) deploy(ctx context.Context, c *Credential, rec *Record) error {
	for _, s := range c.Sinks {
		r, err := e.put(ctx, s, rec.NewValue, rec.ID, false)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if pf := (*putFailed)(nil); errors.As(err, &pf) && isPermanent(err) {
				// By the Sink contract a Put that fails permanently
				// changed nothing (a failed Confirm after it proves nothing).
				rec.Untouched = append(rec.Untouched, s.Name())
			}
			return e.fail(ctx, rec, fmt.Errorf("put %s: %w", s.Name(), err))
		}
		setReceipt(rec, r)
		e.emit(rec, s.Name(), "written", nil)
		if err := e.save(ctx, rec); err != nil {
			return err
		}
	}
	for _, s := range c.Sinks {
		if err := e.check(ctx, s, rec, rec.NewValue); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return e.fail(ctx, rec, fmt.Errorf("read back %s: %w", s.Name(), err))
		}
		e.emit(rec, s.Name(), "read back ok", nil)
	}
	if err := e.advance(ctx, rec, Deployed, nil); err != nil {
		return err
	}
	if rec.Staged {
		e.emit(rec, "", "staged: new key live in every sink, old key still valid", nil)
	}
	return nil
}

// check proves a sink holds want: by reading it back, or for write-only
// sinks by confirming the journaled write.
func (e *Engine) check(ctx context.Context, s sinks.Sink, rec *Record, want secret.Value) error {
	if rd, ok := s.(sinks.Reader); ok {
		got, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
		if err != nil {
			return err
		}
		if !got.Equal(want) {
			return fmt.Errorf("holds %s, want %s", fingerprint(got), want.Fingerprint())
		}
		return nil
	}
	if cf, ok := s.(sinks.Confirmer); ok {
		r, found := receipt(rec, s.Name())
		if !found {
			return errors.New("no receipt to confirm")
		}
		return callErr(e, ctx, func(ctx context.Context) error { return cf.Confirm(ctx, r) })
	}
	return nil
}

// monitor polls the health checks through the window; FailureThreshold
// consecutive failures roll back. A resumed rotation watches a full window
// again: I1 wants the whole window after the last restart.
func (e *Engine) monitor(ctx context.Context, c *Credential, rec *Record) error {
	m := c.Monitor
	end := e.Clock.Now().Add(m.Window)
	e.emit(rec, "", fmt.Sprintf("monitoring for %s", m.Window), nil)
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
			e.emit(rec, "", fmt.Sprintf("%s key still in use after max_wait %s: revoking", which, c.Drain.MaxWait), nil)
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
		e.warn(rec, "old key was never identified (I7): nothing revoked; revoke it by hand once unused")
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
	rec.FinishedAt = e.Clock.Now().UTC()
	return e.advance(ctx, rec, Done, nil)
}

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
			if slices.Contains(rec.Untouched, s.Name()) {
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
		}
		if len(failed) > 0 {
			slices.Reverse(failed)
			rec.Error += fmt.Sprintf(" (the new key %s was left valid: %s may hold it)", rec.NewKeyID, strings.Join(failed, ", "))
			e.leave(rec, rec.NewKeyID, "rollback could not restore every sink", failed)
			rec.FinishedAt = e.Clock.Now().UTC()
			return e.advance(ctx, rec, Failed, errors.New("rollback incomplete"))
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
	} else if err := e.revokeOrphans(ctx, c, rec); err != nil {
		return fmt.Errorf("rotation: %s/%s: revoke orphans: %w", rec.Credential, rec.ID, err)
	}
	rec.FinishedAt = e.Clock.Now().UTC()
	return e.advance(ctx, rec, RolledBack, nil)
}

// restore puts the old value back into one sink and proves it.
func (e *Engine) restore(ctx context.Context, s sinks.Sink, rec *Record) error {
	r, hasReceipt := receipt(rec, s.Name())
	if rb, ok := s.(sinks.Rollbacker); ok && hasReceipt && !r.Created {
		if err := e.retry(ctx, func(ctx context.Context) error { return rb.Rollback(ctx, r) }); err != nil {
			return err
		}
		return e.check(ctx, s, rec, rec.OldValue)
	}
	if rd, ok := s.(sinks.Reader); ok {
		got, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) { return rd.Get(ctx) })
		switch {
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

// put writes v to s, retrying transient failures if retry is set. A
// write-only sink that can confirm its writes is put and confirmed as one
// step, retried until confirmed: a write it acknowledged but lost must not
// be trusted, least of all before a revoke (I3).
func (e *Engine) put(ctx context.Context, s sinks.Sink, v secret.Value, rotationID string, retry bool) (sinks.Receipt, error) {
	cf, confirmOnly := s.(sinks.Confirmer)
	if _, ok := s.(sinks.Reader); ok {
		confirmOnly = false
	}
	var r sinks.Receipt
	once := func(ctx context.Context) error {
		var err error
		if r, err = s.Put(ctx, v, rotationID); err != nil {
			return &putFailed{err}
		}
		if confirmOnly {
			return cf.Confirm(ctx, r)
		}
		return nil
	}
	switch {
	case retry:
		return r, e.retry(ctx, once)
	case confirmOnly:
		// On deploy, a few tries settle timestamp granularity; a write that
		// keeps getting lost is a failure to roll back, not to wait out.
		return r, e.retryN(ctx, 3, once)
	}
	return r, callErr(e, ctx, once)
}

// putFailed marks an error returned by Sink.Put itself.
type putFailed struct{ err error }

func (p *putFailed) Error() string { return p.err.Error() }
func (p *putFailed) Unwrap() error { return p.err }

func (r *Record) reachedDeploy() bool {
	for _, t := range r.Transitions {
		if t.Phase == Verified {
			return true
		}
	}
	return false
}

// advance journals rec in phase p. The hooks model a crash on either side
// of the write.
func (e *Engine) advance(ctx context.Context, rec *Record, p Phase, cause error) error {
	rec.Phase = p
	t := Transition{Phase: p, At: e.Clock.Now().UTC()}
	if cause != nil {
		t.Error = cause.Error()
	}
	rec.Transitions = append(rec.Transitions, t)
	rec.unreported++
	if err := e.save(ctx, rec); err != nil {
		return err
	}
	e.Log.Info("phase "+string(p), zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID), zap.String("phase", string(p)),
		zap.String("key_id", rec.NewKeyID))
	if e.Observe != nil {
		ev := Event{Time: t.At, Credential: rec.Credential, RotationID: rec.ID, Phase: p, Transition: true,
			OldKeyID: rec.OldKeyID, NewKeyID: rec.NewKeyID, Error: rec.Error}
		for _, r := range rec.Receipts {
			ev.Sinks = append(ev.Sinks, r.Sink)
		}
		e.Observe(ev)
	}
	return nil
}

var errHook = errors.New("rotation: stopped by test hook")

func isHookErr(err error) bool { return errors.Is(err, errHook) }

func (e *Engine) save(ctx context.Context, rec *Record) error {
	rec.UpdatedAt = e.Clock.Now().UTC()
	if h := e.Hooks.BeforeSave; h != nil {
		if err := h(rec); err != nil {
			return fmt.Errorf("%w: %w", errHook, err)
		}
	}
	// The journal write must land even if ctx was just cancelled: the side
	// effect it records has happened.
	if err := e.Store.Save(context.WithoutCancel(ctx), rec); err != nil {
		return fmt.Errorf("rotation: journal %s/%s: %w", rec.Credential, rec.ID, err)
	}
	e.transitioned(rec)
	if h := e.Hooks.AfterSave; h != nil {
		if err := h(rec); err != nil {
			return fmt.Errorf("%w: %w", errHook, err)
		}
	}
	return nil
}

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
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Second, 30*time.Second
	deadline := e.Clock.Now().Add(e.retryFor())
	for n := 1; ; n++ {
		err := callErr(e, ctx, f)
		if err == nil || isPermanent(err) || ctx.Err() != nil || n == tries {
			return err
		}
		wait := b.NextBackOff()
		if e.Clock.Now().Add(wait).After(deadline) {
			return err
		}
		if err := e.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	t := e.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.Chan():
		return nil
	}
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

func (e *Engine) emit(rec *Record, sink, msg string, err error) {
	fields := []zap.Field{zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID), zap.String("phase", string(rec.Phase))}
	if sink != "" {
		fields = append(fields, zap.String("sink", sink))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	text := msg
	if text == "" {
		text = "phase " + string(rec.Phase)
	}
	if err != nil {
		e.Log.Warn(text, fields...)
	} else {
		e.Log.Info(text, fields...)
	}
	if e.Observe != nil {
		e.Observe(Event{Time: e.Clock.Now(), Credential: rec.Credential, RotationID: rec.ID, Phase: rec.Phase, Sink: sink, Msg: msg, Err: err})
	}
}

func (e *Engine) warn(rec *Record, msg string) {
	e.Log.Warn(msg, logFields(rec)...)
	if e.Observe != nil {
		e.Observe(Event{Time: e.Clock.Now(), Credential: rec.Credential, RotationID: rec.ID, Phase: rec.Phase, Msg: "warning: " + msg})
	}
}

func logFields(rec *Record) []zap.Field {
	return []zap.Field{zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID)}
}

func setReceipt(rec *Record, r sinks.Receipt) {
	for i := range rec.Receipts {
		if rec.Receipts[i].Sink == r.Sink {
			rec.Receipts[i] = r
			return
		}
	}
	rec.Receipts = append(rec.Receipts, r)
}

func receipt(rec *Record, sink string) (sinks.Receipt, bool) {
	for _, r := range rec.Receipts {
		if r.Sink == sink {
			return r, true
		}
	}
	return sinks.Receipt{}, false
}

// isPermanent reports whether retrying err is pointless: marked permanent
// by a back-end, or a local error no retry can fix (an untrusted
// certificate, a header that cannot be sent).
func isPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p) || neterr.Permanent(err)
}

func fingerprint(v secret.Value) string {
	if v.IsZero() {
		return "nothing"
	}
	return v.Fingerprint()
}

// newID returns a short random rotation ID: 8 lowercase base32 characters.
func newID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

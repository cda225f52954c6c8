package rotation

// Deploy: putting the new key into every sink and proving it is there.

import (
	"context"
	"errors"
	"fmt"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

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
				// changed nothing (a failed Confirm after it proves
				// nothing). An earlier process of this rotation may still
				// have written the sink before a crash: its receipt says
				// so, and then there is something to undo.
				if _, wrote := receipt(rec, s.Name()); !wrote {
					rec.Untouched = append(rec.Untouched, s.Name())
				}
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
	for _, s := range c.Sinks {
		if err := e.settle(ctx, s, rec, rec.ID); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return e.fail(ctx, rec, fmt.Errorf("settle %s: %w", s.Name(), err))
		}
	}
	if err := e.advance(ctx, rec, Deployed, nil); err != nil {
		return err
	}
	if rec.Staged {
		e.emit(rec, "", "staged: new key live in every sink, old key still valid", nil)
	}
	return nil
}

// settle lets the readers of s pick up what it now holds (sinks.Settler),
// for the rotation (or rollback) rotationID; other sinks need nothing.
func (e *Engine) settle(ctx context.Context, s sinks.Sink, rec *Record, rotationID string) error {
	st, ok := s.(sinks.Settler)
	if !ok {
		return nil
	}
	if err := st.Settle(ctx, rotationID); err != nil {
		return err
	}
	e.emit(rec, s.Name(), "settled: its readers picked up the value", nil)
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
			return &heldOther{got: fingerprint(got), want: want.Fingerprint()}
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

// heldOther is check's answer when the sink holds another value than the
// one wanted; it names both by fingerprint, never by value.
type heldOther struct{ got, want string }

func (e *heldOther) Error() string { return "holds " + e.got + ", want " + e.want }

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

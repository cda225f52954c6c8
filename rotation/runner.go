package rotation

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"
)

// Result is what RunAll did for one credential.
type Result struct {
	Credential string
	Outcome    Outcome
	// Err is set when the credential could not be handled at all (busy,
	// journal error, interrupted); a rotation that rolled back has its
	// cause in Outcome.Err.
	Err error
}

// Failed reports whether the credential needs attention: its rotation
// rolled back or failed, or it could not be handled. A busy credential
// (another process is rotating it) is not a failure.
func (r Result) Failed() bool {
	if r.Err != nil {
		return !errors.Is(r.Err, ErrBusy)
	}
	return r.Outcome.Phase == RolledBack || r.Outcome.Phase == Failed
}

// RunAll resumes every unfinished rotation and rotates every due
// credential, at most limit at a time, and returns one result per
// credential in the order given. limit workers take the credentials in
// that order; once ctx ends, no credential is started and those not
// started get ErrInterrupted.
//
// A credential the journal, read once for all (Store.RecentAll), shows
// with no rotation in flight and not due is answered from that read,
// without taking its lock or reading its journal again: a run with nothing
// due costs one journal read, not one lock and one read per credential.
// Everything else is decided again under the credential's lock.
func (e *Engine) RunAll(ctx context.Context, creds []*Credential, limit int) []Result {
	results := make([]Result, len(creds))
	todo := make([]int, 0, len(creds))
	recent, err := e.Store.RecentAll(ctx)
	for i, c := range creds {
		if err == nil {
			if out, ok := e.notDue(c, recent[c.Name]); ok {
				results[i] = Result{Credential: c.Name, Outcome: out}
				continue
			}
		}
		todo = append(todo, i)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(limit, 1), len(todo)) {
		wg.Go(func() {
			for i := range next {
				results[i] = e.runOne(ctx, creds[i])
			}
		})
	}
feed:
	for k, i := range todo {
		select {
		case next <- i:
		case <-ctx.Done():
			for _, j := range todo[k:] {
				results[j] = Result{Credential: creds[j].Name, Err: ErrInterrupted}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results
}

// notDue reports the outcome of Rotate for c from its recent records (as
// Store.Recent returns them) when they show for sure that Rotate would do
// nothing: no rotation in flight, every record readable, the journal of c's
// setup, and not due.
func (e *Engine) notDue(c *Credential, recent []*Record) (Outcome, bool) {
	st := e.stateOf(recent)
	if st.unfinished != nil || st.unreadable > 0 || checkSetup(c, st) != nil {
		return Outcome{}, false
	}
	due := schedule(c, st.hist, e.Clock.Now())
	if due.Due {
		return Outcome{}, false
	}
	return Outcome{Skipped: due.Reason, DueAt: due.At}, true
}

func (e *Engine) runOne(ctx context.Context, c *Credential) Result {
	if ctx.Err() != nil {
		return Result{Credential: c.Name, Err: ErrInterrupted}
	}
	out, err := e.Rotate(ctx, c, Options{})
	if errors.Is(err, ErrBusy) {
		fields := []zap.Field{zap.String("credential", c.Name)}
		var busy *BusyError
		if errors.As(err, &busy) && busy.Holder != nil {
			fields = append(fields, zap.Int("holder_pid", busy.Holder.PID), zap.String("holder_host", busy.Holder.Host), zap.Time("holder_since", busy.Holder.Since))
		}
		e.Log.Info("another rekey is rotating this credential: left alone this time", fields...)
	}
	return Result{Credential: c.Name, Outcome: out, Err: err}
}

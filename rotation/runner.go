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
func (e *Engine) RunAll(ctx context.Context, creds []*Credential, limit int) []Result {
	results := make([]Result, len(creds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(limit, 1), len(creds)) {
		wg.Go(func() {
			for i := range next {
				results[i] = e.runOne(ctx, creds[i])
			}
		})
	}
feed:
	for i := range creds {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(creds); j++ {
				results[j] = Result{Credential: creds[j].Name, Err: ErrInterrupted}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results
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

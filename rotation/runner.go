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
// credential in the order given.
func (e *Engine) RunAll(ctx context.Context, creds []*Credential, limit int) []Result {
	if limit < 1 {
		limit = 1
	}
	results := make([]Result, len(creds))
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, c := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Credential: c.Name, Err: ErrInterrupted}
				return
			}
			defer func() { <-sem }()
			out, err := e.Rotate(ctx, c, Options{})
			if errors.Is(err, ErrBusy) {
				e.Log.Info("another rekey is rotating this credential", zap.String("credential", c.Name))
			}
			results[i] = Result{Credential: c.Name, Outcome: out, Err: err}
		}()
	}
	wg.Wait()
	return results
}

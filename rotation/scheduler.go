package rotation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Grace is how long past rotate_every a key may live before it is reported
// overdue: a tenth of rotate_every, at most 24 h (90d → 24h, 1d → 2.4h,
// 1h → 6m). It leaves room for a window that opens later and for a few
// backed-off retries before anyone is alerted.
func Grace(rotateEvery time.Duration) time.Duration {
	return min(rotateEvery/10, 24*time.Hour)
}

// busyRetry is how long the scheduler waits before trying again a
// credential that another process (a deploy hook, `rekey rotate`) holds.
const busyRetry = time.Minute

// Status is what the scheduler knows about one credential each time it
// recomputes its schedule.
type Status struct {
	Credential string
	Due        Due
	// OverdueAt is when the key passes rotate_every plus Grace; zero when
	// unknown (rekey never rotated nor tried to rotate the credential).
	// Without a successful rotation it counts from the first attempt.
	OverdueAt time.Time
	// Overdue is set once OverdueAt has passed, even while rotations keep
	// failing.
	Overdue bool
	// InFlight is the phase of the credential's unfinished rotation; empty
	// if none.
	InFlight Phase
	// Running is set while this scheduler runs a rotation attempt for the
	// credential.
	Running bool
}

// Scheduler is the daemon's loop: it resumes unfinished rotations, starts
// each credential's rotation when it falls due, and otherwise sleeps on the
// engine's clock until the earliest next due time. Everything it decides
// derives from the journal, so a restart neither skips nor repeats a
// rotation. Set Engine before calling Run.
type Scheduler struct {
	Engine *Engine
	// Concurrency bounds the rotations running at once (default 1).
	Concurrency int
	// OnSchedule, if set, receives each credential's status whenever it is
	// recomputed. It is called from the scheduler's goroutine.
	OnSchedule func(Status)
	// OnOverdue, if set, is called once per overdue episode: when a
	// credential turns overdue, and again only after a rotation has
	// succeeded and the key has turned overdue anew. The scheduler logs it.
	OnOverdue func(Status)
	// OnResult, if set, receives every finished rotation attempt.
	OnResult func(Result)

	mu      sync.Mutex
	pending []*Credential
	wake    chan struct{}
}

// Reload replaces the credentials the scheduler manages. Rotations in
// flight finish with the credential they started with; a credential no
// longer listed is not started again. Safe to call at any time, even
// before Run.
func (s *Scheduler) Reload(creds []*Credential) {
	s.mu.Lock()
	s.pending = slices.Clone(creds)
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	wake := s.wake
	s.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) reloaded() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return s.wake
}

func (s *Scheduler) takePending() []*Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = nil
	return p
}

type finished struct {
	name string
	res  Result
}

// credState is the scheduler's in-memory view of one credential, on top
// of what the journal says.
type credState struct {
	running bool
	// retryAt delays the next attempt after an attempt that returned an
	// error without ending its rotation (a revoke still failing, the
	// journal unavailable) or found the credential busy.
	retryAt time.Time
	errors  int
	// flagged is set while the current overdue episode has been reported.
	flagged bool
}

// Run schedules creds (and, after Reload, the new set) until ctx ends. It
// then waits for the rotations in flight, which stop after their current
// step with the journal holding it, and returns.
func (s *Scheduler) Run(ctx context.Context, creds []*Credential) {
	e := s.Engine
	limit := max(s.Concurrency, 1)
	creds = slices.Clone(creds)
	state := map[string]*credState{}
	done := make(chan finished)
	reload := s.reloaded()
	var wg sync.WaitGroup
	defer wg.Wait()
	running := 0
	var timer interface {
		Chan() <-chan time.Time
		Stop() bool
	}
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer = nil
		}
	}
	defer stopTimer()

	for {
		var wakeAt time.Time
		earliest := func(t time.Time) {
			if !t.IsZero() && (wakeAt.IsZero() || t.Before(wakeAt)) {
				wakeAt = t
			}
		}
		slices.SortFunc(creds, func(a, b *Credential) int { return strings.Compare(a.Name, b.Name) })
		for _, c := range creds {
			if ctx.Err() != nil {
				break
			}
			st := state[c.Name]
			if st == nil {
				st = &credState{}
				state[c.Name] = st
			}
			status, unfinished, err := s.status(ctx, c)
			now := e.Clock.Now()
			if err != nil {
				e.Log.Error("read schedule", zap.String("credential", c.Name), zap.Error(err))
				earliest(now.Add(busyRetry))
				continue
			}
			s.overdue(st, status)
			if !st.flagged {
				earliest(status.OverdueAt)
			}
			if run := s.decide(c, st, status, unfinished, now, earliest); run != nil && running < limit {
				st.running = true
				running++
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := run(ctx, c, Options{})
					done <- finished{c.Name, Result{Credential: c.Name, Outcome: out, Err: err}}
				}()
			}
			// A credential waiting for a free slot is started when a
			// running rotation finishes and wakes the loop.
			status.Running = st.running
			if s.OnSchedule != nil {
				s.OnSchedule(status)
			}
		}

		stopTimer()
		var timerC <-chan time.Time
		if !wakeAt.IsZero() && ctx.Err() == nil {
			timer = e.Clock.NewTimer(max(wakeAt.Sub(e.Clock.Now()), 0))
			timerC = timer.Chan()
			e.Log.Debug("scheduler sleeping", zap.Time("until", wakeAt))
		}
		if ctx.Err() != nil && running == 0 {
			return
		}
		var ctxDone <-chan struct{}
		if ctx.Err() == nil {
			ctxDone = ctx.Done()
		}
		select {
		case <-ctxDone:
		case <-timerC:
			timer = nil
		case <-reload:
			stopTimer()
			if p := s.takePending(); p != nil {
				creds = p
			}
		case f := <-done:
			stopTimer()
			running--
			st := state[f.name]
			st.running = false
			s.finish(st, f.res)
			if s.OnResult != nil {
				s.OnResult(f.res)
			}
		}
	}
}

// decide returns what to run for the credential now, or nil after noting
// when to look again.
func (s *Scheduler) decide(c *Credential, st *credState, status Status, unfinished *Record, now time.Time, earliest func(time.Time)) func(context.Context, *Credential, Options) (Outcome, error) {
	e := s.Engine
	switch {
	case st.running:
		return nil
	case st.retryAt.After(now):
		earliest(st.retryAt)
		return nil
	case unfinished != nil && unfinished.Staged && unfinished.Phase == Deployed && now.Sub(unfinished.UpdatedAt) < c.StageTimeout:
		// Staged: waiting for --finish until its stage timeout.
		earliest(unfinished.UpdatedAt.Add(c.StageTimeout))
		return nil
	case unfinished != nil:
		return func(ctx context.Context, c *Credential, _ Options) (Outcome, error) { return e.Resume(ctx, c) }
	case status.Due.Due:
		return e.Rotate
	}
	earliest(status.Due.At)
	return nil
}

// status reads the credential's journal once and derives its schedule.
func (s *Scheduler) status(ctx context.Context, c *Credential) (Status, *Record, error) {
	js, err := s.Engine.state(ctx, c.Name)
	if err != nil {
		return Status{}, nil, err
	}
	hist, unfinished := js.hist, js.unfinished
	now := s.Engine.Clock.Now()
	st := Status{Credential: c.Name, Due: schedule(c, hist, now)}
	if unfinished != nil {
		st.InFlight = unfinished.Phase
	}
	var since time.Time // when the key became due
	switch {
	case !st.Due.LastRotated.IsZero():
		since = st.Due.LastRotated.Add(c.RotateEvery)
	case len(hist) > 0:
		since = hist[len(hist)-1].StartedAt
	}
	if !since.IsZero() {
		st.OverdueAt = since.Add(Grace(c.RotateEvery))
		st.Overdue = !now.Before(st.OverdueAt)
	}
	return st, unfinished, nil
}

// overdue reports a credential's overdue episode once.
func (s *Scheduler) overdue(st *credState, status Status) {
	if !status.Overdue {
		st.flagged = false
		return
	}
	if st.flagged {
		return
	}
	st.flagged = true
	fields := []zap.Field{zap.String("credential", status.Credential), zap.Time("overdue_since", status.OverdueAt),
		zap.Int("failures", status.Due.Failures)}
	if !status.Due.LastRotated.IsZero() {
		fields = append(fields, zap.Duration("key_age", s.Engine.Clock.Since(status.Due.LastRotated)))
	}
	s.Engine.Log.Warn("credential overdue for rotation", fields...)
	if s.OnOverdue != nil {
		s.OnOverdue(status)
	}
}

// finish records an attempt's error for the in-memory retry delay. A
// rotation that ended (done, rolled back, failed) is scheduled from the
// journal alone.
func (s *Scheduler) finish(st *credState, r Result) {
	now := s.Engine.Clock.Now()
	switch {
	case r.Err == nil:
		st.errors, st.retryAt = 0, time.Time{}
	case errors.Is(r.Err, ErrBusy):
		st.retryAt = now.Add(busyRetry)
	case errors.Is(r.Err, ErrInterrupted):
	default:
		st.errors++
		st.retryAt = now.Add(Backoff(st.errors))
		s.Engine.Log.Error("rotation attempt ended with an error; retrying later", zap.String("credential", r.Credential),
			zap.String("rotation_id", r.Outcome.RotationID), zap.String("phase", string(r.Outcome.Phase)),
			zap.Duration("retry_in", Backoff(st.errors)), zap.Error(r.Err))
	}
}

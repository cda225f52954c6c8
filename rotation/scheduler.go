package rotation

import (
	"container/heap"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
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
//
// Its work per event does not grow with the number of credentials: it
// reads every credential's journal once at start, and afterwards only the
// journal of the credential an event concerns (its wake time came, its
// rotation attempt finished, a reload added or changed it, a slot freed up
// for it, another process changed its journal: see ChangeWatcher). Each credential's next wake time sits in a min-heap; one timer
// is set to the earliest.
type Scheduler struct {
	Engine *Engine
	// Concurrency bounds the rotations running at once (default 1).
	// Credentials that fall due while every slot is taken wait in the order
	// they fell due.
	Concurrency int
	// OnSchedule, if set, receives a credential's status whenever it is
	// recomputed: at start, when its wake time comes, after each of its
	// rotation attempts, and when a reload adds it or changes its schedule.
	// It is called from the scheduler's goroutine.
	OnSchedule func(Status)
	// OnOverdue, if set, is called once per overdue episode: when a
	// credential turns overdue, and again only after a rotation has
	// succeeded and the key has turned overdue anew. The scheduler logs it.
	OnOverdue func(Status)
	// OnResult, if set, receives every finished rotation attempt.
	OnResult func(Result)
	// OnIdle, if set, is called when the scheduler has nothing running and
	// nothing waiting for a slot: once after start, and after each burst
	// of attempts, when the last one finishes. A daemon releases what the
	// burst left (idle connections, freed heap) there, so that what it
	// holds while idle does not depend on what it did before. It is called
	// from the scheduler's goroutine and must not block.
	OnIdle func()
	// BusyRetry is how long to wait before trying again a credential that
	// another process holds (default one minute). A daemon that has just
	// taken over from a dead leader sets it to a fraction of the lock
	// TTL, so that it resumes soon after the dead leader's locks expire.
	BusyRetry time.Duration

	mu      sync.Mutex
	pending []*Credential
	// changed holds the credentials another process changed (see
	// ChangeWatcher) since the loop last looked; all: every credential.
	changed map[string]bool
	all     bool
	wake    chan struct{}
}

// Reload replaces the credentials the scheduler manages. Rotations in
// flight finish with the credential they started with; a credential no
// longer listed is not started again. Only the journals of credentials
// added, or whose schedule (rotate_every, window, stage timeout) changed,
// are read again. Safe to call at any time, even before Run.
func (s *Scheduler) Reload(creds []*Credential) {
	s.wakeWith(func() { s.pending = slices.Clone(creds) })
}

// wakeWith runs note under the scheduler's lock and wakes the loop.
func (s *Scheduler) wakeWith(note func()) {
	s.mu.Lock()
	note()
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

// noteChange records that credential's journal changed ("" for every
// credential) and wakes the loop. It is the ChangeWatcher's callback.
func (s *Scheduler) noteChange(credential string) {
	s.wakeWith(func() {
		switch {
		case credential == "":
			s.all = true
		case s.changed == nil:
			s.changed = map[string]bool{credential: true}
		default:
			s.changed[credential] = true
		}
	})
}

// takeChanged returns and clears what noteChange recorded.
func (s *Scheduler) takeChanged() (changed map[string]bool, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, all = s.changed, s.all
	s.changed, s.all = nil, false
	return changed, all
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

// entry is one credential in a running scheduler. It outlives a reload
// that drops the credential, so that a credential listed again keeps its
// backoff and overdue episode.
type entry struct {
	name string
	cred *Credential
	credState
	listed bool
	// waiting is set while the credential is runnable but every slot is
	// taken; queued while it sits in the wait queue (which may hold it
	// after it stopped waiting: it is skipped then).
	waiting, queued bool
	// at is when to look at the credential again; zero when only an event
	// (its attempt finishing, a reload, a free slot) will.
	at    time.Time
	index int // in the wake heap; -1 when not in it
}

// wakeHeap orders entries by wake time, then name.
type wakeHeap []*entry

func (h wakeHeap) Len() int { return len(h) }
func (h wakeHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].name < h[j].name
}
func (h wakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *wakeHeap) Push(x any) {
	en := x.(*entry)
	en.index = len(*h)
	*h = append(*h, en)
}
func (h *wakeHeap) Pop() any {
	old := *h
	en := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	en.index = -1
	return en
}

type finished struct {
	en  *entry
	res Result
}

// loop is the state of one call to Run, owned by its goroutine.
type loop struct {
	s       *Scheduler
	e       *Engine
	ctx     context.Context
	limit   int
	running int
	entries map[string]*entry
	wakes   wakeHeap
	queue   []*entry // runnable, waiting for a slot, in the order they fell due
	done    chan finished
	wg      sync.WaitGroup
	timer   clockwork.Timer
	armed   time.Time // what timer is set to; zero when stopped
}

// Run schedules creds (and, after Reload, the new set) until ctx ends. It
// then waits for the rotations in flight, which stop after their current
// step with the journal holding it, and returns.
func (s *Scheduler) Run(ctx context.Context, creds []*Credential) {
	l := &loop{s: s, e: s.Engine, ctx: ctx, limit: max(s.Concurrency, 1), entries: map[string]*entry{}, done: make(chan finished)}
	defer l.wg.Wait()
	defer l.stopTimer()
	reload := s.reloaded()
	if w, ok := s.Engine.Store.(ChangeWatcher); ok {
		// Watch from before the first reading of the journals, so that no
		// change between the two goes unseen.
		wctx, stop := context.WithCancel(ctx)
		var watching sync.WaitGroup
		watching.Go(func() { w.WatchChanges(wctx, s.noteChange) })
		defer watching.Wait()
		defer stop()
	}
	l.reload(creds)
	l.idle()
	ctxDone := ctx.Done()
	for {
		if ctx.Err() != nil {
			if l.running == 0 {
				return
			}
			ctxDone = nil
		}
		l.arm()
		var timerC <-chan time.Time
		if !l.armed.IsZero() {
			timerC = l.timer.Chan()
		}
		select {
		case <-ctxDone:
		case <-timerC:
			l.armed = time.Time{}
			l.wakeDue()
		case <-reload:
			l.stopTimer()
			if p := s.takePending(); p != nil {
				l.reload(p)
			}
			l.changed(s.takeChanged())
		case f := <-l.done:
			l.stopTimer()
			l.finished(f)
		}
	}
}

// reload makes creds the listed credentials, evaluating those added or
// whose schedule changed, in name order.
func (l *loop) reload(creds []*Credential) {
	listed := make(map[string]bool, len(creds))
	for _, c := range creds {
		listed[c.Name] = true
	}
	for name, en := range l.entries {
		if en.listed && !listed[name] {
			en.listed, en.waiting = false, false
			l.wakeAt(en, time.Time{})
		}
	}
	creds = slices.Clone(creds)
	slices.SortStableFunc(creds, func(a, b *Credential) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range creds {
		if l.ctx.Err() != nil {
			return
		}
		en := l.entries[c.Name]
		switch {
		case en == nil:
			en = &entry{name: c.Name, index: -1}
			l.entries[c.Name] = en
		case en.listed && en.cred == c:
			continue
		case en.listed && sameSchedule(en.cred, c):
			en.cred = c
			continue
		}
		en.cred, en.listed = c, true
		l.evaluate(en)
	}
}

// changed evaluates again the credentials whose journal another process
// changed (all of them if all), in name order. One that is running or
// waiting for a slot is left alone: it is evaluated when its attempt
// finishes or its slot comes, and reads the journal then.
func (l *loop) changed(changed map[string]bool, all bool) {
	var names []string
	if all {
		names = slices.Collect(maps.Keys(l.entries))
	} else {
		names = slices.Collect(maps.Keys(changed))
	}
	slices.Sort(names)
	for _, name := range names {
		if l.ctx.Err() != nil {
			return
		}
		if en := l.entries[name]; en != nil && en.listed && !en.running && !en.waiting {
			l.evaluate(en)
		}
	}
}

// evaluate reads the credential's journal, reports its status, starts its
// rotation if it is runnable and a slot is free (or queues it), and sets
// its next wake time.
func (l *loop) evaluate(en *entry) {
	s, c := l.s, en.cred
	status, unfinished, err := s.status(l.ctx, c)
	now := l.e.Clock.Now()
	if err != nil {
		l.e.Log.Error("read schedule", zap.String("credential", c.Name), zap.Error(err))
		en.waiting = false
		l.wakeAt(en, now.Add(busyRetry))
		return
	}
	var wake time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	s.overdue(&en.credState, status)
	if !en.flagged {
		earliest(status.OverdueAt)
	}
	switch run := s.decide(c, &en.credState, status, unfinished, now, earliest); {
	case run == nil:
		en.waiting = false
	case l.running < l.limit:
		en.waiting = false
		l.start(en, run)
	default:
		en.waiting = true
		if !en.queued {
			en.queued = true
			l.queue = append(l.queue, en)
		}
	}
	status.Running = en.running
	if s.OnSchedule != nil {
		s.OnSchedule(status)
	}
	l.wakeAt(en, wake)
}

func (l *loop) start(en *entry, run func(context.Context, *Credential, Options) (Outcome, error)) {
	en.running = true
	l.running++
	c := en.cred
	l.wg.Go(func() {
		out, err := run(l.ctx, c, Options{})
		l.done <- finished{en, Result{Credential: c.Name, Outcome: out, Err: err}}
	})
}

// finished handles a finished attempt: the freed slot goes to the
// credential that has waited longest, then the credential is evaluated
// again from its journal.
func (l *loop) finished(f finished) {
	en := f.en
	l.running--
	en.running = false
	l.s.finish(&en.credState, f.res)
	if l.s.OnResult != nil {
		l.s.OnResult(f.res)
	}
	if l.ctx.Err() != nil {
		return
	}
	l.fill()
	if en.listed {
		l.evaluate(en)
	}
	l.idle()
}

// idle calls OnIdle when nothing runs or waits.
func (l *loop) idle() {
	if l.running == 0 && len(l.queue) == 0 && l.s.OnIdle != nil && l.ctx.Err() == nil {
		l.s.OnIdle()
	}
}

// fill gives free slots to waiting credentials, oldest first, each
// evaluated again (the journal may have changed while it waited).
func (l *loop) fill() {
	for l.running < l.limit && len(l.queue) > 0 && l.ctx.Err() == nil {
		en := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		en.queued = false
		if !en.waiting || !en.listed {
			continue
		}
		en.waiting = false
		l.evaluate(en)
	}
}

// wakeDue evaluates every credential whose wake time has come.
func (l *loop) wakeDue() {
	now := l.e.Clock.Now()
	for len(l.wakes) > 0 && !l.wakes[0].at.After(now) && l.ctx.Err() == nil {
		en := heap.Pop(&l.wakes).(*entry)
		en.at = time.Time{}
		l.evaluate(en)
	}
}

// wakeAt sets when to look at en again; zero takes it out of the heap.
func (l *loop) wakeAt(en *entry, at time.Time) {
	en.at = at
	switch {
	case at.IsZero() && en.index >= 0:
		heap.Remove(&l.wakes, en.index)
	case at.IsZero():
	case en.index >= 0:
		heap.Fix(&l.wakes, en.index)
	default:
		heap.Push(&l.wakes, en)
	}
}

// arm sets the one timer to the earliest wake time, if it changed. The
// timer is set only while the loop waits: Run stops it while it handles an
// event, so a timer that is set means the loop is idle, with the wait its
// last event decided (what the tests' fake clocks rely on).
func (l *loop) arm() {
	var want time.Time
	if len(l.wakes) > 0 && l.ctx.Err() == nil {
		want = l.wakes[0].at
	}
	if want.Equal(l.armed) {
		return
	}
	l.stopTimer()
	if want.IsZero() {
		return
	}
	d := max(want.Sub(l.e.Clock.Now()), 0)
	if l.timer == nil {
		l.timer = l.e.Clock.NewTimer(d)
	} else {
		l.timer.Reset(d)
	}
	l.armed = want
	l.e.Log.Debug("scheduler sleeping", zap.Time("until", want))
}

func (l *loop) stopTimer() {
	if l.timer != nil && !l.armed.IsZero() && !l.timer.Stop() {
		select { // fired but not received: drop it
		case <-l.timer.Chan():
		default:
		}
	}
	l.armed = time.Time{}
}

// sameSchedule reports whether a and b are scheduled alike: status and
// decide read nothing else of a credential.
func sameSchedule(a, b *Credential) bool {
	return a.RotateEvery == b.RotateEvery && a.StageTimeout == b.StageTimeout && a.Window.equal(b.Window)
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
		retry := s.BusyRetry
		if retry <= 0 {
			retry = busyRetry
		}
		st.retryAt = now.Add(retry)
	case errors.Is(r.Err, ErrInterrupted):
	default:
		st.errors++
		st.retryAt = now.Add(Backoff(st.errors))
		s.Engine.Log.Error("rotation attempt ended with an error; retrying later", zap.String("credential", r.Credential),
			zap.String("rotation_id", r.Outcome.RotationID), zap.String("phase", string(r.Outcome.Phase)),
			zap.Duration("retry_in", Backoff(st.errors)), zap.Error(r.Err))
	}
}

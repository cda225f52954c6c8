package rotation_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/rotation"
)

// daemon is a Scheduler over a world, on a plain fake clock: nothing
// happens until the test advances time. The credential's monitoring window
// is zero, so a rotation itself waits on no timer and the only timer on
// the clock is the scheduler's own.
type daemon struct {
	t        *testing.T
	w        *world
	clock    *clockwork.FakeClock
	s        *rotation.Scheduler
	results  chan rotation.Result
	mu       sync.Mutex
	statuses []rotation.Status
	overdues []rotation.Status
	cancel   context.CancelFunc
	stopped  chan struct{}
}

func newSchedulerWorld(t *testing.T) *world {
	w := newWorld(t)
	w.cred.Monitor.Window = 0
	w.cred.Monitor.FailureThreshold = 1
	return w
}

func (w *world) startDaemon() *daemon { return w.startDaemonWith(nil) }

// startDaemonWith is startDaemon with set applied to the Scheduler before
// it runs.
func (w *world) startDaemonWith(set func(*rotation.Scheduler)) *daemon {
	d := &daemon{t: w.t, w: w, clock: w.clock.FakeClock, results: make(chan rotation.Result, 100), stopped: make(chan struct{})}
	e := w.engine(rotation.Hooks{})
	e.Clock = d.clock // no auto-advance: the scheduler must sleep for real fake time
	d.s = &rotation.Scheduler{
		Engine: e, Concurrency: 2,
		OnResult:   func(r rotation.Result) { d.results <- r },
		OnSchedule: func(s rotation.Status) { d.mu.Lock(); d.statuses = append(d.statuses, s); d.mu.Unlock() },
		OnOverdue:  func(s rotation.Status) { d.mu.Lock(); d.overdues = append(d.overdues, s); d.mu.Unlock() },
	}
	if set != nil {
		set(d.s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { defer close(d.stopped); d.s.Run(ctx, []*rotation.Credential{w.cred}) }()
	w.t.Cleanup(d.stop)
	return d
}

func (d *daemon) stop() {
	d.cancel()
	select {
	case <-d.stopped:
	case <-time.After(10 * time.Second):
		d.t.Fatal("scheduler did not stop")
	}
}

// result waits for the next finished rotation attempt.
func (d *daemon) result() rotation.Result {
	d.t.Helper()
	select {
	case r := <-d.results:
		return r
	case <-time.After(10 * time.Second):
		d.t.Fatal("no rotation finished")
	}
	return rotation.Result{}
}

// asleep waits until the scheduler sleeps on its timer, and checks no
// rotation attempt finished meanwhile.
func (d *daemon) asleep() {
	d.t.Helper()
	if n := d.settle(); n != 0 {
		d.t.Fatalf("%d unexpected rotation attempts", n)
	}
}

func (d *daemon) overdueCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.overdues)
}

func (d *daemon) lastStatus() rotation.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statuses[len(d.statuses)-1]
}

// failMint makes the issuer refuse new keys (its key limit), so each
// attempt rolls back at once without deploying.
func (w *world) failMint(fail bool) {
	if fail {
		w.sim.SetMaxActiveKeys(1)
	} else {
		w.sim.SetMaxActiveKeys(0)
	}
}

func (w *world) history() []*rotation.Record {
	hist, err := w.store.History(context.Background(), "prod", 0)
	must(w.t, err)
	return hist
}

func TestSchedulerAcrossRestartsNeitherSkipsNorDoubles(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	start := w.clock.Now()

	// Never rotated by rekey: due at once.
	d := w.startDaemon()
	if r := d.result(); r.Err != nil || r.Outcome.Phase != rotation.Done {
		t.Fatalf("first rotation: %+v", r)
	}
	d.asleep()
	first := w.history()[0]
	if !first.StartedAt.Equal(start) {
		t.Fatalf("first rotation started %v, want %v", first.StartedAt, start)
	}
	due := first.FinishedAt.Add(w.cred.RotateEvery)
	if got := d.lastStatus().Due.At; !got.Equal(due) {
		t.Errorf("next due %v, want %v", got, due)
	}

	// A second before due nothing happens; a restart then does not rotate.
	d.clock.Advance(due.Sub(d.clock.Now()) - time.Second)
	d.asleep()
	d.stop()
	d = w.startDaemon()
	d.asleep()
	if n := len(w.history()); n != 1 {
		t.Fatalf("%d rotations after restart before due, want 1", n)
	}

	// At the due time exactly, one rotation.
	d.clock.Advance(time.Second)
	if r := d.result(); r.Outcome.Phase != rotation.Done {
		t.Fatalf("second rotation: %+v", r)
	}
	d.asleep()
	hist := w.history()
	if len(hist) != 2 || !hist[0].StartedAt.Equal(due) {
		t.Fatalf("rotations %v, second started %v, want one at %v", phases(hist), hist[0].StartedAt, due)
	}

	// Down across a due time: the restart catches up once, not twice.
	d.stop()
	d.clock.Advance(w.cred.RotateEvery + 10*24*time.Hour)
	late := d.clock.Now()
	d = w.startDaemon()
	if r := d.result(); r.Outcome.Phase != rotation.Done {
		t.Fatalf("catch-up rotation: %+v", r)
	}
	d.asleep()
	d.stop()
	d = w.startDaemon()
	d.asleep()
	hist = w.history()
	if len(hist) != 3 || !hist[0].StartedAt.Equal(late) {
		t.Fatalf("rotations %v, want exactly one catch-up at %v", phases(hist), late)
	}
	w.invariants(rotation.Done)
}

func TestSchedulerWaitsForWindow(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	var err error
	// The world starts Wednesday 2026-11-25 03:00 UTC; the window is
	// evaluated in its own zone.
	loc := time.FixedZone("UTC+1", 3600)
	w.cred.Window, err = rotation.ParseWindow("30 5 * * *", loc) // 04:30 UTC
	must(t, err)
	w.cred.RotateEvery = 36 * time.Hour

	d := w.startDaemon()
	d.asleep()
	if n := len(w.history()); n != 0 {
		t.Fatalf("rotated outside the window: %d rotations", n)
	}
	d.clock.Advance(89 * time.Minute)
	d.asleep()
	d.clock.Advance(time.Minute)
	if r := d.result(); r.Outcome.Phase != rotation.Done {
		t.Fatalf("rotation in window: %+v", r)
	}
	d.asleep()
	want := time.Date(2026, 11, 25, 4, 30, 0, 0, time.UTC)
	if got := w.history()[0].StartedAt; !got.Equal(want) {
		t.Fatalf("started %v, want %v", got, want)
	}
	// Due again 36h later (Friday 16:30): the next window is Saturday 04:30.
	next := time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC)
	if got := d.lastStatus().Due.At; !got.Equal(next) {
		t.Fatalf("next due %v, want %v", got, next)
	}
	d.clock.Advance(next.Sub(d.clock.Now()))
	if r := d.result(); r.Outcome.Phase != rotation.Done {
		t.Fatalf("second rotation: %+v", r)
	}
	if got := w.history()[0].StartedAt; !got.Equal(next) {
		t.Fatalf("second rotation started %v, want %v", got, next)
	}
}

func TestSchedulerBacksOffAfterFailures(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	w.failMint(true)
	d := w.startDaemon()
	var finished []time.Time
	for i := range 4 {
		r := d.result()
		if r.Outcome.Phase != rotation.RolledBack {
			t.Fatalf("attempt %d: %+v, want rolled back", i+1, r)
		}
		finished = append(finished, w.history()[0].FinishedAt)
		d.asleep()
		wait := rotation.Backoff(i + 1)
		if i == 3 {
			w.failMint(false)
		}
		d.clock.Advance(wait - time.Second)
		d.asleep()
		d.clock.Advance(time.Second)
	}
	if r := d.result(); r.Outcome.Phase != rotation.Done {
		t.Fatalf("attempt after recovery: %+v", r)
	}
	hist := w.history()
	if len(hist) != 5 {
		t.Fatalf("%d attempts, want 5: %v", len(hist), phases(hist))
	}
	// Newest first: attempt k+1 started Backoff(k) after attempt k ended.
	for k := 1; k <= 4; k++ {
		got := hist[5-k-1].StartedAt.Sub(finished[k-1])
		if got != rotation.Backoff(k) {
			t.Errorf("attempt %d started %v after the failure, want %v", k+1, got, rotation.Backoff(k))
		}
	}
	w.invariants(rotation.Done)
}

// A credential another holder has locked is tried again after BusyRetry
// (a new leader's short retry), not the default minute.
func TestSchedulerBusyRetry(t *testing.T) {
	w := newSchedulerWorld(t)
	unlock, err := w.store.Lock(context.Background(), "prod")
	must(t, err)
	d := w.startDaemonWith(func(s *rotation.Scheduler) { s.BusyRetry = 5 * time.Second })
	if r := d.result(); !errors.Is(r.Err, rotation.ErrBusy) {
		t.Fatalf("first attempt: %+v, want busy", r)
	}
	unlock()
	d.asleep()
	d.clock.Advance(5*time.Second - time.Millisecond)
	d.asleep()
	d.clock.Advance(time.Millisecond)
	if r := d.result(); r.Err != nil || r.Outcome.Phase != rotation.Done {
		t.Fatalf("attempt after BusyRetry: %+v", r)
	}
}

func TestSchedulerReportsOverdueOncePerEpisode(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	w.cred.RotateEvery = 10 * 24 * time.Hour // grace 24h
	d := w.startDaemon()
	d.result()
	d.asleep()
	rotated := w.history()[0].FinishedAt
	overdueAt := rotated.Add(w.cred.RotateEvery + 24*time.Hour)

	// Due: every attempt now fails, through the grace period and beyond.
	w.failMint(true)
	attempts := 0
	for d.clock.Now().Before(overdueAt.Add(12 * time.Hour)) {
		d.clock.Advance(time.Hour)
		attempts += d.settle()
		if d.clock.Now().Before(overdueAt) && d.overdueCount() != 0 {
			t.Fatalf("overdue reported at %v, before %v", d.clock.Now(), overdueAt)
		}
	}
	if attempts < 3 {
		t.Fatalf("%d failed attempts, want several", attempts)
	}
	if n := d.overdueCount(); n != 1 {
		t.Fatalf("overdue reported %d times over repeated failures, want once", n)
	}
	d.mu.Lock()
	got := d.overdues[0]
	d.mu.Unlock()
	if !got.OverdueAt.Equal(overdueAt) || !got.Overdue || got.Due.Failures == 0 {
		t.Errorf("overdue status %+v", got)
	}

	// Recovery ends the episode; the next one is reported again.
	w.failMint(false)
	for w.history()[0].Phase != rotation.Done {
		d.clock.Advance(time.Hour)
		d.settle()
	}
	if s := d.lastStatus(); s.Overdue {
		t.Fatalf("still overdue after a successful rotation: %+v", s)
	}
	w.failMint(true)
	d.clock.Advance(w.cred.RotateEvery + 25*time.Hour)
	for d.overdueCount() < 2 {
		d.settle()
		d.clock.Advance(time.Hour)
	}
	if n := d.overdueCount(); n != 2 {
		t.Fatalf("%d overdue reports, want 2 episodes", n)
	}
}

// settle waits until the scheduler sleeps with no rotation running (the
// last status it reported says so, and no status came after the timer was
// set), and returns how many attempts finished meanwhile.
func (d *daemon) settle() int {
	d.t.Helper()
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		count, running := len(d.statuses), len(d.statuses) == 0 || d.statuses[len(d.statuses)-1].Running
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := d.clock.BlockUntilContext(ctx, 1)
		cancel()
	drain:
		for {
			select {
			case <-d.results:
				n++
			default:
				break drain
			}
		}
		d.mu.Lock()
		same := len(d.statuses) == count
		d.mu.Unlock()
		if err == nil && !running && same {
			return n
		}
	}
	d.t.Fatal("scheduler did not settle")
	return n
}

func TestSchedulerFinishesStagedRotationAfterTimeout(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	e := w.engine(rotation.Hooks{})
	e.Clock = w.clock.FakeClock
	out, err := e.Rotate(context.Background(), w.cred, rotation.Options{Force: true, Stage: true})
	if err != nil || out.Phase != rotation.Deployed {
		t.Fatalf("stage: %+v %v", out, err)
	}
	staged := w.history()[0].UpdatedAt

	d := w.startDaemon()
	d.asleep()
	if p := w.history()[0].Phase; p != rotation.Deployed {
		t.Fatalf("staged rotation moved to %s before its stage timeout", p)
	}
	if s := d.lastStatus(); s.InFlight != rotation.Deployed {
		t.Errorf("in flight %q, want deployed", s.InFlight)
	}
	d.clock.Advance(staged.Add(w.cred.StageTimeout).Sub(d.clock.Now()))
	if r := d.result(); r.Err != nil || r.Outcome.Phase != rotation.Done {
		t.Fatalf("after stage timeout: %+v", r)
	}
	if n := len(w.history()); n != 1 {
		t.Fatalf("%d rotations, want the staged one finished, no new one", n)
	}
	w.invariants(rotation.Done)
}

func TestSchedulerReloadAddsCredential(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	d := w.startDaemon()
	d.result()
	d.asleep()
	other := *w.cred
	other.Name = "other"
	other.Sinks = nil
	d.s.Reload([]*rotation.Credential{w.cred, &other})
	r := d.result()
	if r.Credential != "other" || r.Outcome.Phase != rotation.Done {
		t.Fatalf("after reload: %+v", r)
	}
	d.asleep()
	if n := len(w.history()); n != 1 {
		t.Fatalf("prod rotated again on reload: %d rotations", n)
	}
}

// watchedStore is a Store with a ChangeWatcher whose changes the test
// sends (etcdstore's watch is tested against real etcd).
type watchedStore struct {
	rotation.Store
	changes chan string
}

func (s watchedStore) WatchChanges(ctx context.Context, changed func(string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.changes:
			changed(c)
		}
	}
}

// Another process's rotation that died mid-way (its lock gone) is resumed
// as soon as the watch tells of its journal change, not at the
// credential's next wake time, 90 days on; a change the watch may have
// missed ("") makes the scheduler look at every credential.
func TestSchedulerLooksAgainWhenAnotherProcessChangesTheJournal(t *testing.T) {
	w := newSchedulerWorld(t)
	w.seed()
	changes := make(chan string)
	d := w.startDaemonWith(func(s *rotation.Scheduler) {
		s.Engine.Store = watchedStore{Store: s.Engine.Store, changes: changes}
	})
	if r := d.result(); r.Err != nil || r.Outcome.Phase != rotation.Done {
		t.Fatalf("first rotation: %+v", r)
	}
	d.asleep()
	send := func(c string) {
		t.Helper()
		select {
		case changes <- c:
		case <-time.After(10 * time.Second):
			t.Fatal("the scheduler does not watch the store's changes")
		}
	}

	for _, change := range []string{"prod", ""} {
		// The other process, an hour on: it journals deployed, then dies.
		d.clock.Advance(time.Hour)
		var left string
		crash := rotation.Hooks{AfterSave: func(r *rotation.Record) error {
			if r.Phase == rotation.Deployed {
				left = r.ID
				return errCrash
			}
			return nil
		}}
		if _, err := w.engine(crash).Rotate(context.Background(), w.cred, rotation.Options{Force: true}); !errors.Is(err, errCrash) {
			t.Fatalf("the other process's rotation: %v, want the crash", err)
		}
		d.asleep() // unseen: nothing tells the scheduler yet
		send("unknown-credential")
		d.asleep()
		send(change)
		r := d.result()
		if r.Err != nil || r.Outcome.RotationID != left || r.Outcome.Phase != rotation.Done {
			t.Fatalf("after the change %q: %+v; want rotation %s resumed to done", change, r, left)
		}
		d.asleep()
	}
	if n := len(w.history()); n != 3 {
		t.Errorf("%d rotations in the journal, want 3 (no rotation of the scheduler's own after the resumes)", n)
	}
}

package rotation_test

// Fleet scale (issue 12): many credentials in one scheduler, against an
// in-memory journal and an issuer that answers at once, so that what is
// measured is the scheduler's own work.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/rotation"
)

// memStore is an in-memory journal: no encryption, no fsync, one lock per
// credential within the process. It keeps copies, as a real store keeps
// rows, and tracks how many locks are held at once. The nil Store it
// embeds makes a method added to the interface later panic here until the
// fake implements it.
type memStore struct {
	rotation.Store
	mu      sync.Mutex
	hist    map[string][]*rotation.Record // newest first
	locks   map[string]bool
	held    int
	maxHeld int
}

func newMemStore() *memStore {
	return &memStore{hist: map[string][]*rotation.Record{}, locks: map[string]bool{}}
}

func copyRecord(r *rotation.Record) *rotation.Record {
	cp := *r
	cp.Receipts = slices.Clone(r.Receipts)
	cp.Left = slices.Clone(r.Left)
	cp.Untouched = slices.Clone(r.Untouched)
	cp.Transitions = slices.Clone(r.Transitions)
	return &cp
}

func (m *memStore) Save(_ context.Context, r *rotation.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist[r.Credential]
	if i := slices.IndexFunc(h, func(o *rotation.Record) bool { return o.ID == r.ID }); i >= 0 {
		h[i] = copyRecord(r)
		return nil
	}
	m.hist[r.Credential] = append([]*rotation.Record{copyRecord(r)}, h...)
	return nil
}

func (m *memStore) Get(_ context.Context, credential, id string) (*rotation.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.hist[credential] {
		if r.ID == id {
			return copyRecord(r), nil
		}
	}
	return nil, rotation.ErrNotFound
}

func (m *memStore) Unfinished(context.Context) ([]*rotation.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*rotation.Record
	for _, h := range m.hist {
		for _, r := range h {
			if !r.Phase.Terminal() {
				out = append(out, copyRecord(r))
			}
		}
	}
	slices.SortFunc(out, func(a, b *rotation.Record) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

func (m *memStore) History(_ context.Context, credential string, limit int) ([]*rotation.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist[credential]
	if limit > 0 && len(h) > limit {
		h = h[:limit]
	}
	out := make([]*rotation.Record, len(h))
	for i, r := range h {
		out[i] = copyRecord(r)
	}
	return out, nil
}

func (m *memStore) Recent(ctx context.Context, credential string) ([]*rotation.Record, error) {
	hist, err := m.History(ctx, credential, 0)
	return rotation.RecentOf(hist), err
}

func (m *memStore) RecentAll(ctx context.Context) (map[string][]*rotation.Record, error) {
	m.mu.Lock()
	var names []string
	for name := range m.hist {
		names = append(names, name)
	}
	m.mu.Unlock()
	out := map[string][]*rotation.Record{}
	for _, name := range names {
		hist, err := m.Recent(ctx, name)
		if err != nil {
			return nil, err
		}
		out[name] = hist
	}
	return out, nil
}

func (m *memStore) Lock(_ context.Context, credential string) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[credential] {
		return nil, rotation.ErrBusy
	}
	m.locks[credential] = true
	m.held++
	m.maxHeld = max(m.maxHeld, m.held)
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.locks, credential)
		m.held--
	}, nil
}

func (m *memStore) Close() error { return nil }

// mostLocked is the largest number of credentials locked at once so far:
// the rotations running at once.
func (m *memStore) mostLocked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxHeld
}

// countingStore counts the journal reads made through it.
type countingStore struct {
	rotation.Store
	reads atomic.Int64
}

func (s *countingStore) History(ctx context.Context, credential string, limit int) ([]*rotation.Record, error) {
	s.reads.Add(1)
	return s.Store.History(ctx, credential, limit)
}

func (s *countingStore) Recent(ctx context.Context, credential string) ([]*rotation.Record, error) {
	s.reads.Add(1)
	return s.Store.Recent(ctx, credential)
}

func (s *countingStore) RecentAll(ctx context.Context) (map[string][]*rotation.Record, error) {
	s.reads.Add(1)
	return s.Store.RecentAll(ctx)
}

func (s *countingStore) Get(ctx context.Context, credential, id string) (*rotation.Record, error) {
	s.reads.Add(1)
	return s.Store.Get(ctx, credential, id)
}

func (s *countingStore) Unfinished(ctx context.Context) ([]*rotation.Record, error) {
	s.reads.Add(1)
	return s.Store.Unfinished(ctx)
}

// quickIssuer mints, verifies and revokes at once. If gate is set, Create
// calls it first (with ctx, which it must honour).
type quickIssuer struct {
	n    atomic.Int64
	gate func(context.Context) error
}

func (q *quickIssuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	if q.gate != nil {
		if err := q.gate(ctx); err != nil {
			return issuers.Key{}, secret.Value{}, err
		}
	}
	id := fmt.Sprintf("k%d", q.n.Add(1))
	return issuers.Key{ID: id, Label: label, Status: issuers.Active}, secret.New("value-" + id), nil
}

func (q *quickIssuer) Find(context.Context, string) ([]issuers.Key, error) { return nil, nil }
func (q *quickIssuer) Get(_ context.Context, id string) (issuers.Key, error) {
	return issuers.Key{ID: id, Status: issuers.Active}, nil
}
func (q *quickIssuer) List(context.Context) ([]issuers.Key, error) { return nil, nil }
func (q *quickIssuer) Verify(context.Context, secret.Value) error  { return nil }
func (q *quickIssuer) Revoke(context.Context, string) error        { return nil }

// gateAt returns a Create gate that holds the first n callers until n are
// inside at once (or 10 s pass), then lets every caller through: it shows
// that n rotations do run together.
func gateAt(n int) func(context.Context) error {
	var mu sync.Mutex
	inside := 0
	open := make(chan struct{})
	return func(ctx context.Context) error {
		mu.Lock()
		inside++
		if inside == n {
			close(open)
		}
		mu.Unlock()
		select {
		case <-open:
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
}

var fleetStart = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// fleet is n credentials named c00000… in name order, on one plain fake
// clock: nothing happens until the test advances it.
type fleet struct {
	mem    *memStore
	store  *countingStore
	clock  *clockwork.FakeClock
	engine *rotation.Engine
	creds  []*rotation.Credential
	sched  *rotation.Scheduler
	stop   func()
}

const fleetEvery = 90 * 24 * time.Hour

// newFleet builds n credentials rotating every fleetEvery. If lastDone is
// set, credential i's journal holds one successful rotation finished at
// lastDone(i); otherwise rekey never rotated it, and it is due at once.
func newFleet(n int, iss issuers.Issuer, lastDone func(i int) time.Time) *fleet {
	f := &fleet{mem: newMemStore(), clock: clockwork.NewFakeClockAt(fleetStart)}
	f.store = &countingStore{Store: f.mem}
	f.engine = &rotation.Engine{Store: f.store, Clock: f.clock, Log: zap.NewNop()}
	for i := range n {
		c := &rotation.Credential{
			Name:          fmt.Sprintf("c%05d", i),
			Issuer:        iss,
			Label:         func(now time.Time, id string) string { return "fleet-" + id },
			RotateEvery:   fleetEvery,
			StageTimeout:  24 * time.Hour,
			VerifyTimeout: time.Minute,
			Monitor:       rotation.Monitor{Interval: 30 * time.Second, FailureThreshold: 1},
		}
		f.creds = append(f.creds, c)
		if lastDone != nil {
			at := lastDone(i)
			f.mem.Save(context.Background(), &rotation.Record{Credential: c.Name, ID: "seed", Phase: rotation.Done,
				NewKeyID: "seed-" + c.Name, NewValue: secret.New("seed-value-" + c.Name), StartedAt: at, UpdatedAt: at, FinishedAt: at})
		}
	}
	return f
}

// run starts a scheduler over the fleet and returns its results; it stops
// when f.stop is called or the test ends.
func (f *fleet) run(tb testing.TB, concurrency int, onSchedule func(rotation.Status)) <-chan rotation.Result {
	results := make(chan rotation.Result, len(f.creds)+100)
	s := &rotation.Scheduler{Engine: f.engine, Concurrency: concurrency, OnSchedule: onSchedule,
		OnResult: func(r rotation.Result) { results <- r }}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Run(ctx, f.creds) }()
	f.sched = s
	f.stop = func() { cancel(); <-stopped }
	tb.Cleanup(f.stop)
	return results
}

// asleep waits until the scheduler's timer is set.
func (f *fleet) asleep(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.clock.BlockUntilContext(ctx, 1); err != nil {
		tb.Fatal("the scheduler never went to sleep")
	}
}

func nextResult(tb testing.TB, results <-chan rotation.Result) rotation.Result {
	tb.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(30 * time.Second):
		tb.Fatal("no rotation finished")
	}
	return rotation.Result{}
}

// One rotation falling due and finishing costs the same few journal reads
// among 1,000 credentials as among 10: the scheduler re-reads only the
// credential the event concerns.
func TestSchedulerReadsOnlyTheJournalAnEventConcerns(t *testing.T) {
	reads := map[int]int64{}
	for _, n := range []int{10, 1000} {
		// Credential i was last rotated so that it falls due (i+1) minutes
		// from now: c00000 first, alone.
		f := newFleet(n, &quickIssuer{}, func(i int) time.Time {
			return fleetStart.Add(-fleetEvery + time.Duration(i+1)*time.Minute)
		})
		var mu sync.Mutex
		var after chan struct{} // closed on c00000's status after its rotation
		results := f.run(t, 2, func(s rotation.Status) {
			mu.Lock()
			defer mu.Unlock()
			if after != nil && s.Credential == "c00000" && !s.Running {
				close(after)
				after = nil
			}
		})
		f.asleep(t)
		if got := f.store.reads.Load(); got < int64(n) {
			t.Fatalf("n=%d: %d journal reads at start, want one per credential", n, got)
		}
		f.store.reads.Store(0)
		finished := make(chan struct{})
		mu.Lock()
		after = finished
		mu.Unlock()

		f.clock.Advance(time.Minute)
		if r := nextResult(t, results); r.Credential != "c00000" || r.Err != nil || r.Outcome.Phase != rotation.Done {
			t.Fatalf("n=%d: %+v, want c00000 done", n, r)
		}
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Fatalf("n=%d: c00000's status never reported after its rotation", n)
		}
		f.asleep(t)
		reads[n] = f.store.reads.Load()
		select {
		case r := <-results:
			t.Fatalf("n=%d: unexpected rotation %+v", n, r)
		default:
		}
	}
	t.Logf("journal reads for one rotation: %d among 10 credentials, %d among 1000", reads[10], reads[1000])
	// The wake-up, the rotation's own read, the status after it.
	if reads[1000] != reads[10] || reads[1000] > 4 {
		t.Fatalf("one rotation cost %d journal reads among 10 credentials and %d among 1000, want the same few", reads[10], reads[1000])
	}
}

// A reload reads the journals of the credentials it adds or whose
// schedule it changes, and no other; a credential it drops is not started.
func TestSchedulerReloadReadsOnlyWhatChanged(t *testing.T) {
	const n = 100
	f := newFleet(n, &quickIssuer{}, func(i int) time.Time {
		return fleetStart.Add(-fleetEvery + time.Duration(i+1)*time.Minute)
	})
	results := f.run(t, 2, nil)
	f.asleep(t)
	f.store.reads.Store(0)

	// As cmd/rekey reloads: every credential built anew. c00000 is gone,
	// c00001 now rotates daily (so it is due), the rest are unchanged.
	var next []*rotation.Credential
	for _, c := range f.creds[1:] {
		cp := *c
		if c.Name == "c00001" {
			cp.RotateEvery = 24 * time.Hour
		}
		next = append(next, &cp)
	}
	f.sched.Reload(next)
	if r := nextResult(t, results); r.Credential != "c00001" || r.Outcome.Phase != rotation.Done {
		t.Fatalf("after reload: %+v, want c00001 rotated", r)
	}
	f.asleep(t)
	// Its status, its rotation's own read, its status after.
	if got := f.store.reads.Load(); got != 3 {
		t.Errorf("%d journal reads for a reload changing one credential, want 3", got)
	}

	// c00000's due time passes, then c00002's: only c00002 rotates.
	f.clock.Advance(time.Minute)
	f.asleep(t)
	f.clock.Advance(fleetStart.Add(3 * time.Minute).Sub(f.clock.Now()))
	if r := nextResult(t, results); r.Credential != "c00002" || r.Outcome.Phase != rotation.Done {
		t.Fatalf("%+v, want c00002 rotated", r)
	}
	f.stop() // waits for any rotation in flight
	select {
	case r := <-results:
		t.Fatalf("unexpected rotation %+v", r)
	default:
	}
	hist, err := f.mem.History(context.Background(), "c00000", 0)
	if err != nil || len(hist) != 1 {
		t.Fatalf("c00000 has %d records after it was dropped (%v), want its seed only", len(hist), err)
	}
}

// A thousand credentials due at once all rotate, eight at a time.
func TestSchedulerRunsAFleetAtMostConcurrencyAtATime(t *testing.T) {
	const n, concurrency = 1000, 8
	f := newFleet(n, &quickIssuer{gate: gateAt(concurrency)}, nil)
	results := f.run(t, concurrency, nil)
	seen := map[string]bool{}
	for range n {
		r := nextResult(t, results)
		if r.Err != nil || r.Outcome.Phase != rotation.Done {
			t.Fatalf("%s: %+v", r.Credential, r)
		}
		if seen[r.Credential] {
			t.Fatalf("%s rotated twice", r.Credential)
		}
		seen[r.Credential] = true
	}
	if got := f.mem.mostLocked(); got != concurrency {
		t.Fatalf("at most %d rotations ran at once, want %d", got, concurrency)
	}
	f.asleep(t)
	select {
	case r := <-results:
		t.Fatalf("unexpected rotation %+v", r)
	default:
	}
}

// RunAll rotates with limit workers, not one goroutine per credential, and
// returns the results in input order.
func TestRunAllUsesAFixedPoolOfWorkers(t *testing.T) {
	const n, limit = 1000, 4
	before := runtime.NumGoroutine()
	var peak atomic.Int64
	gate := gateAt(limit)
	f := newFleet(n, &quickIssuer{gate: func(ctx context.Context) error {
		err := gate(ctx)
		if g := int64(runtime.NumGoroutine()); g > peak.Load() {
			peak.Store(g)
		}
		return err
	}}, nil)
	slices.Reverse(f.creds) // not in name order: the order given is kept
	results := f.engine.RunAll(context.Background(), f.creds, limit)
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for i, r := range results {
		if r.Credential != f.creds[i].Name || r.Err != nil || r.Outcome.Phase != rotation.Done {
			t.Fatalf("result %d: %+v, want %s done", i, r, f.creds[i].Name)
		}
	}
	if got := f.mem.mostLocked(); got != limit {
		t.Errorf("at most %d rotations ran at once, want %d", got, limit)
	}
	if extra := peak.Load() - int64(before); extra > 2*limit {
		t.Errorf("%d goroutines beyond the test's own while rotating with limit %d", extra, limit)
	}
}

// Cancelled, RunAll interrupts the rotations in flight and starts no other.
func TestRunAllInterrupted(t *testing.T) {
	const n, limit = 100, 4
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	f := newFleet(n, &quickIssuer{gate: func(ctx context.Context) error {
		if calls.Add(1) == limit {
			cancel()
		}
		<-ctx.Done()
		return ctx.Err()
	}}, nil)
	results := f.engine.RunAll(ctx, f.creds, limit)
	for i, r := range results {
		if r.Credential != f.creds[i].Name || r.Err == nil {
			t.Fatalf("result %d: %+v, want %s interrupted", i, r, f.creds[i].Name)
		}
	}
	if got := calls.Load(); got > limit {
		t.Errorf("%d mints after the cancel, want at most the %d in flight", got, limit)
	}
}

// BenchmarkSchedulerEvents measures one event of a running scheduler: a
// credential's wake time comes, it rotates (on the in-memory journal and
// the quick issuer), and the scheduler takes the result. The cost per
// event should not grow with the number of credentials. Each credential
// rotates at most once per fleet (a new fleet is built, off the clock,
// every n events), so that its journal is as long at either n: reading a
// longer history is the journal's cost, not the scheduler's.
func BenchmarkSchedulerEvents(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("credentials=%d", n), func(b *testing.B) {
			// Credential i falls due at (i+1) steps from now: each step, one.
			step := fleetEvery / time.Duration(n)
			var f *fleet
			var results <-chan rotation.Result
			reads := int64(0)
			b.ResetTimer()
			for i := range b.N {
				if i%n == 0 {
					b.StopTimer()
					if f != nil {
						f.stop()
						reads += f.store.reads.Load()
					}
					f = newFleet(n, &quickIssuer{}, func(i int) time.Time {
						return fleetStart.Add(-fleetEvery + time.Duration(i+1)*step)
					})
					results = f.run(b, 8, nil)
					f.asleep(b)
					f.store.reads.Store(0)
					b.StartTimer()
				}
				f.clock.Advance(step)
				if r := nextResult(b, results); r.Err != nil || r.Outcome.Phase != rotation.Done {
					b.Fatalf("%+v", r)
				}
			}
			b.StopTimer()
			f.stop()
			reads += f.store.reads.Load()
			b.ReportMetric(float64(reads)/float64(b.N), "reads/op")
		})
	}
}

// OnIdle marks the ends of bursts: once at start (nothing due) and once
// when the last rotation of a burst finishes, never while one runs or
// waits for a slot.
func TestSchedulerOnIdleEndsEachBurst(t *testing.T) {
	const n = 20
	// Every credential falls due an hour from now, at once.
	f := newFleet(n, &quickIssuer{}, func(int) time.Time { return fleetStart.Add(-fleetEvery + time.Hour) })
	var finished atomic.Int32
	idle := make(chan int32, 10) // rotations finished at each OnIdle
	s := &rotation.Scheduler{Engine: f.engine, Concurrency: 3,
		OnResult: func(rotation.Result) { finished.Add(1) },
		OnIdle:   func() { idle <- finished.Load() }}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Run(ctx, f.creds) }()
	stop := sync.OnceFunc(func() { cancel(); <-stopped })
	defer stop()
	next := func() int32 {
		t.Helper()
		select {
		case k := <-idle:
			return k
		case <-time.After(30 * time.Second):
			t.Fatal("OnIdle was not called")
		}
		return 0
	}
	if k := next(); k != 0 {
		t.Fatalf("first OnIdle after %d rotations, want 0 (at start)", k)
	}
	f.asleep(t)
	f.clock.Advance(time.Hour)
	if k := next(); k != n {
		t.Fatalf("OnIdle after %d of the burst's %d rotations, want after the last", k, n)
	}
	stop()
	if len(idle) != 0 {
		t.Errorf("OnIdle called again after the burst (%d more)", len(idle))
	}
}

// lockCounter counts the locks taken through it.
type lockCounter struct {
	rotation.Store
	locks atomic.Int64
}

func (s *lockCounter) Lock(ctx context.Context, credential string) (func(), error) {
	s.locks.Add(1)
	return s.Store.Lock(ctx, credential)
}

// A run with nothing due answers every credential from one batch read of
// the journal: no lock and no read per credential. What is due is still
// rotated under its lock.
func TestRunAllNothingDueTakesNoLock(t *testing.T) {
	const n = 200
	// c00000 is due (its last rotation is older than fleetEvery); the rest
	// rotated an hour ago.
	f := newFleet(n, &quickIssuer{}, func(i int) time.Time {
		if i == 0 {
			return fleetStart.Add(-fleetEvery - time.Hour)
		}
		return fleetStart.Add(-time.Hour)
	})
	lc := &lockCounter{Store: f.store}
	f.engine.Store = lc
	results := f.engine.RunAll(context.Background(), f.creds, 8)
	if got := results[0].Outcome.Phase; got != rotation.Done {
		t.Fatalf("c00000 (due): %s (%v %v)", got, results[0].Outcome.Err, results[0].Err)
	}
	for _, r := range results[1:] {
		if r.Err != nil || r.Outcome.Skipped == "" || r.Outcome.DueAt.IsZero() {
			t.Fatalf("%s (not due): %+v, want skipped with its due time", r.Credential, r)
		}
	}
	if l, reads := lc.locks.Load(), f.store.reads.Load(); l != 1 || reads > 10 {
		t.Errorf("%d locks and %d journal reads for 1 due credential among %d, want 1 lock and a few reads", l, reads, n)
	}
}

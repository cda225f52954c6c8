// Package storetest is the rotation.Store contract suite, run against every
// journal back-end (rotation/sqlite, rotation/etcdstore). It covers what
// every back-end promises alike: records round-trip whole, the read methods'
// order and limits, Recent and RecentAll, two Stores on one journal (as two
// processes), and the lock. What only one back-end can break or check
// (files and modes, schema upgrades, tampering through a raw client, lease
// loss) stays in that back-end's own tests.
//
// Every Save here is made holding the credential's lock through the same
// Store, as the engine does: a fenced Store refuses anything else.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
)

// Test values: distinctive, so a search of stored bytes cannot match by
// accident.
const (
	OldSecret = "av_live_OLDSECRETVALUE_3f9a1c2e7b"
	NewSecret = "av_live_NEWSECRETVALUE_8d4e6b0a1f"
)

// Backend opens Stores on one journal: each call opens another Store on the
// same journal, as another process would. The Backend closes what it opens
// when the test ends.
type Backend func(t *testing.T) rotation.Store

// Run runs the contract suite. newBackend returns a Backend on a fresh,
// empty journal; it is called once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	open := func(t *testing.T) rotation.Store { return newBackend(t)(t) }
	t.Run("RoundTripEveryField", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("TimesInOtherZonesAndZeroTimes", func(t *testing.T) { testTimes(t, open(t)) })
	t.Run("GetNotFound", func(t *testing.T) { testGetNotFound(t, open(t)) })
	t.Run("SaveRejectsIncompleteRecord", func(t *testing.T) { testSaveRejects(t, open(t)) })
	t.Run("UnfinishedAndHistoryOrder", func(t *testing.T) { testOrder(t, open(t)) })
	t.Run("HistoryLimit", func(t *testing.T) { testHistoryLimit(t, open(t)) })
	t.Run("Recent", func(t *testing.T) { testRecent(t, newBackend(t)) })
	t.Run("SecondStoreSeesWrites", func(t *testing.T) { testSecondStore(t, newBackend(t)) })
	t.Run("ConcurrentSaves", func(t *testing.T) { testConcurrentSaves(t, newBackend(t)) })
	t.Run("Lock", func(t *testing.T) { testLock(t, newBackend(t)) })
	t.Run("LockRace", func(t *testing.T) { testLockRace(t, newBackend(t)) })
	t.Run("LockCanceledContext", func(t *testing.T) { testLockCanceled(t, open(t)) })
}

// Save saves r holding its credential's lock through s, as the engine does.
func Save(t *testing.T, s rotation.Store, r *rotation.Record) {
	t.Helper()
	if err := SaveLocked(context.Background(), s, r); err != nil {
		t.Fatalf("Save %s/%s: %v", r.Credential, r.ID, err)
	}
}

// SaveLocked takes r's credential's lock on s, saves r and unlocks.
func SaveLocked(ctx context.Context, s rotation.Store, r *rotation.Record) error {
	unlock, err := s.Lock(ctx, r.Credential)
	if err != nil {
		return err
	}
	defer unlock()
	return s.Save(ctx, r)
}

// FullRecord sets every field of a Record.
func FullRecord() *rotation.Record {
	t0 := time.Date(2026, 3, 2, 3, 0, 0, 123456789, time.UTC)
	return &rotation.Record{
		Credential: "production-api",
		ID:         "r-01",
		Phase:      rotation.Monitoring,
		Label:      "production-api-2026-03-02-r01",
		OldKeyID:   "key_old",
		OldValue:   secret.New(OldSecret),
		NewKeyID:   "key_new",
		NewValue:   secret.New(NewSecret),
		Receipts: []sinks.Receipt{
			{Sink: "file:/etc/crm/app.env#KEY", RotationID: "r-01", Previous: "sha256:abc", At: t0.Add(time.Second)},
			{Sink: "aws-secretsmanager:prod/crm", RotationID: "r-01", Version: "v2", Previous: "v1", Created: true, At: t0.Add(2 * time.Second)},
		},
		Staged:  true,
		Forced:  true,
		Setup:   "issuer=apexverify-prod;sinks=file:/etc/crm/app.env#KEY,aws-secretsmanager:prod/crm",
		Kept:    true,
		Reverts: 2,
		Left: []rotation.LeftKey{
			{KeyID: "key_older", RotationID: "r-00", Reason: "a sink still held it", HeldBy: []string{"file:/etc/crm/app.env#KEY"}, At: t0.Add(-time.Hour)},
			{KeyID: "key_oldest", RotationID: "r-000", Reason: "rollback restored a dead key", At: t0.Add(-2 * time.Hour)},
		},
		Untouched: []string{"vault-kv:secret/crm"},
		Error:     "health check https://crm/healthz: 503",
		Transitions: []rotation.Transition{
			{Phase: rotation.Planned, At: t0},
			{Phase: rotation.Minted, At: t0.Add(time.Second)},
			{Phase: rotation.Verified, At: t0.Add(2 * time.Second), Error: "retry 1: 401"},
		},
		StartedAt:  t0,
		UpdatedAt:  t0.Add(3 * time.Second),
		FinishedAt: t0.Add(4 * time.Second),
	}
}

// IDs names records as credential/ID.
func IDs(rs []*rotation.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Credential+"/"+r.ID)
	}
	return out
}

// ThreeRotations saves production-api r-01 (done), r-02 (monitoring), r-03
// (done), an hour apart, and other r-09 (deployed), each a FullRecord, and
// returns them by credential/ID.
func ThreeRotations(t *testing.T, s rotation.Store) map[string]*rotation.Record {
	t.Helper()
	out := map[string]*rotation.Record{}
	for i, tc := range []struct {
		cred, id string
		phase    rotation.Phase
	}{
		{"production-api", "r-01", rotation.Done},
		{"production-api", "r-02", rotation.Monitoring},
		{"production-api", "r-03", rotation.Done},
		{"other", "r-09", rotation.Deployed},
	} {
		r := FullRecord()
		r.Credential, r.ID, r.Phase = tc.cred, tc.id, tc.phase
		r.StartedAt = r.StartedAt.Add(time.Duration(i) * time.Hour)
		for j := range r.Receipts {
			r.Receipts[j].RotationID = tc.id
		}
		Save(t, s, r)
		out[tc.cred+"/"+tc.id] = r
	}
	return out
}

// Readable returns the credential/IDs of rs's readable and unreadable
// records, and fails t if a readable one differs from what was saved.
func Readable(t *testing.T, rs []*rotation.Record, saved map[string]*rotation.Record) (ids, unreadable []string) {
	t.Helper()
	for _, r := range rs {
		key := r.Credential + "/" + r.ID
		if r.Unreadable != "" {
			unreadable = append(unreadable, key)
			continue
		}
		ids = append(ids, key)
		if !reflect.DeepEqual(r, saved[key]) {
			t.Errorf("%s read back differs:\n got %+v\nwant %+v", key, r, saved[key])
		}
	}
	return ids, unreadable
}

func testRoundTrip(t *testing.T, s rotation.Store) {
	ctx := context.Background()
	want := FullRecord()
	// FullRecord must set every field a Store keeps, so that a field added
	// to Record and forgotten by a back-end fails this test.
	v := reflect.ValueOf(want).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.IsExported() && f.Name != "Unreadable" && v.Field(i).IsZero() {
			t.Errorf("FullRecord leaves Record.%s unset: set it, so that every Store is checked to keep it", f.Name)
		}
	}
	Save(t, s, want)
	got, err := s.Get(ctx, want.Credential, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.OldValue.Equal(want.OldValue) || !got.NewValue.Equal(want.NewValue) {
		t.Errorf("values did not round-trip (fingerprints old %s/%s new %s/%s)",
			got.OldValue.Fingerprint(), want.OldValue.Fingerprint(), got.NewValue.Fingerprint(), want.NewValue.Fingerprint())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Upsert replaces every field, including clearing ones.
	want.Phase = rotation.Done
	want.Receipts = nil
	want.Error = ""
	want.Staged = false
	want.OldValue = secret.Value{}
	Save(t, s, want)
	got, err = s.Get(ctx, want.Credential, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after upsert:\n got %+v\nwant %+v", got, want)
	}
	// A record saved again with another start time moves in the order and
	// is not left behind at its old place.
	want.StartedAt = want.StartedAt.Add(-time.Hour)
	Save(t, s, want)
	h, err := s.History(ctx, want.Credential, 0)
	if err != nil || len(h) != 1 || !reflect.DeepEqual(h[0], want) {
		t.Errorf("History after a new start time = %v, %v; want the one record as saved", IDs(h), err)
	}
}

func testTimes(t *testing.T, s rotation.Store) {
	ctx := context.Background()
	loc := time.FixedZone("X", 5*3600+1800)
	started := time.Now().In(loc) // with a monotonic reading
	r := &rotation.Record{Credential: "c", ID: "1", Phase: rotation.Planned, StartedAt: started,
		Transitions: []rotation.Transition{{Phase: rotation.Planned, At: started}}}
	Save(t, s, r)
	got, err := s.Get(ctx, "c", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(started) || !got.Transitions[0].At.Equal(started) {
		t.Errorf("times: got %v / %v, want %v", got.StartedAt, got.Transitions[0].At, started)
	}
	if !got.UpdatedAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("zero times came back as %v, %v", got.UpdatedAt, got.FinishedAt)
	}
	if !got.OldValue.IsZero() || !got.NewValue.IsZero() {
		t.Error("empty values came back non-empty")
	}
}

func testGetNotFound(t *testing.T, s rotation.Store) {
	_, err := s.Get(context.Background(), "nope", "r-1")
	if !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
}

func testSaveRejects(t *testing.T, s rotation.Store) {
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, r := range []*rotation.Record{nil, {ID: "1"}, {Credential: "c"}, {Credential: "c", ID: "1", Unreadable: "edited"}} {
		if err := s.Save(ctx, r); err == nil {
			t.Errorf("Save(%+v) succeeded", r)
		}
	}
}

func testOrder(t *testing.T, s rotation.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		cred, id string
		phase    rotation.Phase
		startMin int
	}{
		{"a", "3", rotation.Monitoring, 30},
		{"a", "1", rotation.Done, 10},
		{"b", "1", rotation.Planned, 5},
		{"a", "2", rotation.RolledBack, 20},
		{"b", "2", rotation.Failed, 25},
		{"c", "1", rotation.RollingBack, 1},
		{"a", "5", rotation.Draining, 40},
		{"a", "4", rotation.Done, 40}, // same start as a/5: ID breaks the tie
	} {
		Save(t, s, &rotation.Record{Credential: r.cred, ID: r.id, Phase: r.phase,
			StartedAt: t0.Add(time.Duration(r.startMin) * time.Minute), NewValue: secret.New(NewSecret)})
	}
	// A record without a start time is the oldest.
	Save(t, s, &rotation.Record{Credential: "a", ID: "0", Phase: rotation.Done})

	un, err := s.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Only a credential's newest record is in flight: a/3 and b/1 were
	// abandoned by newer rotations.
	if got, want := IDs(un), []string{"c/1", "a/5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Unfinished = %v, want %v", got, want)
	}
	if len(un) > 0 && !un[0].NewValue.Equal(secret.New(NewSecret)) {
		t.Error("Unfinished did not decrypt values")
	}

	h, err := s.History(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := IDs(h), []string{"a/5", "a/4", "a/3", "a/2", "a/1", "a/0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("History(a, 0) = %v, want %v", got, want)
	}
	h, err = s.History(ctx, "a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := IDs(h), []string{"a/5", "a/4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("History(a, 2) = %v, want %v", got, want)
	}
	h, err = s.History(ctx, "nobody", 0)
	if err != nil || len(h) != 0 {
		t.Errorf("History(nobody) = %v, %v", IDs(h), err)
	}
	// A credential whose name another one's starts with keeps its own
	// history.
	Save(t, s, &rotation.Record{Credential: "a/b", ID: "9", Phase: rotation.Planned, StartedAt: t0})
	if h, err := s.History(ctx, "a", 0); err != nil || len(h) != 6 {
		t.Errorf("History(a) after a/b's save = %v, %v", IDs(h), err)
	}
}

// History pages through a long history: every limit returns the newest
// limit records, in order.
func testHistoryLimit(t *testing.T, s rotation.Store) {
	ctx := context.Background()
	const n = 130
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range n {
		id := fmt.Sprintf("r-%03d", i)
		Save(t, s, &rotation.Record{Credential: "long", ID: id, Phase: rotation.RolledBack, StartedAt: t0.Add(time.Duration(i) * time.Minute)})
		want = append([]string{"long/" + id}, want...)
	}
	for _, limit := range []int{1, 7, 64, 65, n, n + 5, 0} {
		h, err := s.History(ctx, "long", limit)
		if err != nil {
			t.Fatal(err)
		}
		w := want
		if limit > 0 && limit < n {
			w = want[:limit]
		}
		if !reflect.DeepEqual(IDs(h), w) {
			t.Errorf("History(%d) = %d records %v…, want %d", limit, len(h), IDs(h)[:min(3, len(h))], len(w))
		}
	}
	r, err := s.Recent(ctx, "long")
	if err != nil || len(r) != n {
		t.Errorf("Recent of a history with no success = %d records, %v; want all %d", len(r), err, n)
	}
}

// RecentWorld saves, oldest first, a history of "prod" whose current key
// was put in place by d-1 and kept by f-1 after it, with failures and a
// rotation in flight since:
//
//	d-0 done, d-1 done, f-1 failed (kept), rb-1 rolled back, rb-2 rolled back, m-1 monitoring
//
// and "new", never rotated successfully (rb-1, rb-2), and "fresh" (one done).
func RecentWorld(t *testing.T, s rotation.Store) map[string]*rotation.Record {
	t.Helper()
	saved := map[string]*rotation.Record{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	for _, tc := range []struct {
		cred, id string
		phase    rotation.Phase
		kept     bool
	}{
		{"prod", "d-0", rotation.Done, false},
		{"prod", "d-1", rotation.Done, false},
		{"prod", "f-1", rotation.Failed, true},
		{"new", "rb-1", rotation.RolledBack, false},
		{"prod", "rb-1", rotation.RolledBack, false},
		{"new", "rb-2", rotation.RolledBack, false},
		{"prod", "rb-2", rotation.RolledBack, false},
		{"fresh", "d-0", rotation.Done, false},
		{"prod", "m-1", rotation.Monitoring, false},
	} {
		i++
		r := &rotation.Record{Credential: tc.cred, ID: tc.id, Phase: tc.phase, Kept: tc.kept,
			NewKeyID: "key_" + tc.id, NewValue: secret.New(NewSecret), OldValue: secret.New(OldSecret),
			StartedAt: t0.Add(time.Duration(i) * time.Hour)}
		if tc.phase.Terminal() {
			r.FinishedAt = r.StartedAt.Add(time.Minute)
		}
		Save(t, s, r)
		saved[tc.cred+"/"+tc.id] = r
	}
	return saved
}

// CheckRecent checks Recent and RecentAll of every credential in creds
// against each other and against RecentOf(History), and returns the
// readable and unreadable records of the first one's Recent.
func CheckRecent(t *testing.T, s rotation.Store, saved map[string]*rotation.Record, creds ...string) (ok, bad []string) {
	t.Helper()
	ctx := context.Background()
	all, err := s.RecentAll(ctx)
	if err != nil {
		t.Fatalf("RecentAll: %v", err)
	}
	if len(all) != len(creds) {
		t.Errorf("RecentAll has %d credentials, want %d", len(all), len(creds))
	}
	for _, c := range creds {
		r, err := s.Recent(ctx, c)
		if err != nil {
			t.Fatalf("Recent(%s): %v", c, err)
		}
		h, err := s.History(ctx, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := IDs(r), IDs(rotation.RecentOf(h)); !reflect.DeepEqual(got, want) {
			t.Errorf("Recent(%s) = %v, want RecentOf(History) %v", c, got, want)
		}
		if !reflect.DeepEqual(all[c], r) {
			t.Errorf("RecentAll[%s] = %v, want Recent %v", c, IDs(all[c]), IDs(r))
		}
		Readable(t, r, saved)
	}
	r, _ := s.Recent(ctx, creds[0])
	return Readable(t, r, saved)
}

func testRecent(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b(t)
	saved := RecentWorld(t, s)
	// The current key is f-1's (kept), behind two failures and the
	// rotation in flight; the last success is d-1, so d-0 is not read.
	ok, bad := CheckRecent(t, s, saved, "prod", "new", "fresh")
	if want := []string{"prod/m-1", "prod/rb-2", "prod/rb-1", "prod/f-1", "prod/d-1"}; !reflect.DeepEqual(ok, want) || bad != nil {
		t.Errorf("Recent(prod) = %v, unreadable %v; want %v", ok, bad, want)
	}
	for c, want := range map[string][]string{"new": {"new/rb-2", "new/rb-1"}, "fresh": {"fresh/d-0"}, "nobody": nil} {
		r, err := s.Recent(ctx, c)
		if err != nil || !reflect.DeepEqual(IDs(r), want) {
			t.Errorf("Recent(%s) = %v, %v; want %v", c, IDs(r), err, want)
		}
	}
	// A done record saved again in another phase no longer ends Recent.
	d1 := *saved["prod/d-1"]
	d1.Phase = rotation.Failed
	Save(t, s, &d1)
	saved["prod/d-1"] = &d1
	if ok, _ := CheckRecent(t, s, saved, "prod", "new", "fresh"); len(ok) != 6 {
		t.Errorf("Recent(prod) after d-1 is no longer done = %v, want down to d-0", ok)
	}
}

func testSecondStore(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b(t)
	want := FullRecord()
	Save(t, s, want)
	got, err := b(t).Get(ctx, want.Credential, want.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("a second Store reads %+v, %v; want the record saved", got, err)
	}
}

func testConcurrentSaves(t *testing.T, b Backend) {
	ctx := context.Background()
	// Two stores on one journal stand in for two processes.
	stores := []rotation.Store{b(t), b(t)}
	const writers, each = 6, 10
	var wg sync.WaitGroup
	var shared sync.Mutex // the writers of "shared" take turns; its lock excludes the rest
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%len(stores)]
			for i := range each {
				r := &rotation.Record{Credential: fmt.Sprintf("cred-%d", w), ID: fmt.Sprintf("%03d", i),
					Phase: rotation.Planned, StartedAt: time.Unix(int64(i), 0), NewValue: secret.New(NewSecret)}
				if err := SaveLocked(ctx, s, r); err != nil {
					errs <- err
					return
				}
				// Every writer also updates one shared record.
				rec := &rotation.Record{Credential: "shared", ID: "1", Phase: rotation.Minted,
					Label: fmt.Sprintf("w%d-%d", w, i), NewValue: secret.New(NewSecret)}
				shared.Lock()
				err := SaveLocked(ctx, s, rec)
				shared.Unlock()
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Get(ctx, "shared", "1"); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		h, err := stores[0].History(ctx, fmt.Sprintf("cred-%d", w), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != each {
			t.Errorf("cred-%d: %d records, want %d", w, len(h), each)
		}
	}
	un, err := stores[1].Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != writers+1 { // each credential's newest record
		t.Errorf("Unfinished: %d records, want %d", len(un), writers+1)
	}
}

func testLock(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b(t)
	unlockA, err := s.Lock(ctx, "a")
	if err != nil {
		t.Fatalf("Lock a: %v", err)
	}
	if _, err := s.Lock(ctx, "a"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("second Lock a: %v, want ErrBusy", err)
	}
	// Another Store on the same journal (another process) is excluded too.
	other := b(t)
	if _, err := other.Lock(ctx, "a"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock a from a second Store: %v, want ErrBusy", err)
	}
	// Other credentials are independent.
	unlockB, err := other.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("Lock b: %v", err)
	}
	defer unlockB()

	unlockA()
	unlockA() // idempotent
	unlockA2, err := other.Lock(ctx, "a")
	if err != nil {
		t.Fatalf("Lock a after unlock: %v", err)
	}
	if _, err := s.Lock(ctx, "a"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock a while re-held: %v, want ErrBusy", err)
	}
	unlockA2()
	// A stale unlock from the first holder must not release the new holder.
	unlockA3, err := s.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA3()
	unlockA()
	if _, err := other.Lock(ctx, "a"); !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("stale unlock released the lock: %v", err)
	}
}

// Many callers on two Stores race for one lock: exactly one wins, every
// other gets ErrBusy.
func testLockRace(t *testing.T, b Backend) {
	ctx := context.Background()
	stores := []rotation.Store{b(t), b(t)}
	const racers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins, busy int
	var unlocks []func()
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			unlock, err := stores[i%2].Lock(ctx, "race")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				unlocks = append(unlocks, unlock)
			case errors.Is(err, rotation.ErrBusy):
				busy++
			default:
				t.Errorf("Lock: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, u := range unlocks {
		u()
	}
	if wins != 1 || busy != racers-1 {
		t.Errorf("%d racers won the lock and %d were busy, want 1 and %d", wins, busy, racers-1)
	}
}

func testLockCanceled(t *testing.T, s rotation.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Lock(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with canceled context: %v", err)
	}
}

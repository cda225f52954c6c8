package rotation_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/sqlite"
)

// rowCountingStore counts the records the journal's read methods return.
type rowCountingStore struct {
	rotation.Store
	read atomic.Int64
}

func (s *rowCountingStore) History(ctx context.Context, name string, limit int) ([]*rotation.Record, error) {
	h, err := s.Store.History(ctx, name, limit)
	s.read.Add(int64(len(h)))
	return h, err
}

func (s *rowCountingStore) Recent(ctx context.Context, name string) ([]*rotation.Record, error) {
	h, err := s.Store.Recent(ctx, name)
	s.read.Add(int64(len(h)))
	return h, err
}

func (s *rowCountingStore) RecentAll(ctx context.Context) (map[string][]*rotation.Record, error) {
	all, err := s.Store.RecentAll(ctx)
	for _, h := range all {
		s.read.Add(int64(len(h)))
	}
	return all, err
}

// The engine reads a credential's records since its last success, not its
// whole history: with 300 old rotations behind the last success, deciding
// reads the five records that matter, and decides as it did from the whole
// history (the current key kept by a failed rotation, the failures since
// the last success, the rotation in flight).
func TestStateReadsNoOldHistory(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, sqlite.KeySize)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := t0
	save := func(id string, phase rotation.Phase, kept bool) *rotation.Record {
		t.Helper()
		at = at.Add(time.Hour)
		r := &rotation.Record{Credential: "prod", ID: id, Phase: phase, Kept: kept, NewKeyID: "key_" + id,
			NewValue: secret.New("v_" + id), StartedAt: at}
		if phase.Terminal() {
			r.FinishedAt = at.Add(time.Minute)
		}
		if err := st.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range 300 {
		save(fmt.Sprintf("old-%03d", i), rotation.Done, false)
	}
	last := save("last", rotation.Done, false)
	save("kept", rotation.Failed, true)
	save("rb", rotation.RolledBack, false)

	cs := &rowCountingStore{Store: st}
	clock := clockwork.NewFakeClockAt(at.Add(2 * time.Minute))
	e := &rotation.Engine{Store: cs, Clock: clock, Log: zap.NewNop()}
	c := &rotation.Credential{Name: "prod", RotateEvery: 30 * 24 * time.Hour}

	due, err := e.Due(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !due.LastRotated.Equal(last.FinishedAt) || due.Failures != 2 || due.Due {
		t.Errorf("Due = %+v, want last rotated %v, 2 failures, not due", due, last.FinishedAt)
	}
	in, err := e.Inspect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if in.CurrentKeyID != "key_kept" || in.Unfinished != nil {
		t.Errorf("Inspect = current %q, unfinished %v; want key_kept and none", in.CurrentKeyID, in.Unfinished)
	}
	out, err := e.Rotate(ctx, c, rotation.Options{})
	if err != nil || out.Skipped == "" {
		t.Errorf("Rotate = %+v, %v; want skipped, not due", out, err)
	}
	if n := cs.read.Load(); n != 3*3 {
		t.Errorf("Due, Inspect and Rotate read %d records, want 3 each", n)
	}

	// A rotation in flight is found, and read alone with those.
	save("m", rotation.Monitoring, false)
	cs.read.Store(0)
	in, err = e.Inspect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if in.Unfinished == nil || in.Unfinished.ID != "m" || cs.read.Load() != 4 {
		t.Errorf("Inspect: unfinished %v after reading %d records, want m after 4", in.Unfinished, cs.read.Load())
	}
	// Due from RecentAll decides alike.
	all, err := cs.RecentAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := e.Due(ctx, c)
	if d2 := e.DueOf(c, all["prod"]); d1 != d2 {
		t.Errorf("DueOf(RecentAll) = %+v, Due = %+v", d2, d1)
	}
}

package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// settling is the world's file sink as a sinks.Settler: it records each
// Settle with what the file held and how far the rotation was at that
// moment, and fails the calls fail picks.
type settling struct {
	*file.Sink
	w     *world
	fail  func(rotationID string) error
	calls []settleCall
}

type settleCall struct {
	rotationID string
	held       string // fingerprint of the file's value
	checks     int    // health checks run before the call
	keyStatus  map[string]string
}

var _ sinks.Settler = (*settling)(nil)

func (s *settling) Settle(ctx context.Context, rotationID string) error {
	v, err := s.Get(ctx)
	if err != nil {
		return err
	}
	st := map[string]string{}
	for _, k := range s.w.sim.Keys() {
		st[k.ID] = k.Status
	}
	s.calls = append(s.calls, settleCall{rotationID: rotationID, held: v.Fingerprint(), checks: s.w.checks, keyStatus: st})
	if s.fail != nil {
		return s.fail(rotationID)
	}
	return nil
}

func newSettling(w *world) *settling {
	s := &settling{Sink: w.sink, w: w}
	w.cred.Sinks = []sinks.Sink{s}
	return s
}

func TestSettleRunsAfterTheWriteAndBeforeMonitoring(t *testing.T) {
	w := newWorld(t)
	w.seed()
	s := newSettling(w)
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	w.invariants(rotation.Done)
	hist, _ := w.store.History(context.Background(), "prod", 0)
	rec := hist[0]
	if len(s.calls) != 1 || s.calls[0].rotationID != rec.ID {
		t.Fatalf("Settle calls %+v, want one for rotation %s", s.calls, rec.ID)
	}
	c := s.calls[0]
	if c.held != rec.NewValue.Fingerprint() {
		t.Errorf("at Settle the sink held %s, want the new key %s", c.held, rec.NewValue.Fingerprint())
	}
	if c.checks != 0 {
		t.Errorf("%d health checks ran before Settle: monitoring must start after it", c.checks)
	}
	if c.keyStatus[rec.OldKeyID] != "active" {
		t.Errorf("old key %s was %s at Settle", rec.OldKeyID, c.keyStatus[rec.OldKeyID])
	}
}

func TestSettleFailureRollsBackAndSettlesAgain(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	s := newSettling(w)
	s.fail = func(id string) error {
		if strings.HasSuffix(id, ".rollback") {
			return nil
		}
		return errors.New("deployment/api: rollout did not complete in 5m")
	}
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.RolledBack || out.Err == nil || !strings.Contains(out.Err.Error(), "rollout did not complete") {
		t.Fatalf("phase %s err %v, want rolled_back with the settle error", out.Phase, out.Err)
	}
	w.invariants(rotation.RolledBack)
	hist, _ := w.store.History(context.Background(), "prod", 0)
	rec := hist[0]
	if len(s.calls) != 2 || s.calls[0].rotationID != rec.ID || s.calls[1].rotationID != rec.ID+".rollback" {
		t.Fatalf("Settle calls %+v, want %s then %s.rollback", s.calls, rec.ID, rec.ID)
	}
	back := s.calls[1]
	if back.held != rec.OldValue.Fingerprint() {
		t.Errorf("at the rollback's Settle the sink held %s, want the restored old key %s", back.held, rec.OldValue.Fingerprint())
	}
	if back.keyStatus[rec.NewKeyID] != "active" {
		t.Errorf("new key %s was %s at the rollback's Settle: it must be revoked only after the readers moved back", rec.NewKeyID, back.keyStatus[rec.NewKeyID])
	}
	if s.calls[0].checks != 0 || back.checks != 0 {
		t.Errorf("health checks ran (%d, %d): a failed settle must not start monitoring", s.calls[0].checks, back.checks)
	}
	for _, k := range w.sim.Keys() {
		switch {
		case k.ID == old.ID && k.Status != "active":
			t.Errorf("old key %s is %s after rollback", k.ID, k.Status)
		case k.ID == rec.NewKeyID && k.Status != "revoked":
			t.Errorf("new key %s is %s after rollback", k.ID, k.Status)
		}
	}
}

func TestRollbackSettleFailureLeavesTheNewKeyValid(t *testing.T) {
	w := newWorld(t)
	w.seed()
	s := newSettling(w)
	s.fail = func(string) error { return errors.New("deployment/api: rollout did not complete in 5m") }
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Failed {
		t.Fatalf("phase %s err %v, want failed: the readers may still use the new key", out.Phase, out.Err)
	}
	hist, _ := w.store.History(context.Background(), "prod", 0)
	rec := hist[0]
	if len(s.calls) != 2 {
		t.Fatalf("Settle calls %+v, want the deploy's and the rollback's", s.calls)
	}
	for _, k := range w.sim.Keys() {
		if k.ID == rec.NewKeyID && k.Status != "active" {
			t.Errorf("new key %s is %s: readers that did not move back would be dark (I3)", k.ID, k.Status)
		}
	}
	if !strings.Contains(rec.Error, "settle") {
		t.Errorf("record error %q does not say the settle failed", rec.Error)
	}
}

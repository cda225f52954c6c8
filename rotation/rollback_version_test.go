package rotation_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
)

// versionedSink keeps every value put as a version, as AWS Secrets
// Manager does; its Rollback moves the current version back to the one
// the receipt names as previous. before, if set, is written as a version
// of its own just before the first Put: another writer between rekey's
// adoption read and its write.
type versionedSink struct {
	mu       sync.Mutex
	versions []secret.Value
	current  int
	before   secret.Value
}

func (s *versionedSink) Name() string { return "versioned" }

func (s *versionedSink) Put(_ context.Context, v secret.Value, rotationID string) (sinks.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.before.IsZero() {
		s.versions = append(s.versions, s.before)
		s.current, s.before = len(s.versions)-1, secret.Value{}
	}
	r := sinks.Receipt{Sink: s.Name(), RotationID: rotationID, Version: strconv.Itoa(len(s.versions)), Previous: strconv.Itoa(s.current)}
	s.versions = append(s.versions, v)
	s.current = len(s.versions) - 1
	return r, nil
}

func (s *versionedSink) Get(context.Context) (secret.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[s.current], nil
}

func (s *versionedSink) Rollback(_ context.Context, r sinks.Receipt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := strconv.Atoi(r.Previous)
	if err != nil || prev >= len(s.versions) {
		return errors.New("no such version")
	}
	s.current = prev
	return nil
}

// A sink whose own rollback brings back another value than the journaled
// old key (its version before the put held something else) gets the old
// key put back as a new write: the rotation rolls back with every sink on
// the old key, instead of failing with the sink on a value rekey never
// checked.
func TestRollbackPutsOldKeyWhenSinkRollbackRestoresAnother(t *testing.T) {
	w := newWorld(t)
	w.seed()
	old := w.seen[0]
	_, other, err := w.iss.Create(context.Background(), "someone-else")
	must(t, err)
	vs := &versionedSink{versions: []secret.Value{old}, before: other}
	w.cred.Sinks = append(w.cred.Sinks, vs)
	w.healthy = func() error { return errors.New("503 from app") }

	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v), want rolled_back", out.Phase, out.Err)
	}
	if got, _ := vs.Get(context.Background()); !got.Equal(old) {
		t.Errorf("the versioned sink holds %s after the rollback, want the old key %s", got.Fingerprint(), old.Fingerprint())
	}
	rec := w.latest()
	if k, err := w.iss.Get(context.Background(), rec.NewKeyID); err != nil || k.Status != issuers.Revoked {
		t.Errorf("new key %s is %v (%v) after the rollback, want revoked", rec.NewKeyID, k.Status, err)
	}
}

package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rekeyhq/rekey/rotation"
)

// lockLosing is a Store whose lock is lost when a record reaches phase at:
// that Save, and every one after it, fails as a fenced Store's would.
type lockLosing struct {
	rotation.Store
	at   rotation.Phase
	lost bool
}

func (s *lockLosing) Save(ctx context.Context, r *rotation.Record) error {
	if r.Phase == s.at {
		s.lost = true
	}
	if s.lost {
		return fmt.Errorf("fenced: save %s: %w", r.ID, rotation.ErrLockLost)
	}
	return s.Store.Save(ctx, r)
}

// A lost lock ends the rotation at the journal write that found it out:
// nothing after it happens (the sinks keep the old key), and one log line
// says so.
func TestLostLockStopsAtOnce(t *testing.T) {
	w := newWorld(t)
	w.seed()
	before, err := w.sink.Get(context.Background())
	must(t, err)
	e := w.engine(rotation.Hooks{})
	e.Store = &lockLosing{Store: w.store, at: rotation.Deployed}
	out, err := e.Rotate(context.Background(), w.cred, rotation.Options{})
	if !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Rotate = %+v, %v; want ErrLockLost", out, err)
	}
	if out.Phase != rotation.Deployed {
		t.Errorf("outcome phase %s, want deployed (the write that failed)", out.Phase)
	}
	hist, err := w.store.History(context.Background(), "prod", 1)
	must(t, err)
	if len(hist) != 1 || hist[0].Phase != rotation.Verified {
		t.Errorf("journal = %v, want the rotation left in verified", phases(hist))
	}
	// The sinks were written before deployed is journaled; what matters is
	// that no rollback or revoke followed the failed write: the old key is
	// still valid at the issuer.
	if err := w.iss.Verify(context.Background(), before); err != nil {
		t.Errorf("old key no longer valid after a lost lock: %v", err)
	}
	if n := w.logs.FilterMessageSnippet("lost the credential's lock").Len(); n != 1 {
		t.Errorf("%d log lines about the lost lock, want 1", n)
	}
}

// watchedLock is a Store whose lock the test loses while a rotation runs:
// LockLost's channel closes, and from then on every Save fails.
type watchedLock struct {
	rotation.Store
	lost chan struct{}
	once sync.Once
}

func (s *watchedLock) lose() { s.once.Do(func() { close(s.lost) }) }

func (s *watchedLock) LockLost(string) <-chan struct{} { return s.lost }

func (s *watchedLock) Save(ctx context.Context, r *rotation.Record) error {
	select {
	case <-s.lost:
		return fmt.Errorf("fenced: save %s: %w", r.ID, rotation.ErrLockLost)
	default:
	}
	return s.Store.Save(ctx, r)
}

// A lock lost while no journal write is due (here, mid-monitoring) ends
// the rotation at once: the health check in flight is cancelled, the
// monitoring window is not waited out and the old key is not revoked.
func TestLockLostWhileMonitoring(t *testing.T) {
	w := newWorld(t)
	w.seed()
	old, err := w.sink.Get(context.Background())
	must(t, err)
	st := &watchedLock{Store: w.store, lost: make(chan struct{})}
	checks := 0
	w.cred.Monitor.Checks = []rotation.Check{checkFunc(func(ctx context.Context) error {
		if checks++; checks == 3 {
			st.lose()
			<-ctx.Done() // only the lost lock ends this check
			return ctx.Err()
		}
		return nil
	})}
	e := w.engine(rotation.Hooks{})
	e.Store = st
	out, err := e.Rotate(context.Background(), w.cred, rotation.Options{})
	if !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Rotate = %+v, %v; want ErrLockLost", out, err)
	}
	if out.Phase != rotation.Monitoring || checks != 3 {
		t.Errorf("stopped in %s after %d health checks, want monitoring after 3", out.Phase, checks)
	}
	if err := w.iss.Verify(context.Background(), old); err != nil {
		t.Errorf("the old key was revoked after the lock was lost: %v", err)
	}
	if n := w.logs.FilterMessageSnippet("lost the credential's lock").Len(); n != 1 {
		t.Errorf("%d log lines about the lost lock, want 1", n)
	}
}

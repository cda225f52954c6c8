package rotation_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/etcdtest"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/etcdstore"
)

// Two engines on one etcd journal: A loses its lease mid-monitoring (the
// lease revoked, as when it expires), stops without acting, and B takes
// the lock and finishes A's rotation from the journal. No key is ever
// refused (I3), and only the new key is left at the issuer (I2).
func TestEtcdFailoverMidRotation(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	raw := c.Client(t)
	w := newWorld(t)
	w.seed()
	open := func() *etcdstore.Store {
		s, err := etcdstore.New(ctx, c.Client(t), w.key, etcdstore.Options{Prefix: "/engine/", LockTTL: 2e9})
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	checks := 0
	w.cred.Monitor.Checks = []rotation.Check{checkFunc(func(ctx context.Context) error {
		if checks++; checks == 3 {
			lease, ok := a.Lease("prod")
			if !ok {
				t.Error("A holds no lease mid-rotation")
				return nil
			}
			if _, err := raw.Revoke(context.Background(), lease); err != nil {
				t.Error(err)
			}
			<-ctx.Done() // A's keep-alive finds the lease gone
			return ctx.Err()
		}
		return w.health(ctx)
	})}

	ea := w.engine(rotation.Hooks{})
	ea.Store = a
	out, err := ea.Rotate(ctx, w.cred, rotation.Options{})
	if !errors.Is(err, rotation.ErrLockLost) || out.Phase != rotation.Monitoring {
		t.Fatalf("A: Rotate = %+v, %v; want ErrLockLost in monitoring", out, err)
	}

	eb := w.engine(rotation.Hooks{})
	eb.Store = b
	out, err = eb.Rotate(ctx, w.cred, rotation.Options{})
	if err != nil || out.Phase != rotation.Done {
		t.Fatalf("B: Rotate = %+v, %v; want A's rotation finished", out, err)
	}
	hist, err := b.History(ctx, "prod", 0)
	must(t, err)
	if len(hist) != 1 || hist[0].ID != out.RotationID || hist[0].Phase != rotation.Done {
		t.Errorf("history = %v, want the one rotation, done", phases(hist))
	}
	if r := w.sim.Refusals(); len(r) > 0 {
		t.Errorf("I3: %d requests refused, first %+v", len(r), r[0])
	}
	current, err := w.sink.Get(ctx)
	must(t, err)
	e2etest.OnlyActive(t, w.sim, current)
}

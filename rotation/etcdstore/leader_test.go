package etcdstore

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rekeyhq/rekey/internal/etcdtest"
)

// One replica leads; another waits in Campaign until the first resigns;
// Leader names whoever leads; a leader whose lease is revoked from outside
// sees its context end.
func TestElection(t *testing.T) {
	c := etcdtest.Start(t)
	a := open(t, c, "/elect/").Election()
	b := open(t, c, "/elect/").Election()
	ctx := t.Context()

	if id, err := a.Leader(ctx); err != nil || id != "" {
		t.Fatalf("leader before any campaign: %q, %v", id, err)
	}
	leadA, resignA, err := a.Campaign(ctx, "replica-a")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := b.Leader(ctx); err != nil || id != "replica-a" {
		t.Fatalf("leader %q, %v; want replica-a", id, err)
	}

	type won struct {
		lead   context.Context
		resign func()
		err    error
	}
	bWon := make(chan won, 1)
	go func() {
		l, r, err := b.Campaign(ctx, "replica-b")
		bWon <- won{l, r, err}
	}()
	// b waits while a leads: a's key stays the leader's.
	select {
	case w := <-bWon:
		t.Fatalf("b won while a led: %v", w.err)
	case <-time.After(500 * time.Millisecond):
	}
	if leadA.Err() != nil {
		t.Fatal("a's leadership ended by itself")
	}
	resignA()
	if leadA.Err() == nil {
		t.Error("a's context still live after resigning")
	}
	var w won
	select {
	case w = <-bWon:
	case <-time.After(10 * time.Second):
		t.Fatal("b did not win after a resigned")
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	defer w.resign()
	if id, _ := a.Leader(ctx); id != "replica-b" {
		t.Errorf("leader %q after a resigned, want replica-b", id)
	}

	// b's lease revoked (as if it expired): its leadership ends.
	resp, err := c.Client(t).Get(ctx, "/elect/leader/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader keys %v, %v", resp, err)
	}
	if _, err := c.Client(t).Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.lead.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("b's leadership did not end with its lease")
	}
	if id, _ := a.Leader(ctx); id != "" {
		t.Errorf("leader %q after the lease ended, want none", id)
	}
}

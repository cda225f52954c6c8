package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/etcdtest"
	"github.com/rekeyhq/rekey/rotation"
)

// watch runs s.WatchChanges until the test ends and returns what it
// reports.
func watch(t *testing.T, s *Store) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan string, 100)
	done := make(chan struct{})
	go func() { defer close(done); s.WatchChanges(ctx, func(c string) { out <- c }) }()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// next waits for the next change reported, or fails.
func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no change reported")
	}
	return ""
}

// started saves records of credentials boot-N through s until the watch
// reports one: it starts asynchronously. It returns a filter for the
// boot-N reports of saves made before the first one arrived.
func started(t *testing.T, s *Store, ch <-chan string) func(string) bool {
	t.Helper()
	boot := func(c string) bool { return strings.HasPrefix(c, "boot-") }
	for i := range 200 {
		save(t, s, rec(fmt.Sprintf("boot-%d", i), "r", rotation.Planned))
		select {
		case c := <-ch:
			if !boot(c) {
				t.Fatalf("first change %q, want a boot-N", c)
			}
			return boot
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("the watch never reported a save")
	return nil
}

// nextReal is next without the boot-N reports.
func nextReal(t *testing.T, ch <-chan string, boot func(string) bool) string {
	t.Helper()
	for {
		if c := next(t, ch); !boot(c) {
			return c
		}
	}
}

func save(t *testing.T, s *Store, r *rotation.Record) {
	t.Helper()
	unlock, err := s.Lock(context.Background(), r.Credential)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// A save by another process (another Store, its own client) is reported
// with its credential, the name unescaped, once per save; a save under
// another prefix is not.
func TestWatchChangesSeesOtherProcesses(t *testing.T) {
	c := etcdtest.Start(t)
	a, b := open(t, c, "/watch/"), open(t, c, "/watch/")
	other := open(t, c, "/elsewhere/")
	changes := watch(t, a)
	boot := started(t, b, changes)
	save(t, other, rec("elsewhere", "r0", rotation.Planned))
	save(t, b, rec("prod/eu west", "r1", rotation.Planned))
	save(t, b, rec("staging", "r2", rotation.Deployed))
	save(t, a, rec("staging", "r2", rotation.Done))
	for _, want := range []string{"prod/eu west", "staging", "staging"} {
		if got := nextReal(t, changes, boot); got != want {
			t.Fatalf("change %q, want %q", got, want)
		}
	}
	select {
	case got := <-changes:
		if !boot(got) {
			t.Fatalf("unexpected change %q", got)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// The watch outlives the loss of quorum: on a member whose cluster lost
// two of three it breaks (it requires a leader) and starts again from the
// revision it stopped at; a save made once the quorum is back is reported.
func TestWatchChangesAcrossQuorumLoss(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	// Each Store talks to one member only, as a process pinned to it.
	on := func(m int) (*Store, *clientv3.Client) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[m].ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		s, err := New(context.Background(), cli, testKey(1), Options{Prefix: "/quorum/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, cli
	}
	a, cli := on(0)
	writer := func(m int) *Store { s, _ := on(m); return s }
	changes := watch(t, a)
	boot := started(t, writer(1), changes)

	c.Members[1].Stop()
	c.Members[2].Stop()
	// Until member 0 knows it has no leader, its watch has not broken.
	for deadline := time.Now().Add(20 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, c.Members[0].ClientURL)
		cancel()
		if err == nil && st.Leader == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("member 0 still has a leader with two of three members stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Members[2].Start()
	c.Members[1].Start()
	save(t, writer(2), rec("after", "r2", rotation.Planned))
	for got := nextReal(t, changes, boot); got != "after"; got = nextReal(t, changes, boot) {
		if got != "" {
			t.Fatalf("change %q, want after (or \"\": some may be missed)", got)
		}
	}
}

package etcdstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/etcdtest"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

var prefixes atomic.Int64

// backend returns a Backend on a fresh prefix of c: every Store it opens
// has its own client, as another process would.
func backend(c *etcdtest.Cluster) func(t *testing.T) storetest.Backend {
	return func(t *testing.T) storetest.Backend {
		prefix := fmt.Sprintf("/test-%d/", prefixes.Add(1))
		return func(t *testing.T) rotation.Store { return open(t, c, prefix) }
	}
}

func open(t *testing.T, c *etcdtest.Cluster, prefix string) *Store {
	t.Helper()
	// A small page makes History and Recent read several pages.
	s, err := New(context.Background(), c.Client(t), testKey(1), Options{Prefix: prefix, PageSize: 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, backend(etcdtest.Start(t)))
}

func rec(cred, id string, phase rotation.Phase) *rotation.Record {
	r := storetest.FullRecord()
	r.Credential, r.ID, r.Phase = cred, id, phase
	return r
}

// A Store whose lease is gone cannot journal: after A's lease is revoked
// (as when it expires) and B takes the lock, A's Save fails with
// ErrLockLost and writes nothing.
func TestSaveFencedOnLock(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	a, b := open(t, c, "/fence/"), open(t, c, "/fence/")

	if err := a.Save(ctx, rec("prod", "r-0", rotation.Planned)); !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Save without the lock: %v, want ErrLockLost", err)
	}
	unlockA, err := a.Lock(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	if err := a.Save(ctx, rec("prod", "r-1", rotation.Planned)); err != nil {
		t.Fatalf("Save holding the lock: %v", err)
	}
	if err := b.Save(ctx, rec("prod", "r-1", rotation.Failed)); !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Save by another Store while A holds the lock: %v, want ErrLockLost", err)
	}

	lease, ok := a.Lease("prod")
	if !ok {
		t.Fatal("A holds no lease")
	}
	raw := c.Client(t)
	if _, err := raw.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	unlockB, err := b.Lock(ctx, "prod")
	if err != nil {
		t.Fatalf("B's Lock after A's lease is gone: %v", err)
	}
	defer unlockB()

	err = a.Save(ctx, rec("prod", "r-1", rotation.Minted))
	if !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("A's Save after losing its lease: %v, want ErrLockLost", err)
	}
	if !strings.Contains(err.Error(), "expired or was revoked") {
		t.Errorf("error %q does not say the lease is gone", err)
	}
	if err := a.Save(ctx, rec("prod", "r-2", rotation.Planned)); !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("A's Save of a new rotation: %v, want ErrLockLost", err)
	}
	h, err := b.History(ctx, "prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := storetest.IDs(h); !reflect.DeepEqual(got, []string{"prod/r-1"}) || h[0].Phase != rotation.Planned {
		t.Errorf("history after A's fenced saves = %v (phase %s), want r-1 as A saved it while holding the lock", got, h[0].Phase)
	}
	// B, the holder, journals.
	if err := b.Save(ctx, rec("prod", "r-1", rotation.Minted)); err != nil {
		t.Fatalf("B's Save: %v", err)
	}
	// After unlock, B cannot journal either.
	unlockB()
	if err := b.Save(ctx, rec("prod", "r-1", rotation.Verified)); !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Save after unlock: %v, want ErrLockLost", err)
	}
}

// rawValues returns every key and value under prefix.
func rawValues(t *testing.T, cli *clientv3.Client, prefix string) map[string][]byte {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

func TestValuesEncryptedAtRest(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, c, "/enc/")
	storetest.Save(t, s, storetest.FullRecord())
	raw := rawValues(t, c.Client(t), "/enc/")
	if len(raw) < 4 {
		t.Fatalf("only %d keys stored", len(raw))
	}
	for k, v := range raw {
		for _, secretText := range []string{storetest.OldSecret, storetest.NewSecret} {
			for _, form := range []string{secretText, base64.StdEncoding.EncodeToString([]byte(secretText))} {
				if strings.Contains(k, form) || bytes.Contains(v, []byte(form)) {
					t.Errorf("%s holds a key value in plain text", k)
				}
			}
		}
	}
}

func TestWrongKeyFailsAtOpen(t *testing.T) {
	c := etcdtest.Start(t)
	open(t, c, "/key/")
	_, err := New(context.Background(), c.Client(t), testKey(2), Options{Prefix: "/key/"})
	if err == nil || !strings.Contains(err.Error(), "wrong encryption key") {
		t.Fatalf("New with another key: %v", err)
	}
	if _, err := New(context.Background(), c.Client(t), testKey(2), Options{Prefix: "/other/"}); err != nil {
		t.Fatalf("another prefix is another journal: %v", err)
	}
}

// recordKeyOf returns the etcd key of a saved record.
func recordKeyOf(t *testing.T, cli *clientv3.Client, s *Store, cred, id string) string {
	t.Helper()
	resp, err := cli.Get(context.Background(), s.idKey(cred, id))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("index of %s/%s: %v", cred, id, err)
	}
	return string(resp.Kvs[0].Value)
}

// Editing a stored record through another client makes it unreadable, as
// an edited SQLite row is: in Get, History (in its place) and everywhere
// decisions read.
func TestEditedRecordIsUnreadable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		edit   func(v []byte) []byte
		reason string
	}{
		{"a ciphertext byte flipped", func(v []byte) []byte {
			return editJSON(t, v, func(st *stored) { st.NewEnc = bytes.Clone(st.NewEnc); st.NewEnc[14] ^= 0x01 })
		}, "fails authentication"},
		{"the first byte flipped", func(v []byte) []byte { v = bytes.Clone(v); v[0] ^= 0x01; return v }, "does not parse"},
		{"phase", func(v []byte) []byte { return editJSON(t, v, func(st *stored) { st.Phase = "done" }) }, "fails authentication"},
		{"old key ID", func(v []byte) []byte {
			return editJSON(t, v, func(st *stored) { st.Record = strings.Replace(st.Record, "key_old", "key_evil", 1) })
		}, "fails authentication"},
		{"new value", func(v []byte) []byte { return editJSON(t, v, func(st *stored) { st.NewEnc = st.OldEnc }) }, "fails authentication"},
		{"mac", func(v []byte) []byte { return editJSON(t, v, func(st *stored) { st.MAC = make([]byte, 32) }) }, "fails authentication"},
		{"not json", func([]byte) []byte { return []byte("{") }, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := etcdtest.Start(t)
			cli := c.Client(t)
			s := open(t, c, "/edit/")
			saved := storetest.ThreeRotations(t, s)
			k := recordKeyOf(t, cli, s, "production-api", "r-02")
			v := rawValues(t, cli, k)[k]
			if _, err := cli.Put(ctx, k, string(tc.edit(v))); err != nil {
				t.Fatal(err)
			}
			r, err := s.Get(ctx, "production-api", "r-02")
			if err != nil {
				t.Fatal(err)
			}
			if r.Unreadable == "" || !strings.Contains(r.Unreadable, tc.reason) {
				t.Fatalf("Get = unreadable %q, want it to say %q", r.Unreadable, tc.reason)
			}
			if r.Phase != "" || !r.NewValue.IsZero() {
				t.Errorf("unreadable record carries fields: %+v", r)
			}
			h, err := s.History(ctx, "production-api", 0)
			if err != nil {
				t.Fatal(err)
			}
			ok, bad := storetest.Readable(t, h, saved)
			if !reflect.DeepEqual(ok, []string{"production-api/r-03", "production-api/r-01"}) || !reflect.DeepEqual(bad, []string{"production-api/r-02"}) {
				t.Errorf("History = readable %v, unreadable %v", ok, bad)
			}
			storetest.CheckRecent(t, s, saved, "production-api", "other")
			if err := storetest.SaveLocked(ctx, s, r); err == nil {
				t.Error("Save of an unreadable record succeeded")
			}
		})
	}
}

func editJSON(t *testing.T, v []byte, f func(*stored)) []byte {
	t.Helper()
	var st stored
	if err := json.Unmarshal(v, &st); err != nil {
		t.Fatal(err)
	}
	f(&st)
	out, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A record copied whole to another rotation's place, or another
// credential's, is unreadable there: its MAC names where it belongs.
func TestMovedRecordIsUnreadable(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	cli := c.Client(t)
	s := open(t, c, "/move/")
	storetest.ThreeRotations(t, s)
	k1 := recordKeyOf(t, cli, s, "production-api", "r-01")
	k3 := recordKeyOf(t, cli, s, "production-api", "r-03")
	// r-01 over r-03: the newest record now claims r-01's content.
	if _, err := cli.Put(ctx, k3, string(rawValues(t, cli, k1)[k1])); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, "production-api", "r-03"); r == nil || !strings.Contains(r.Unreadable, "moved") && !strings.Contains(r.Unreadable, "authentication") {
		t.Errorf("r-03 holding r-01's record: %+v", r)
	}
	// The newest record unreadable: Unfinished reports it, then goes on to
	// the newest readable one (r-02, in flight).
	un, err := s.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := storetest.IDs(un), []string{"production-api/r-02", "production-api/r-03", "other/r-09"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Unfinished = %v, want %v", got, want)
	}
	// Another credential's record under prod's prefix.
	k9 := recordKeyOf(t, cli, s, "other", "r-09")
	if _, err := cli.Put(ctx, s.rotationsOf("production-api")+"2/r-09", string(rawValues(t, cli, k9)[k9])); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, "production-api", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) == 0 || h[0].Unreadable == "" || h[0].Credential != "production-api" {
		t.Errorf("History(1) = %+v; want the copied record first, unreadable", h)
	}
}

func TestLockTTLIsTheLease(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	s, err := New(ctx, c.Client(t), testKey(1), Options{Prefix: "/ttl/", LockTTL: 7e9})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unlock, err := s.Lock(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lease, _ := s.Lease("prod")
	resp, err := c.Client(t).TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GrantedTTL != 7 {
		t.Errorf("lease granted %ds, want 7", resp.GrantedTTL)
	}
	if _, err := New(ctx, c.Client(t), testKey(1), Options{LockTTL: 5e8}); err == nil {
		t.Error("a lock TTL under a second was accepted")
	}
}

// LockLost closes once the lock's lease is gone, as the keep-alive finds
// out, and on unlock; it is nil without a lock.
func TestLockLostChannel(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	s, err := New(ctx, c.Client(t), testKey(1), Options{Prefix: "/lost/", LockTTL: 2e9})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.LockLost("prod") != nil {
		t.Error("LockLost without a lock is not nil")
	}
	unlock, err := s.Lock(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lost := s.LockLost("prod")
	lease, _ := s.Lease("prod")
	if _, err := c.Client(t).Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(30 * time.Second): // a bound, not a wait: the keep-alive answers within a third of the TTL
		t.Fatal("LockLost did not close after the lease was revoked")
	}

	unlock2, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	lost2 := s.LockLost("other")
	unlock2()
	select {
	case <-lost2:
	default:
		t.Error("LockLost still open after unlock")
	}
}

// The index and the summaries only choose what to read: edited, they make
// a read unreadable or longer, never wrong.
func TestEditedIndexAndSummary(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t)
	cli := c.Client(t)
	s := open(t, c, "/index/")
	saved := storetest.ThreeRotations(t, s)

	// An index entry pointing at another record.
	k1 := recordKeyOf(t, cli, s, "production-api", "r-01")
	if _, err := cli.Put(ctx, s.idKey("production-api", "r-03"), k1); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "production-api", "r-03"); err != nil || !strings.Contains(r.Unreadable, "index entry names another record") {
		t.Errorf("Get through an edited index = %+v, %v", r, err)
	}
	// Saving r-03 again does not take the index's word for its old place:
	// r-01 is not deleted.
	storetest.Save(t, s, saved["production-api/r-03"])
	if r, err := s.Get(ctx, "production-api", "r-01"); err != nil || r.Unreadable != "" {
		t.Errorf("r-01 after r-03 was saved over an edited index: %+v, %v", r, err)
	}

	for _, sum := range []string{`{"done":"` + k1 + `"}`, `{"done":"/elsewhere/x"}`, `not json`, `{}`} {
		if _, err := cli.Put(ctx, s.summaryKey("production-api"), sum); err != nil {
			t.Fatal(err)
		}
		ok, bad := storetest.CheckRecent(t, s, saved, "production-api", "other")
		if !reflect.DeepEqual(ok, []string{"production-api/r-03"}) || bad != nil {
			t.Errorf("summary %s: Recent = %v, unreadable %v; want r-03 (the newest, done)", sum, ok, bad)
		}
	}
}

// The contract on a three-member cluster, each Store talking to another
// member: reads through one member see writes made through another.
func TestContractOnCluster(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		prefix := fmt.Sprintf("/cluster-%d/", prefixes.Add(1))
		return func(t *testing.T) rotation.Store {
			ep := c.Members[int(n.Add(1))%len(c.Members)].ClientURL
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Close() })
			s, err := New(context.Background(), cli, testKey(1), Options{Prefix: prefix, PageSize: 16})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

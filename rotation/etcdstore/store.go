// Package etcdstore is rekey's shared journal: a rotation.Store kept in an
// etcd cluster, for several rekey replicas (or machines) rotating the same
// credentials.
//
// Records are sealed and authenticated exactly as in rotation/sqlite (see
// rotation/journalcrypto): key values only encrypted with AES-256-GCM, every
// record authenticated whole with an HMAC-SHA256, so a record edited or
// moved through another etcd client reads back as unreadable.
//
// Locks are etcd lease-backed mutexes (concurrency.Mutex), one lease per
// Lock, and every Save is a transaction conditioned on still holding the
// credential's lock: a process whose lease expired (partitioned, paused,
// killed) cannot journal, and since the engine journals every side effect
// before it happens (I6), it cannot act either.
//
// Key layout under the prefix (default "/rekey/"; credential names are
// path-escaped):
//
//	meta/key_check                       the journal key's check
//	rotations/<credential>/<start>/<id>  one record; <start> sorts by StartedAt
//	ids/<credential>/<id>                the record's key under rotations/
//	credentials/<credential>             the credential's summary: its newest done record
//	locks/<credential>/<lease>           the lock's waiters (concurrency.Mutex)
//	leader/<lease>                       the daemon replicas' election (Election)
package etcdstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/journalcrypto"
	"github.com/rekeyhq/rekey/sinks"
)

var _ rotation.Store = (*Store)(nil)

// Defaults of Options.
const (
	DefaultPrefix         = "/rekey/"
	DefaultLockTTL        = 15 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultPageSize       = 64
)

// maxTxnOps is how many reads one batched transaction carries; etcd's
// default --max-txn-ops is 128.
const maxTxnOps = 100

// Options tune a Store; zero fields take the defaults.
type Options struct {
	// Prefix is prepended to every key the Store reads or writes; it ends
	// with "/". Two prefixes are two independent journals.
	Prefix string
	// LockTTL is the lease of each lock: a holder that stops refreshing
	// it (crashed, partitioned, paused) loses the lock this long after its
	// last refresh, and from then on another process may take the lock
	// and resume the rotation. Whole seconds, at least one.
	LockTTL time.Duration
	// RequestTimeout bounds each request to etcd.
	RequestTimeout time.Duration
	// PageSize is how many records History and Recent read per request.
	PageSize int
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.LockTTL <= 0 {
		o.LockTTL = DefaultLockTTL
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	return o
}

// Store is a rotation.Store in etcd. It is safe for concurrent use, and any
// number of Stores in any number of processes may share one prefix.
type Store struct {
	cli     *clientv3.Client
	ownsCli bool
	seal    *journalcrypto.Sealer
	opt     Options

	mu   sync.Mutex
	held map[string]*held // credential → the lock this Store holds
}

// held is one lock taken through Lock.
type held struct {
	session *concurrency.Session
	key     string // the mutex's key, bound to the session's lease
	// owns is the condition every Save is fenced on (Mutex.IsOwner when
	// the lock was taken): the lock key still exists with the create
	// revision it had then. It fails once the lease expired or was revoked
	// (the key goes with it), even if another process took the lock since.
	owns clientv3.Cmp
}

// Key-check constants: opening the check proves the key is the journal's.
var (
	keyCheckAAD   = []byte("rekey/etcd/v1|key-check")
	keyCheckPlain = []byte("rekey etcd journal key check v1")
)

// New returns a Store on cli under opt.Prefix. It creates the key check if
// the prefix holds no journal yet, and fails with "wrong encryption key" if
// the journal there was created with another key. Close does not close
// cli: the caller owns it (and may share it, e.g. for a leader election).
func New(ctx context.Context, cli *clientv3.Client, key []byte, opt Options) (*Store, error) {
	seal, err := journalcrypto.New(key)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: %w", err)
	}
	opt = opt.withDefaults()
	if !strings.HasSuffix(opt.Prefix, "/") {
		return nil, fmt.Errorf("etcdstore: prefix %q must end with /", opt.Prefix)
	}
	if opt.LockTTL < time.Second {
		return nil, fmt.Errorf("etcdstore: lock TTL %s is under one second", opt.LockTTL)
	}
	s := &Store{cli: cli, seal: seal, opt: opt, held: map[string]*held{}}
	if err := s.checkKey(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Client returns the Store's etcd client, for what else shares the cluster
// (a leader election). It stays the Store's: do not close it.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the prefix the Store's keys live under.
func (s *Store) Prefix() string { return s.opt.Prefix }

func (s *Store) checkKey(ctx context.Context) error {
	check, err := s.seal.Seal(keyCheckPlain, keyCheckAAD)
	if err != nil {
		return fmt.Errorf("etcdstore: %w", err)
	}
	k := s.opt.Prefix + "meta/key_check"
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(check))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: open %s on %v: %w", s.opt.Prefix, s.cli.Endpoints(), err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || !s.seal.Checks(kvs[0].Value, keyCheckPlain, keyCheckAAD) {
		return fmt.Errorf("etcdstore: open %s: wrong encryption key: this journal was created with another key", s.opt.Prefix)
	}
	return nil
}

// Close ends every lock this Store still holds (revoking its lease) and,
// if the Store dialed its own client (Open), closes it.
func (s *Store) Close() error {
	s.mu.Lock()
	hs := s.held
	s.held = map[string]*held{}
	s.mu.Unlock()
	for _, h := range hs {
		_ = h.session.Close()
	}
	if s.ownsCli {
		if err := s.cli.Close(); err != nil {
			return fmt.Errorf("etcdstore: close: %w", err)
		}
	}
	return nil
}

func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opt.RequestTimeout)
}

// Keys.

func esc(credential string) string { return url.PathEscape(credential) }

func (s *Store) rotationsOf(credential string) string {
	return s.opt.Prefix + "rotations/" + esc(credential) + "/"
}

func (s *Store) idKey(credential, id string) string {
	return s.opt.Prefix + "ids/" + esc(credential) + "/" + id
}

func (s *Store) summaryKey(credential string) string {
	return s.opt.Prefix + "credentials/" + esc(credential)
}

func (s *Store) lockPrefix(credential string) string {
	return s.opt.Prefix + "locks/" + esc(credential)
}

// startKey encodes a start time so that keys sort as the Store orders
// records: no start time first, then by time. Unix nanoseconds are
// offset into unsigned order and written as fixed-width hex.
func startKey(started any) string {
	n, ok := started.(int64)
	if !ok {
		return "0"
	}
	return fmt.Sprintf("1%016x", uint64(n)^(1<<63))
}

func (s *Store) recordKey(credential string, started any, id string) string {
	return s.rotationsOf(credential) + startKey(started) + "/" + id
}

// position is where a stored record's key says it belongs.
type position struct {
	credential, id, start string
}

func (s *Store) parseKey(k string) (position, bool) {
	rest, ok := strings.CutPrefix(k, s.opt.Prefix+"rotations/")
	if !ok {
		return position{}, false
	}
	ecred, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return position{}, false
	}
	cred, err := url.PathUnescape(ecred)
	if err != nil {
		return position{}, false
	}
	start, id, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return position{}, false
	}
	return position{cred, id, start}, true
}

// Stored form.

// stored is one record as its etcd value holds it. Every field but MAC is
// covered by the MAC, as journalcrypto.Row.
type stored struct {
	Credential string `json:"credential"`
	ID         string `json:"id"`
	Phase      string `json:"phase"`
	Started    *int64 `json:"started_at,omitempty"`
	Updated    *int64 `json:"updated_at,omitempty"`
	Finished   *int64 `json:"finished_at,omitempty"`
	Record     string `json:"record"` // plainRecord as JSON; never a key value
	OldEnc     []byte `json:"old_value_enc"`
	NewEnc     []byte `json:"new_value_enc"`
	MAC        []byte `json:"mac"`
}

func (st *stored) row() *journalcrypto.Row {
	t := func(p *int64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	return &journalcrypto.Row{Credential: st.Credential, ID: st.ID, Phase: st.Phase,
		Started: t(st.Started), Updated: t(st.Updated), Finished: t(st.Finished),
		Record: st.Record, OldEnc: st.OldEnc, NewEnc: st.NewEnc}
}

// plainRecord is the part of a Record stored as JSON in plain text, the
// same fields rotation/sqlite stores. It must never hold a key value.
type plainRecord struct {
	Label       string                `json:"label,omitempty"`
	OldKeyID    string                `json:"old_key_id,omitempty"`
	NewKeyID    string                `json:"new_key_id,omitempty"`
	Receipts    []sinks.Receipt       `json:"receipts,omitempty"`
	Staged      bool                  `json:"staged,omitempty"`
	Forced      bool                  `json:"forced,omitempty"`
	Setup       string                `json:"setup,omitempty"`
	Kept        bool                  `json:"kept,omitempty"`
	Reverts     int                   `json:"reverts,omitempty"`
	Left        []rotation.LeftKey    `json:"left,omitempty"`
	Untouched   []string              `json:"untouched,omitempty"`
	Error       string                `json:"error,omitempty"`
	Transitions []rotation.Transition `json:"transitions,omitempty"`
}

func timeOf(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromTime(p *int64) time.Time {
	if p == nil {
		return time.Time{}
	}
	return time.Unix(0, *p).UTC()
}

func (s *Store) encode(r *rotation.Record) (*stored, error) {
	plain, err := json.Marshal(plainRecord{
		Label: r.Label, OldKeyID: r.OldKeyID, NewKeyID: r.NewKeyID, Receipts: r.Receipts,
		Staged: r.Staged, Forced: r.Forced, Setup: r.Setup, Kept: r.Kept, Reverts: r.Reverts,
		Left: r.Left, Untouched: r.Untouched, Error: r.Error, Transitions: r.Transitions,
	})
	if err != nil {
		return nil, err
	}
	oldEnc, err := s.seal.Seal([]byte(r.OldValue.Reveal()), journalcrypto.ValueAAD(r.Credential, r.ID, "old"))
	if err != nil {
		return nil, fmt.Errorf("encrypt old value: %w", err)
	}
	newEnc, err := s.seal.Seal([]byte(r.NewValue.Reveal()), journalcrypto.ValueAAD(r.Credential, r.ID, "new"))
	if err != nil {
		return nil, fmt.Errorf("encrypt new value: %w", err)
	}
	st := &stored{Credential: r.Credential, ID: r.ID, Phase: string(r.Phase),
		Started: timeOf(r.StartedAt), Updated: timeOf(r.UpdatedAt), Finished: timeOf(r.FinishedAt),
		Record: string(plain), OldEnc: oldEnc, NewEnc: newEnc}
	if st.MAC, err = s.seal.MAC(st.row()); err != nil {
		return nil, err
	}
	return st, nil
}

// Reasons a record is unreadable (rotation.Record.Unreadable).
const (
	reasonParse = "record does not parse (edited)"
	reasonAuth  = "record fails authentication (edited, or written with another key)"
	reasonMoved = "record is stored under another credential, rotation ID or start time (moved)"
)

// decode authenticates and decodes one stored value found at key k. A
// value that fails comes back as an unreadable record named by its key.
// With skipTerminal, a readable record in a terminal phase comes back nil
// before its values are decrypted.
func (s *Store) decode(k string, value []byte, skipTerminal bool) *rotation.Record {
	pos, _ := s.parseKey(k)
	unreadable := func(reason string) *rotation.Record {
		return &rotation.Record{Credential: pos.credential, ID: pos.id, Unreadable: reason}
	}
	var st stored
	if err := json.Unmarshal(value, &st); err != nil {
		return unreadable(reasonParse)
	}
	if !s.seal.Verify(st.row(), st.MAC) {
		return unreadable(reasonAuth)
	}
	if st.Credential != pos.credential || st.ID != pos.id || startKey(st.row().Started) != pos.start {
		return unreadable(reasonMoved)
	}
	if skipTerminal && rotation.Phase(st.Phase).Terminal() {
		return nil
	}
	var p plainRecord
	if err := json.Unmarshal([]byte(st.Record), &p); err != nil {
		return unreadable("record does not parse: " + err.Error())
	}
	oldPlain, err := s.seal.Open(st.OldEnc, journalcrypto.ValueAAD(st.Credential, st.ID, "old"))
	if err != nil {
		return unreadable("old value: " + err.Error())
	}
	newPlain, err := s.seal.Open(st.NewEnc, journalcrypto.ValueAAD(st.Credential, st.ID, "new"))
	if err != nil {
		return unreadable("new value: " + err.Error())
	}
	return &rotation.Record{
		Credential: st.Credential, ID: st.ID, Phase: rotation.Phase(st.Phase),
		Label: p.Label, OldKeyID: p.OldKeyID, NewKeyID: p.NewKeyID, Receipts: p.Receipts,
		Staged: p.Staged, Forced: p.Forced, Setup: p.Setup, Kept: p.Kept, Reverts: p.Reverts,
		Left: p.Left, Untouched: p.Untouched, Error: p.Error, Transitions: p.Transitions,
		OldValue: secret.New(string(oldPlain)), NewValue: secret.New(string(newPlain)),
		StartedAt: fromTime(st.Started), UpdatedAt: fromTime(st.Updated), FinishedAt: fromTime(st.Finished),
	}
}

// summary is a credential's summary value. It only chooses where reads
// start: every record read is authenticated on its own.
type summary struct {
	// Done is the key of the newest record saved in phase Done.
	Done string `json:"done,omitempty"`
}

// Save inserts or replaces the record (r.Credential, r.ID), in one etcd
// transaction that also moves its index and the credential's summary, and
// only if this Store still holds the credential's lock (see Lock): without
// it, Save writes nothing and returns an error wrapping
// rotation.ErrLockLost. It is durable (committed by a quorum) when it
// returns. It refuses a record whose Unreadable is set.
func (s *Store) Save(ctx context.Context, r *rotation.Record) error {
	if r == nil || r.Credential == "" || r.ID == "" {
		return errors.New("etcdstore: save: record needs a credential and an ID")
	}
	what := fmt.Sprintf("etcdstore: save rotation %s of %s", r.ID, r.Credential)
	if r.Unreadable != "" {
		return fmt.Errorf("%s: the record is unreadable (%s)", what, r.Unreadable)
	}
	s.mu.Lock()
	h := s.held[r.Credential]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%s: this process does not hold the credential's lock: %w", what, rotation.ErrLockLost)
	}
	st, err := s.encode(r)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	value, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	key := s.recordKey(r.Credential, st.row().Started, r.ID)
	idKey, sumKey := s.idKey(r.Credential, r.ID), s.summaryKey(r.Credential)
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	// The index and summary are read, then written conditioned on being
	// unchanged: only a writer without the lock could change them, and
	// that one's transaction fails on the lock, so a retry is rare.
	for range 5 {
		resp, err := s.cli.Txn(rctx).If(h.owns).Then(clientv3.OpGet(idKey), clientv3.OpGet(sumKey)).Commit()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("%s: the lease of the credential's lock expired or was revoked: %w", what, rotation.ErrLockLost)
		}
		var oldKey string
		var idRev, sumRev int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			idRev = kvs[0].ModRevision
			// The record's old place, if the index names one of this
			// record's places: an edited index must not make Save
			// delete another record.
			if pos, ok := s.parseKey(string(kvs[0].Value)); ok && pos.credential == r.Credential && pos.id == r.ID {
				oldKey = string(kvs[0].Value)
			}
		}
		var sum summary
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if json.Unmarshal(kvs[0].Value, &sum) != nil || !strings.HasPrefix(sum.Done, s.rotationsOf(r.Credential)) {
				sum = summary{} // edited: rebuilt from here on
			}
			sumRev = kvs[0].ModRevision
		}
		if r.Phase == rotation.Done && key > sum.Done {
			sum.Done = key
		}
		sumValue, _ := json.Marshal(sum)
		ops := []clientv3.Op{clientv3.OpPut(key, string(value)), clientv3.OpPut(idKey, key), clientv3.OpPut(sumKey, string(sumValue))}
		if oldKey != "" && oldKey != key {
			ops = append(ops, clientv3.OpDelete(oldKey))
		}
		resp, err = s.cli.Txn(rctx).If(h.owns,
			clientv3.Compare(clientv3.ModRevision(idKey), "=", idRev),
			clientv3.Compare(clientv3.ModRevision(sumKey), "=", sumRev),
		).Then(ops...).Else(clientv3.OpGet(h.key)).Commit()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if resp.Succeeded {
			return nil
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("%s: the lease of the credential's lock expired or was revoked: %w", what, rotation.ErrLockLost)
		}
	}
	return fmt.Errorf("%s: the index kept changing under the lock", what)
}

// Get returns one rotation, or an error wrapping rotation.ErrNotFound. A
// record that fails authentication or decryption comes back unreadable.
func (s *Store) Get(ctx context.Context, credential, id string) (*rotation.Record, error) {
	what := fmt.Sprintf("etcdstore: get rotation %s of %s", id, credential)
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.idKey(credential, id))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", what, rotation.ErrNotFound)
	}
	key := string(resp.Kvs[0].Value)
	if pos, ok := s.parseKey(key); !ok || pos.credential != credential || pos.id != id {
		return &rotation.Record{Credential: credential, ID: id, Unreadable: "index entry names another record (edited)"}, nil
	}
	rec, err := s.cli.Get(rctx, key, clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(rec.Kvs) == 0 {
		return &rotation.Record{Credential: credential, ID: id, Unreadable: "record is missing where its index says (deleted)"}, nil
	}
	return s.decode(key, rec.Kvs[0].Value, false), nil
}

// each reads credential's records newest first, a page at a time from one
// snapshot, and passes each to more until it returns false.
func (s *Store) each(ctx context.Context, what, credential string, more func(key string, r *rotation.Record) bool) error {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	pfx := s.rotationsOf(credential)
	end := clientv3.GetPrefixRangeEnd(pfx)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend),
			clientv3.WithLimit(int64(s.opt.PageSize))}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(rctx, pfx, opts...)
		if err != nil {
			return fmt.Errorf("etcdstore: %s: %w", what, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if !more(string(kv.Key), s.decode(string(kv.Key), kv.Value, false)) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		end = string(resp.Kvs[len(resp.Kvs)-1].Key) // exclusive: the next page is older
	}
}

// History returns a credential's rotations newest first, reading a page
// at a time and no page older than the last record it returns.
// Unreadable records come back in their place and do not count towards
// limit; limit <= 0 means all.
func (s *Store) History(ctx context.Context, credential string, limit int) ([]*rotation.Record, error) {
	var out []*rotation.Record
	n := 0
	err := s.each(ctx, "history of "+credential, credential, func(_ string, r *rotation.Record) bool {
		out = append(out, r)
		if r.Unreadable == "" {
			n++
		}
		return limit <= 0 || n < limit
	})
	return out, err
}

// Count returns how many rotations of credential the journal holds,
// readable or not, without reading them.
func (s *Store) Count(ctx context.Context, credential string) (int, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.rotationsOf(credential), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcdstore: count history of %s: %w", credential, err)
	}
	return int(resp.Count), nil
}

// Recent returns a credential's rotations newest first down to and
// including its newest readable record in phase Done, or all of them
// when none is, reading no page older than that record.
func (s *Store) Recent(ctx context.Context, credential string) ([]*rotation.Record, error) {
	var out []*rotation.Record
	err := s.each(ctx, "recent history of "+credential, credential, func(_ string, r *rotation.Record) bool {
		out = append(out, r)
		return r.Unreadable != "" || r.Phase != rotation.Done
	})
	return out, err
}

// credentials returns every credential with a summary, and the summaries,
// with the revision they were read at.
func (s *Store) credentials(ctx context.Context) (map[string]summary, int64, error) {
	pfx := s.opt.Prefix + "credentials/"
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := map[string]summary{}
	for _, kv := range resp.Kvs {
		name, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), pfx))
		if err != nil {
			continue
		}
		var sum summary
		_ = json.Unmarshal(kv.Value, &sum) // unparsable: read the whole history
		out[name] = sum
	}
	return out, resp.Header.Revision, nil
}

// batch runs reads in transactions of at most maxTxnOps, all at revision
// rev, and returns their responses in order.
func (s *Store) batch(ctx context.Context, ops []clientv3.Op) ([]*clientv3.GetResponse, error) {
	var out []*clientv3.GetResponse
	for chunk := range slices.Chunk(ops, maxTxnOps) {
		resp, err := s.cli.Txn(ctx).Then(chunk...).Commit()
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			out = append(out, (*clientv3.GetResponse)(r.GetResponseRange()))
		}
	}
	return out, nil
}

// RecentAll returns Recent of every credential: one range read of the
// summaries, then, batched into transactions, each credential's records
// from its newest done record on. A credential whose done record is not
// readable and done any more is read again by Recent, which goes on past
// it.
func (s *Store) RecentAll(ctx context.Context) (map[string][]*rotation.Record, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	sums, rev, err := s.credentials(rctx)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: recent history: %w", err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range sums {
			if !yield(n) {
				return
			}
		}
	})
	ops := make([]clientv3.Op, len(names))
	for i, name := range names {
		pfx := s.rotationsOf(name)
		from := pfx
		if d := sums[name].Done; strings.HasPrefix(d, pfx) {
			from = d
		}
		ops[i] = clientv3.OpGet(from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(pfx)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithRev(rev))
	}
	resps, err := s.batch(rctx, ops)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: recent history: %w", err)
	}
	out := map[string][]*rotation.Record{}
	for i, name := range names {
		var recs []*rotation.Record
		complete := false
		for _, kv := range resps[i].Kvs {
			r := s.decode(string(kv.Key), kv.Value, false)
			recs = append(recs, r)
			if r.Unreadable == "" && r.Phase == rotation.Done {
				complete = true
				break
			}
		}
		if !complete && sums[name].Done != "" {
			if recs, err = s.Recent(ctx, name); err != nil {
				return nil, err
			}
		}
		if len(recs) > 0 {
			out[name] = recs
		}
	}
	return out, nil
}

// Unfinished returns the rotations in flight, oldest (by StartedAt, then
// credential and ID) first: each credential's newest readable record if
// its phase is not terminal, and every unreadable record newer than that.
// It reads each credential's newest record (batched into transactions),
// and further records only of a credential whose newest is unreadable.
func (s *Store) Unfinished(ctx context.Context) ([]*rotation.Record, error) {
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	sums, rev, err := s.credentials(rctx)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: unfinished: %w", err)
	}
	names := make([]string, 0, len(sums))
	ops := make([]clientv3.Op, 0, len(sums))
	for name := range sums {
		pfx := s.rotationsOf(name)
		names = append(names, name)
		ops = append(ops, clientv3.OpGet(pfx, clientv3.WithRange(clientv3.GetPrefixRangeEnd(pfx)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithRev(rev)))
	}
	resps, err := s.batch(rctx, ops)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: unfinished: %w", err)
	}
	type found struct {
		start string
		r     *rotation.Record
	}
	var out []found
	for i, name := range names {
		if len(resps[i].Kvs) == 0 {
			continue
		}
		kv := resps[i].Kvs[0]
		r := s.decode(string(kv.Key), kv.Value, true)
		switch {
		case r == nil: // terminal
		case r.Unreadable == "":
			pos, _ := s.parseKey(string(kv.Key))
			out = append(out, found{pos.start, r})
		default:
			err := s.each(ctx, "unfinished", name, func(k string, r *rotation.Record) bool {
				if r.Unreadable == "" && r.Phase.Terminal() {
					return false
				}
				pos, _ := s.parseKey(k) // an unreadable record's start is where it is stored
				out = append(out, found{pos.start, r})
				return r.Unreadable != ""
			})
			if err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.r.Credential, b.r.Credential), cmp.Compare(a.r.ID, b.r.ID))
	})
	recs := make([]*rotation.Record, len(out))
	for i, f := range out {
		recs[i] = f.r
	}
	return recs, nil
}

// Lock takes the credential's lock: a concurrency.Mutex under
// <prefix>locks/<credential>, on a lease of its own with Options.LockTTL,
// kept alive in the background. It returns an error wrapping
// rotation.ErrBusy at once if another holder (in this or any process) has
// it. unlock (safe to call more than once) releases the lock and revokes
// the lease; a holder that dies or loses touch with etcd loses the lock
// when the lease expires, and its Saves fail from then on.
func (s *Store) Lock(ctx context.Context, credential string) (unlock func(), err error) {
	if credential == "" {
		return nil, errors.New("etcdstore: lock: credential is empty")
	}
	what := "etcdstore: lock " + credential
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	ttl := int64(s.opt.LockTTL / time.Second)
	lease, err := s.cli.Grant(rctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("%s: lease: %w", what, err)
	}
	// The session's keep-alive runs on the client's context, not ctx: it
	// must outlive this call.
	session, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)))
	if err != nil {
		s.revoke(lease.ID)
		return nil, fmt.Errorf("%s: session: %w", what, err)
	}
	m := concurrency.NewMutex(session, s.lockPrefix(credential))
	if err := m.TryLock(rctx); err != nil {
		_ = session.Close()
		if errors.Is(err, concurrency.ErrLocked) {
			return nil, fmt.Errorf("%s: %w", what, rotation.ErrBusy)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	h := &held{session: session, key: m.Key(), owns: m.IsOwner()}
	s.mu.Lock()
	s.held[credential] = h
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.held[credential] == h {
				delete(s.held, credential)
			}
			s.mu.Unlock()
			// Revoking the lease deletes the lock key with it.
			_ = session.Close()
		})
	}, nil
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.RequestTimeout)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, id)
}

// LockLost returns a channel closed once the lock on credential this
// Store holds ends: released, or its lease expired or revoked as the
// keep-alive finds out (rotation.LockWatcher). It is nil if the Store holds
// no lock on credential.
func (s *Store) LockLost(credential string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[credential]; h != nil {
		return h.session.Done()
	}
	return nil
}

var _ rotation.LockWatcher = (*Store)(nil)

// Lease returns the lease ID of the lock this Store holds on credential,
// and whether it holds one: for tests and diagnostics.
func (s *Store) Lease(credential string) (clientv3.LeaseID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[credential]
	if h == nil {
		return 0, false
	}
	return h.session.Lease(), true
}

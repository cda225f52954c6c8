package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

// The tests in this file try to break invariant I8: every irreversible step
// looks at the world first.

func (w *world) addFileSink(name string) *file.Sink {
	w.t.Helper()
	s, err := file.New(file.Config{Path: filepath.Join(filepath.Dir(w.path), name), Format: "raw"}, zap.NewNop())
	must(w.t, err)
	w.cred.Sinks = append(w.cred.Sinks, s)
	return s
}

func (w *world) keyStatus(id string) issuers.Status {
	w.t.Helper()
	k, err := w.iss.Get(context.Background(), id)
	must(w.t, err)
	return k.Status
}

func (w *world) fileHolds(s *file.Sink, v secret.Value) bool {
	w.t.Helper()
	got, err := s.Get(context.Background())
	return err == nil && got.Equal(v)
}

func (w *world) rotate(opt rotation.Options) rotation.Outcome {
	w.t.Helper()
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, opt)
	must(w.t, err)
	return out
}

func (w *world) latest() *rotation.Record {
	w.t.Helper()
	hist, err := w.store.History(context.Background(), "prod", 1)
	must(w.t, err)
	if len(hist) == 0 {
		w.t.Fatal("no history")
	}
	return hist[0]
}

func transitions(r *rotation.Record) []rotation.Phase {
	var out []rotation.Phase
	for _, t := range r.Transitions {
		out = append(out, t.Phase)
	}
	return out
}

// Item 1: a sink whose Put failed permanently never held the new key; it
// does not make the rollback incomplete, and the sink before it is restored.
func TestRollbackSkipsSinkThatNeverChanged(t *testing.T) {
	w := newWorld(t)
	w.seed()
	before, _ := os.ReadFile(w.path)
	w.cred.Sinks = append(w.cred.Sinks, &sinktest.FakeReader{
		Fake: &sinktest.Fake{SinkName: "impossible", PutFunc: func(context.Context, secret.Value, string) error {
			return backoff.Permanent(errors.New("parent is a regular file"))
		}},
		GetFunc: func(context.Context) error { return backoff.Permanent(errors.New("not a directory")) },
	})
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v), want rolled_back", out.Phase, out.Err)
	}
	after, _ := os.ReadFile(w.path)
	if string(after) != string(before) {
		t.Errorf("the writable sink was not restored")
	}
	w.cred.Sinks = w.cred.Sinks[:1]
	w.invariants(rotation.RolledBack)
}

// Item 1: one sink that cannot be restored does not stop the restore of
// the others; the rotation fails with the new key left valid and tracked.
func TestRollbackRestoresEverySinkItCan(t *testing.T) {
	w := newWorld(t)
	w.seed()
	second := w.addFileSink("second.key")
	oldValue := w.seen[0]
	must(t, os.WriteFile(filepath.Join(filepath.Dir(w.path), "second.key"), []byte(oldValue.Reveal()), 0o600))
	// The third sink takes the new key, then becomes unreachable when the
	// health check fails, so it cannot be restored.
	var unreachable atomic.Bool
	w.cred.Sinks = append(w.cred.Sinks, &sinktest.FakeReader{
		Fake: &sinktest.Fake{SinkName: "flaky"},
		GetFunc: func(context.Context) error {
			if unreachable.Load() {
				return backoff.Permanent(errors.New("unreachable"))
			}
			return nil
		},
	})
	w.healthy = func() error { unreachable.Store(true); return errors.New("503") }
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Failed {
		t.Fatalf("phase %s (%v), want failed", out.Phase, out.Err)
	}
	if !w.fileHolds(w.sink, oldValue) || !w.fileHolds(second, oldValue) {
		t.Errorf("the restorable sinks were not both restored")
	}
	rec := w.latest()
	if len(rec.Left) != 1 || rec.Left[0].KeyID != rec.NewKeyID || !slices.Equal(rec.Left[0].HeldBy, []string{"flaky"}) {
		t.Errorf("left keys %+v, want the new key %s held by flaky", rec.Left, rec.NewKeyID)
	}
	if w.keyStatus(rec.NewKeyID) != issuers.Active {
		t.Errorf("new key revoked although a sink may hold it")
	}
	if !strings.Contains(rec.Error, "flaky") {
		t.Errorf("error %q does not name the sink", rec.Error)
	}
}

// Item 2: the old key revoked behind rekey's back during the window; the
// rollback must not restore a dead key.
func TestRollbackNeverRestoresDeadKey(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	probes := 0
	w.healthy = func() error {
		probes++
		if probes == 1 {
			w.revokedOutside = map[string]bool{old.ID: true}
			must(t, w.iss.Revoke(context.Background(), old.ID))
		}
		return errors.New("503")
	}
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Failed || !strings.Contains(out.Err.Error(), "dead key") {
		t.Fatalf("phase %s (%v), want failed saying it kept the new key", out.Phase, out.Err)
	}
	rec := w.latest()
	if !rec.Kept || !w.fileHolds(w.sink, rec.NewValue) {
		t.Errorf("kept %v; the sink must hold the new key", rec.Kept)
	}
	if w.keyStatus(rec.NewKeyID) != issuers.Active {
		t.Errorf("the new key was revoked: every sink is dark")
	}
	if slices.Contains(transitions(rec), rotation.RolledBack) {
		t.Errorf("transitions %v", transitions(rec))
	}
	// The kept key is the current key: the next rotation replaces it.
	w.healthy = nil
	w.clock.Advance(7 * time.Hour)
	next := w.rotate(rotation.Options{Force: true})
	if next.Phase != rotation.Done {
		t.Fatalf("next rotation %s (%v)", next.Phase, next.Err)
	}
	if r := w.latest(); r.OldKeyID != rec.NewKeyID {
		t.Errorf("next rotation replaced %s, want the kept key %s", r.OldKeyID, rec.NewKeyID)
	}
	w.invariants(rotation.Done)
}

// Item 3: a sink put back to the old key during the window is redeployed
// and monitored again, and the old key is revoked only after that.
func TestRevertedSinkIsRedeployedBeforeRevoke(t *testing.T) {
	w := newWorld(t)
	w.seed()
	oldFile, _ := os.ReadFile(w.path)
	probes := 0
	w.healthy = func() error {
		probes++
		if probes == 2 {
			must(t, os.WriteFile(w.path, oldFile, 0o600)) // config management
		}
		return nil
	}
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	rec := w.latest()
	if n := strings.Count(strings.Join(phaseNames(rec), " "), "monitoring"); n != 2 || rec.Reverts != 1 {
		t.Errorf("transitions %v, reverts %d: want a second monitoring window", transitions(rec), rec.Reverts)
	}
	w.invariants(rotation.Done)
}

// Item 3: reverted a second time, the rotation fails with both keys valid
// and says which sink holds which key.
func TestSinkRevertedTwiceFailsWithBothKeysValid(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	oldFile, _ := os.ReadFile(w.path)
	w.healthy = func() error { return os.WriteFile(w.path, oldFile, 0o600) }
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Failed {
		t.Fatalf("phase %s (%v), want failed", out.Phase, out.Err)
	}
	rec := w.latest()
	if w.keyStatus(old.ID) != issuers.Active || w.keyStatus(rec.NewKeyID) != issuers.Active {
		t.Errorf("old %s new %s: both must stay valid", w.keyStatus(old.ID), w.keyStatus(rec.NewKeyID))
	}
	if !strings.Contains(rec.Error, w.sink.Name()+" holds the old key "+old.ID) {
		t.Errorf("error %q does not say which sink holds which key", rec.Error)
	}
	if len(rec.Left) != 1 || rec.Left[0].KeyID != rec.NewKeyID {
		t.Errorf("left %+v, want the new key", rec.Left)
	}
	// Item 6: the next successful rotation revokes the left key, which no
	// sink holds any more, and says so.
	w.healthy = nil
	w.clock.Advance(7 * time.Hour)
	next := w.rotate(rotation.Options{Force: true})
	if next.Phase != rotation.Done {
		t.Fatalf("next rotation %s (%v)", next.Phase, next.Err)
	}
	if s := w.keyStatus(rec.NewKeyID); s != issuers.Revoked {
		t.Errorf("left key %s is %s after a successful rotation", rec.NewKeyID, s)
	}
	if l := w.latest().Left; len(l) != 0 {
		t.Errorf("left keys after revocation: %+v", l)
	}
	said := false
	for _, ev := range w.events {
		said = said || strings.Contains(ev.Msg, "revoked key "+rec.NewKeyID)
	}
	if !said {
		t.Errorf("no event says the left key was revoked")
	}
	w.invariants(rotation.Done)
}

// Item 6: a person marks a left key as handled.
func TestResolveLeftKey(t *testing.T) {
	w := newWorld(t)
	w.seed()
	oldFile, _ := os.ReadFile(w.path)
	w.healthy = func() error { return os.WriteFile(w.path, oldFile, 0o600) }
	w.rotate(rotation.Options{Force: true})
	left := w.latest().Left
	if len(left) != 1 {
		t.Fatalf("left %+v", left)
	}
	e := w.engine(rotation.Hooks{})
	if _, err := e.Resolve(context.Background(), w.cred, []string{"key_nope"}, false); err == nil {
		t.Errorf("resolving an unknown key succeeded")
	}
	rest, err := e.Resolve(context.Background(), w.cred, []string{left[0].KeyID}, false)
	must(t, err)
	if len(rest) != 0 || len(w.latest().Left) != 0 {
		t.Errorf("left after resolve: %+v", w.latest().Left)
	}
}

// Item 4: the journal's old key ID no longer matches the old value (an
// edited journal, or an issuer that reassigned IDs): nothing is revoked.
func TestRevokeChecksOldKeyIdentity(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.rotate(rotation.Options{Force: true})
	ctx := context.Background()
	bystander, bv, err := w.iss.Create(ctx, "someone-elses")
	must(t, err)
	w.seen = append(w.seen, bv)
	done := w.latest()
	done.NewKeyID = bystander.ID // the journal now names another key
	must(t, w.store.Save(ctx, done))
	w.clock.Advance(7 * time.Hour)
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Failed {
		t.Fatalf("phase %s (%v), want failed", out.Phase, out.Err)
	}
	if w.keyStatus(bystander.ID) != issuers.Active {
		t.Errorf("revoked %s, a key the old value is not", bystander.ID)
	}
	rec := w.latest()
	if !rec.Kept || !w.fileHolds(w.sink, rec.NewValue) || w.keyStatus(rec.NewKeyID) != issuers.Active {
		t.Errorf("the new key must stay current in every sink")
	}
	if !strings.Contains(rec.Error, "does not match") {
		t.Errorf("error %q", rec.Error)
	}
}

// Item 4: key_id in the config must name the key in the sinks.
func TestKeyIDMismatchIsRefused(t *testing.T) {
	w := newWorld(t)
	w.seed()
	ctx := context.Background()
	other, ov, err := w.iss.Create(ctx, "other")
	must(t, err)
	w.seen = append(w.seen, ov)
	w.cred.KeyID = other.ID
	_, err = w.engine(rotation.Hooks{}).Rotate(ctx, w.cred, rotation.Options{Force: true})
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err %v, want a refusal naming the mismatch", err)
	}
	if w.keyStatus(other.ID) != issuers.Active {
		t.Errorf("the key key_id names was revoked")
	}
	if hist, _ := w.store.History(ctx, "prod", 0); len(hist) != 0 {
		t.Errorf("a refused rotation was journaled: %v", phases(hist))
	}
	in, err := w.engine(rotation.Hooks{}).Inspect(ctx, w.cred)
	must(t, err)
	if in.Problem == nil {
		t.Errorf("Inspect reports no problem for a key_id mismatch")
	}
}

// Item 5: a journal written for another setup is not acted on.
func TestSetupMismatchIsRefused(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.cred.Setup = "apexverify https://a.example; sinks: file:a"
	w.rotate(rotation.Options{Force: true})
	w.cred.Setup = "apexverify https://b.example; sinks: file:a"
	w.clock.Advance(7 * time.Hour)
	e := w.engine(rotation.Hooks{})
	_, err := e.Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	if !errors.Is(err, rotation.ErrSetupMismatch) || !strings.Contains(err.Error(), "b.example") {
		t.Fatalf("err %v, want ErrSetupMismatch naming both setups", err)
	}
	// Accepting the new setup on purpose lets rotation go on.
	_, err = e.Resolve(context.Background(), w.cred, nil, true)
	must(t, err)
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.Done {
		t.Fatalf("after --accept-setup: %s (%v)", out.Phase, out.Err)
	}
}

// Item 7: a rotation that fails before mint changed nothing: it ends at
// once without a rolling_back record, and the next run does not resume it.
func TestMintFailureEndsWithNothingToUndo(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.sim.FailNext("POST", "/v1/api-keys", 100, 503)
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	rec := w.latest()
	if got := transitions(rec); !slices.Equal(got, []rotation.Phase{rotation.Planned, rotation.RolledBack}) {
		t.Errorf("transitions %v, want planned then rolled_back", got)
	}
	res, err := w.engine(rotation.Hooks{}).Resume(context.Background(), w.cred)
	must(t, err)
	if res.Phase != "" {
		t.Errorf("the next run resumed it: %+v", res)
	}
}

// lostCreate is the ApexVerify issuer behind a gateway that, from the
// first create on, loses the create's answer (the key is made) and then
// fails every list, so nobody can tell whether a key was made.
type lostCreate struct {
	*apexverify.Issuer
	w *world
}

func (l lostCreate) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	l.w.sim.FailAfterNext("POST", "/v1/api-keys", 1, 502)
	l.w.sim.FailNext("GET", "/v1/api-keys", 1000, 401) // permanent: no waiting on retries
	return l.Issuer.Create(ctx, label)
}

// Item 7 and I2: when the issuer cannot even be asked whether a lost
// create made a key, the rotation is not over: it stays in rolling_back,
// resumable, until the clean-up revokes the orphan.
func TestUnknownMintIsCleanedBeforeItEnds(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.cred.Issuer = lostCreate{Issuer: w.iss, w: w}
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	if err == nil || out.Phase != rotation.RollingBack {
		t.Fatalf("phase %s err %v, want rolling_back with the clean-up's error", out.Phase, err)
	}
	rec := w.latest()
	orphans := 0
	for _, k := range w.sim.Keys() {
		if k.Label == rec.Label && k.Status == "active" {
			orphans++
		}
	}
	if orphans != 1 {
		t.Fatalf("%d keys made by the lost create, want 1 (the test's fault did not bite)", orphans)
	}
	w.sim.ClearFaults()
	w.cred.Issuer = w.iss
	res, err := w.engine(rotation.Hooks{}).Resume(context.Background(), w.cred)
	must(t, err)
	if res.Phase != rotation.RolledBack {
		t.Fatalf("resume: %s (%v), want rolled_back", res.Phase, res.Err)
	}
	w.invariants(rotation.RolledBack)
}

func phaseNames(r *rotation.Record) []string {
	var out []string
	for _, p := range transitions(r) {
		out = append(out, string(p))
	}
	return out
}

// A write-only sink whose Put landed but whose Confirm failed permanently
// did change: the rollback must restore it before revoking the new key.
func TestRollbackRestoresSinkWhoseConfirmFailed(t *testing.T) {
	w := newWorld(t)
	w.seed()
	oldValue := w.seen[0]
	c := &sinktest.FakeConfirmer{
		Fake: &sinktest.Fake{SinkName: "write-only"},
		ConfirmFunc: func(_ context.Context, held secret.Value, _ sinks.Receipt) error {
			if !held.Equal(oldValue) {
				return backoff.Permanent(errors.New("updated_at did not move"))
			}
			return nil
		},
	}
	w.cred.Sinks = append(w.cred.Sinks, c)
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v), want rolled_back", out.Phase, out.Err)
	}
	if !c.Value().Equal(oldValue) {
		t.Errorf("the write-only sink still holds %s, not the old key, after the new key was revoked", c.Value().Fingerprint())
	}
}

// unreadableStore marks one rotation unreadable, as a store does for a
// record that fails to authenticate.
type unreadableStore struct {
	rotation.Store
	id string
}

func (s unreadableStore) History(ctx context.Context, name string, limit int) ([]*rotation.Record, error) {
	hist, err := s.Store.History(ctx, name, limit)
	for i, r := range hist {
		if r.ID == s.id {
			hist[i] = &rotation.Record{Credential: r.Credential, ID: r.ID, Unreadable: "record fails authentication"}
		}
	}
	return hist, err
}

// Recent is cut from History, so the rotation marked unreadable is not
// taken for the last success.
func (s unreadableStore) Recent(ctx context.Context, name string) ([]*rotation.Record, error) {
	hist, err := s.History(ctx, name, 0)
	return rotation.RecentOf(hist), err
}

// Item 5: one unreadable row does not block the credential: rotation goes
// on from the newest readable record, and nothing tries to resume the
// unreadable one.
func TestUnreadableRecordIsSkipped(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.rotate(rotation.Options{Force: true})
	first := w.latest()
	w.clock.Advance(7 * time.Hour)
	// A second rotation crashes mid-way; then its record becomes unreadable.
	crash := w.engine(rotation.Hooks{AfterSave: func(r *rotation.Record) error {
		if r.Phase == rotation.Planned {
			return errCrash
		}
		return nil
	}})
	if _, err := crash.Rotate(context.Background(), w.cred, rotation.Options{Force: true}); !errors.Is(err, errCrash) {
		t.Fatalf("crash: %v", err)
	}
	bad := w.latest()
	e := w.engine(rotation.Hooks{})
	e.Store = unreadableStore{Store: w.store, id: bad.ID}
	if res, err := e.Resume(context.Background(), w.cred); err != nil || res.Phase != "" {
		t.Errorf("resume of an unreadable record: %+v %v, want nothing to resume", res, err)
	}
	w.clock.Advance(7 * time.Hour)
	out, err := e.Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	if r := w.latest(); r.OldKeyID != first.NewKeyID {
		t.Errorf("replaced %s, want %s from the newest readable record", r.OldKeyID, first.NewKeyID)
	}
}

// Item 1, with real file sinks: the second sink's parent is a regular
// file, so its path cannot exist; the first sink is restored and the
// rotation rolls back.
func TestRollbackWithImpossibleFileSink(t *testing.T) {
	w := newWorld(t)
	w.seed()
	before, _ := os.ReadFile(w.path)
	impossible, err := file.New(file.Config{Path: filepath.Join(w.path, "nested.env"), Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	must(t, err)
	w.cred.Sinks = append(w.cred.Sinks, impossible)
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v), want rolled_back", out.Phase, out.Err)
	}
	if after, _ := os.ReadFile(w.path); string(after) != string(before) {
		t.Errorf("the first sink still holds the new key")
	}
	w.cred.Sinks = w.cred.Sinks[:1]
	w.invariants(rotation.RolledBack)
}

// A write-only sink whose writes are never confirmed on deploy fails the
// deploy after a few tries; the rollback restores it and confirms that.
func TestUnconfirmedDeployRollsBack(t *testing.T) {
	w := newWorld(t)
	w.seed()
	oldValue := w.seen[0]
	tries := 0
	c := &sinktest.FakeConfirmer{
		Fake: &sinktest.Fake{SinkName: "write-only"},
		ConfirmFunc: func(_ context.Context, held secret.Value, _ sinks.Receipt) error {
			if held.Equal(oldValue) {
				return nil
			}
			tries++
			return errors.New("updated_at did not move") // transient: retried
		},
	}
	w.cred.Sinks = append(w.cred.Sinks, c)
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.RolledBack || !strings.Contains(out.Err.Error(), "write-only") {
		t.Fatalf("phase %s (%v), want rolled_back naming the sink", out.Phase, out.Err)
	}
	if tries != 3 {
		t.Errorf("%d confirm tries on deploy, want 3", tries)
	}
	if !c.Value().Equal(oldValue) {
		t.Errorf("the write-only sink was not restored")
	}
	w.cred.Sinks = w.cred.Sinks[:1]
	w.invariants(rotation.RolledBack)
}

// Item 2: when the old key is dead and a sink cannot be given the new key
// either, the rotation still keeps the new key and names that sink.
func TestKeepNewNamesSinkItCannotWrite(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	var broken atomic.Bool
	stuck := &sinktest.FakeReader{Fake: &sinktest.Fake{SinkName: "stuck", PutFunc: func(context.Context, secret.Value, string) error {
		if broken.Load() {
			return backoff.Permanent(errors.New("permission denied"))
		}
		return nil
	}}}
	w.cred.Sinks = append(w.cred.Sinks, stuck)
	w.healthy = func() error {
		if !broken.Load() {
			broken.Store(true)
			w.revokedOutside = map[string]bool{old.ID: true}
			must(t, w.iss.Revoke(context.Background(), old.ID))
			stuck.Set(w.seen[0]) // someone put the old key back, too
		}
		return errors.New("503")
	}
	out := w.rotate(rotation.Options{Force: true})
	if out.Phase != rotation.Failed {
		t.Fatalf("phase %s (%v), want failed", out.Phase, out.Err)
	}
	rec := w.latest()
	if !rec.Kept || !strings.Contains(rec.Error, "could not be given the new key: stuck") {
		t.Errorf("kept %v, error %q", rec.Kept, rec.Error)
	}
	if !w.fileHolds(w.sink, rec.NewValue) || w.keyStatus(rec.NewKeyID) != issuers.Active {
		t.Errorf("the file must keep the new, valid key")
	}
}

// countingFind counts lookups by label, and those made before a create.
type countingFind struct {
	*apexverify.Issuer
	finds, beforeCreate atomic.Int32
	created             atomic.Bool
}

func (c *countingFind) Find(ctx context.Context, label string) ([]issuers.Key, error) {
	c.finds.Add(1)
	if !c.created.Load() {
		c.beforeCreate.Add(1)
	}
	return c.Issuer.Find(ctx, label)
}

func (c *countingFind) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	c.created.Store(true)
	return c.Issuer.Create(ctx, label)
}

// A freshly planned rotation's label is new: no lookup by label before the
// create (one issuer call less on the critical path before the key exists);
// one after the window, for a create that landed late. A resumed rotation
// still cleans up before its create, as TestCrashAtEveryJournalWrite checks.
func TestFreshMintSkipsOrphanLookup(t *testing.T) {
	w := newWorld(t)
	w.seed()
	iss := &countingFind{Issuer: w.iss}
	w.cred.Issuer = iss
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.Done {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	if n, all := iss.beforeCreate.Load(), iss.finds.Load(); n != 0 || all != 1 {
		t.Errorf("%d lookups by label before the create and %d in all, want 0 and 1", n, all)
	}
}

// lateCreate is an issuer behind a gateway that gave up on a create the
// server then acted on: a second key carrying the label lands after the
// create returned.
type lateCreate struct{ *apexverify.Issuer }

func (l lateCreate) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	k, v, err := l.Issuer.Create(ctx, label)
	if err == nil {
		_, _, err = l.Issuer.Create(ctx, label) // the lost request, landing late
	}
	return k, v, err
}

// I2: a key created late by a request whose answer was lost is revoked
// before the rotation ends.
func TestLateCreateIsRevokedBeforeDone(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.cred.Issuer = lateCreate{w.iss}
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.Done {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	w.invariants(rotation.Done) // exactly one active key: the one in the sink
}

// I2: a key created late is revoked by a rotation that rolls back, too.
// The soak found one such orphan (a create lost mid-flight, then health
// failed): the rollback revoked the new key but not the late one.
func TestLateCreateIsRevokedByRollback(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.cred.Issuer = lateCreate{w.iss}
	w.healthy = func() error { return errors.New("503 from app") }
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	w.invariants(rotation.RolledBack) // exactly one active key: the old one, in the sink
}

// I2: a rotation that ends failed leaves the keys it names for a person,
// and no key it cannot name: a late create is revoked.
func TestLateCreateIsRevokedWhenFailed(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	w.cred.Issuer = lateCreate{w.iss}
	w.healthy = func() error {
		// Someone revokes the old key during the window: rolling back to it
		// would be an outage, so the new key is kept and the rotation fails.
		if w.revokedOutside == nil {
			w.revokedOutside = map[string]bool{old.ID: true}
			must(t, w.iss.Revoke(context.Background(), old.ID))
		}
		return errors.New("503 from app")
	}
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.Failed {
		t.Fatalf("phase %s (%v)", out.Phase, out.Err)
	}
	rec := w.latest()
	for _, k := range w.sim.Keys() {
		if k.Label == rec.Label && k.Status == "active" && k.ID != rec.NewKeyID {
			t.Errorf("orphan %s labelled %s is active: the record names only %s", k.ID, k.Label, rec.NewKeyID)
		}
	}
}

// sharedPrefix is the ApexVerify issuer after the new key happened to get
// the old key's 3-character prefix: the old value identifies no single key
// any more, yet it still matches the old key (issuers.Matcher).
type sharedPrefix struct {
	*apexverify.Issuer
	created atomic.Bool
}

func (s *sharedPrefix) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	s.created.Store(true)
	return s.Issuer.Create(ctx, label)
}

func (s *sharedPrefix) Identify(ctx context.Context, v secret.Value) (issuers.Key, error) {
	if s.created.Load() {
		return issuers.Key{}, fmt.Errorf("2 active keys have this prefix: %w", issuers.ErrNotFound)
	}
	return s.Issuer.Identify(ctx, v)
}

// A new key that shares the old one's public prefix (about 1 in 26,000
// rotations for an account of 10 keys) does not stop the old key's
// revocation: the 10,000-credential benchmark ended one rotation failed,
// both keys left for a person, before the engine asked the issuer whether
// the old value matches the key the journal names.
func TestSharedPrefixStillRevokesOldKey(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	w.cred.Issuer = &sharedPrefix{Issuer: w.iss}
	if out := w.rotate(rotation.Options{Force: true}); out.Phase != rotation.Done {
		t.Fatalf("phase %s (%v), want done", out.Phase, out.Err)
	}
	if st := w.keyStatus(old.ID); st != issuers.Revoked {
		t.Errorf("old key %s is %s, want revoked", old.ID, st)
	}
	w.invariants(rotation.Done)
}

// A sink that an earlier process of the rotation wrote (its receipt is in
// the journal), and whose Put fails permanently when the resumed deploy
// writes it again, still holds the new key: the rollback must restore it,
// or leave the new key valid, never revoke the key it holds (I3). Found by
// the soak (seed 10000, 40 credentials): AWS Secrets Manager written, a
// SIGKILL in deploy, AccessDenied on the resumed PutSecretValue, and the
// new key revoked while AWSCURRENT held it.
func TestRollbackRestoresSinkWrittenBeforeCrash(t *testing.T) {
	for _, crashed := range []string{"after its receipt", "before its receipt"} {
		t.Run(crashed, func(t *testing.T) {
			w := newWorld(t)
			w.seed()
			old := w.seen[0]
			var denied atomic.Bool
			second := &sinktest.FakeReader{Fake: &sinktest.Fake{SinkName: "second", PutFunc: func(context.Context, secret.Value, string) error {
				if denied.Load() {
					return backoff.Permanent(errors.New("access denied"))
				}
				return nil
			}}}
			second.Set(old)
			w.cred.Sinks = append(w.cred.Sinks, second)
			// Crash at the journal write of the second sink's receipt, after
			// the write landed.
			hook := func(r *rotation.Record) error {
				if second.Puts() > 0 {
					return errCrash
				}
				return nil
			}
			h := rotation.Hooks{AfterSave: hook}
			if crashed == "before its receipt" {
				h = rotation.Hooks{BeforeSave: hook}
			}
			_, err := w.engine(h).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
			if !errors.Is(err, errCrash) {
				t.Fatalf("the crash did not stop the engine: %v", err)
			}
			if second.Value().Equal(old) {
				t.Fatal("the second sink was not written before the crash")
			}
			w.store.Close()
			w.store = w.openStore()
			denied.Store(true)
			out, err := w.engine(rotation.Hooks{}).Resume(context.Background(), w.cred)
			must(t, err)
			if err := w.iss.Verify(context.Background(), second.Value()); err != nil {
				t.Errorf("I3: the resume ended %s with the second sink holding a key that does not authenticate: %v", out.Phase, err)
			}
			if out.Phase != rotation.Failed {
				t.Errorf("phase %s (%v), want failed: the second sink holds the new key and cannot be restored", out.Phase, out.Err)
			}
		})
	}
}

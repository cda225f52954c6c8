package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/sqlite"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// world is one credential with a file sink against the simulator, plus a
// client that reads the key from the file and calls the simulator with it
// at every journal write (I3: it must never be refused).
type world struct {
	t       *testing.T
	clock   *clocktest.Auto
	sim     *apexsim.Sim
	iss     *apexverify.Issuer
	sink    *file.Sink
	path    string
	store   *sqlite.Store
	dbPath  string
	key     []byte
	logs    *observer.ObservedLogs
	log     *zap.Logger
	cred    *rotation.Credential
	healthy func() error // extra health condition; nil means healthy
	seen    []secret.Value
	mu      sync.Mutex
	events  []rotation.Event
	checks  int
	// revokedOutside holds keys the test revoked behind rekey's back:
	// refusals of those are the test's doing (rekey's own check that the
	// old key is dead among them), not an outage rekey caused.
	revokedOutside map[string]bool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, clock: clocktest.New(clockwork.NewFakeClockAt(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)))}
	w.sim = apexsim.New(apexsim.Options{Clock: w.clock})
	url, stop := w.sim.Start()
	t.Cleanup(stop)
	var err error
	w.iss, err = apexverify.New(apexverify.Config{BaseURL: url, ManagementToken: secret.New(w.sim.ManagementToken()), Timeout: 5 * time.Second}, zap.NewNop(), apexverify.WithClock(w.clock))
	must(t, err)
	dir := t.TempDir()
	w.path = filepath.Join(dir, "app.env")
	w.sink, err = file.New(file.Config{Path: w.path, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	must(t, err)
	w.dbPath = filepath.Join(dir, "state.db")
	w.key = make([]byte, 32)
	w.store = w.openStore()
	core, logs := observer.New(zap.DebugLevel)
	w.logs, w.log = logs, zap.New(core)
	w.cred = &rotation.Credential{
		Name:          "prod",
		Issuer:        w.iss,
		Sinks:         []sinks.Sink{w.sink},
		Label:         func(now time.Time, id string) string { return "prod-" + now.Format("20060102") + "-" + id },
		RotateEvery:   90 * 24 * time.Hour,
		StageTimeout:  24 * time.Hour,
		VerifyTimeout: 2 * time.Minute,
		Monitor: rotation.Monitor{
			Window: 10 * time.Minute, Interval: 30 * time.Second, FailureThreshold: 3,
			Checks: []rotation.Check{checkFunc(w.health)},
		},
	}
	return w
}

func (w *world) openStore() *sqlite.Store {
	s, err := sqlite.Open(context.Background(), w.dbPath, w.key)
	must(w.t, err)
	w.t.Cleanup(func() { s.Close() })
	return s
}

// seed mints the key in production before rekey and writes it to the file.
func (w *world) seed() issuers.Key {
	w.t.Helper()
	k, v, err := w.iss.Create(context.Background(), "prod-initial")
	must(w.t, err)
	must(w.t, os.WriteFile(w.path, []byte("OTHER=1\nAPI_KEY="+v.Reveal()+"\n"), 0o600))
	w.seen = append(w.seen, v)
	return k
}

func (w *world) engine(h rotation.Hooks) *rotation.Engine {
	return &rotation.Engine{
		Store: w.store, Clock: w.clock, Log: w.log, Hooks: h,
		Observe: func(ev rotation.Event) { w.mu.Lock(); w.events = append(w.events, ev); w.mu.Unlock() },
	}
}

// client reads the key from the file and uses it, as an app would.
func (w *world) client() error {
	v, err := w.sink.Get(context.Background())
	if errors.Is(err, sinks.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	w.remember(v)
	return w.iss.Verify(context.Background(), v)
}

func (w *world) remember(v secret.Value) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if s.Equal(v) {
			return
		}
	}
	w.seen = append(w.seen, v)
}

func (w *world) health(context.Context) error {
	w.checks++
	if err := w.client(); err != nil {
		return err
	}
	if w.healthy != nil {
		return w.healthy()
	}
	return nil
}

type checkFunc func(context.Context) error

func (f checkFunc) Check(ctx context.Context) error { return f(ctx) }

// invariants checks I1, I2, I3 and I4 against the simulator's history.
func (w *world) invariants(wantPhase rotation.Phase) {
	t := w.t
	t.Helper()
	ctx := context.Background()
	var refusals []apexsim.Refusal
	for _, r := range w.sim.Refusals() {
		if !w.revokedOutside[r.KeyID] {
			refusals = append(refusals, r)
		}
	}
	if len(refusals) > 0 {
		t.Errorf("I3: %d requests refused, first %+v", len(refusals), refusals[0])
	}
	current, err := w.sink.Get(ctx)
	must(t, err)
	if err := w.iss.Verify(ctx, current); err != nil {
		t.Errorf("I3: the key in the file does not work: %v", err)
	}
	e2etest.OnlyActive(t, w.sim, current)
	hist, err := w.store.History(ctx, "prod", 0)
	must(t, err)
	if len(hist) == 0 || hist[0].Phase != wantPhase {
		t.Fatalf("last rotation %v, want phase %s", phases(hist), wantPhase)
	}
	if wantPhase == rotation.Done {
		w.checkNeverEarly(hist[0])
	}
	w.checkNoLeak()
}

// checkNeverEarly (I1): the old key was revoked only after a full
// monitoring window that began after the last deploy.
func (w *world) checkNeverEarly(r *rotation.Record) {
	t := w.t
	t.Helper()
	var deployed, monitored, revoking time.Time
	for _, tr := range r.Transitions {
		switch tr.Phase {
		case rotation.Deployed:
			deployed = tr.At
		case rotation.Monitoring:
			monitored = tr.At
		case rotation.Revoking:
			revoking = tr.At
		}
	}
	if deployed.IsZero() || monitored.Before(deployed) || revoking.Sub(monitored) < w.cred.Monitor.Window {
		t.Errorf("I1: deployed %v, monitoring %v, revoking %v: window %v not respected", deployed, monitored, revoking, w.cred.Monitor.Window)
	}
	for _, k := range w.sim.Keys() {
		if k.ID == r.OldKeyID && (k.Status != "revoked" || k.Revoked.Before(revoking)) {
			t.Errorf("I1: old key %s status %s revoked at %v, before revoking phase at %v", k.ID, k.Status, k.Revoked, revoking)
		}
	}
}

// checkNoLeak (I4): no key value in any log line or event.
func (w *world) checkNoLeak() {
	w.t.Helper()
	var text strings.Builder
	for _, e := range w.logs.All() {
		fmt.Fprintf(&text, "%s %v\n", e.Message, e.ContextMap())
	}
	w.mu.Lock()
	for _, ev := range w.events {
		fmt.Fprintf(&text, "%+v\n", ev)
	}
	seen := append([]secret.Value(nil), w.seen...)
	w.mu.Unlock()
	if len(seen) == 0 {
		w.t.Fatal("no key values collected: the leak check would prove nothing")
	}
	for _, v := range seen {
		if strings.Contains(text.String(), v.Reveal()) {
			w.t.Errorf("I4: a key value appears in logs or events")
		}
	}
}

func phases(hist []*rotation.Record) []string {
	var out []string
	for _, r := range hist {
		out = append(out, r.ID+":"+string(r.Phase))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var errCrash = errors.New("simulated crash")

func TestRotationHappyPath(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	w.invariants(rotation.Done)
	hist, _ := w.store.History(context.Background(), "prod", 0)
	if hist[0].OldKeyID != old.ID {
		t.Errorf("adopted old key %q, want %q (by prefix)", hist[0].OldKeyID, old.ID)
	}
	if w.checks < 10 {
		t.Errorf("health checked %d times in a 10m window at 30s, want >= 10", w.checks)
	}
	b, _ := os.ReadFile(w.path)
	if !strings.HasPrefix(string(b), "OTHER=1\n") {
		t.Errorf("the file's other lines were not kept: %q", strings.Split(string(b), "\n")[0])
	}
	// A second run is not due, and changes nothing (I6).
	out, err = w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{})
	must(t, err)
	if out.Skipped == "" {
		t.Errorf("second rotation ran (%+v), want skipped: not due", out)
	}
	// The next forced rotation revokes the key the first one made.
	out, err = w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("second rotation %s: %v", out.Phase, out.Err)
	}
	w.invariants(rotation.Done)
	hist, _ = w.store.History(context.Background(), "prod", 0)
	if hist[0].OldKeyID != hist[1].NewKeyID {
		t.Errorf("second rotation replaced %q, want the first rotation's key %q", hist[0].OldKeyID, hist[1].NewKeyID)
	}
}

// TestCrashAtEveryJournalWrite stops the engine right before and right
// after each journal write of a successful and of a rolled-back rotation,
// resumes with a fresh engine and store, and checks the invariants.
func TestCrashAtEveryJournalWrite(t *testing.T) {
	for _, scenario := range []struct {
		name    string
		failing bool
		want    rotation.Phase
	}{
		{"success", false, rotation.Done},
		{"rollback", true, rotation.RolledBack},
	} {
		// Count the journal writes of an uninterrupted run first.
		w := newWorld(t)
		w.seed()
		if scenario.failing {
			w.healthy = func() error { return errors.New("app unhealthy") }
		}
		saves := 0
		_, err := w.engine(rotation.Hooks{AfterSave: func(*rotation.Record) error { saves++; return nil }}).
			Rotate(context.Background(), w.cred, rotation.Options{Force: true})
		must(t, err)
		w.invariants(scenario.want)
		if saves < 7 {
			t.Fatalf("%s: only %d journal writes", scenario.name, saves)
		}
		for i := 1; i <= saves; i++ {
			for _, when := range []string{"before", "after"} {
				t.Run(fmt.Sprintf("%s/%s-write-%d", scenario.name, when, i), func(t *testing.T) {
					w := newWorld(t)
					w.seed()
					if scenario.failing {
						w.healthy = func() error { return errors.New("app unhealthy") }
					}
					n := 0
					var at rotation.Phase
					hook := func(r *rotation.Record) error {
						if err := w.client(); err != nil {
							t.Errorf("I3 at journal write %d (%s): client refused: %v", n, r.Phase, err)
						}
						n++
						if n == i {
							at = r.Phase
							return errCrash
						}
						return nil
					}
					h := rotation.Hooks{AfterSave: hook}
					if when == "before" {
						h = rotation.Hooks{BeforeSave: hook}
					}
					_, err := w.engine(h).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
					if !errors.Is(err, errCrash) {
						t.Fatalf("crash at write %d did not stop the engine: %v", i, err)
					}
					// Restart: a new store handle and engine, as a new process.
					w.store.Close()
					w.store = w.openStore()
					// Resume twice (I6): the second must change nothing.
					for range 2 {
						out, err := w.engine(rotation.Hooks{}).Resume(context.Background(), w.cred)
						must(t, err)
						if out.RotationID != "" && out.Phase != scenario.want && !(at == rotation.Planned && when == "before") {
							t.Fatalf("resumed to %s (%v), want %s", out.Phase, out.Err, scenario.want)
						}
					}
					hist, err := w.store.History(context.Background(), "prod", 0)
					must(t, err)
					if len(hist) == 0 {
						// Crashed before the first journal write: nothing
						// happened, and nothing must exist at the issuer.
						if got := w.sim.ActiveCount(); got != 1 {
							t.Fatalf("crash before planning left %d active keys", got)
						}
						return
					}
					w.invariants(scenario.want)
				})
			}
		}
	}
}

func TestRollbackOnFailingHealth(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	before, _ := os.ReadFile(w.path)
	w.healthy = func() error { return errors.New("503 from app") }
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.RolledBack || out.Err == nil {
		t.Fatalf("phase %s err %v, want rolled_back with the cause", out.Phase, out.Err)
	}
	after, _ := os.ReadFile(w.path)
	if string(after) != string(before) {
		t.Errorf("file not restored byte for byte")
	}
	for _, k := range w.sim.Keys() {
		switch {
		case k.ID == old.ID && k.Status != "active":
			t.Errorf("old key %s is %s after rollback", k.ID, k.Status)
		case k.ID != old.ID && k.Status != "revoked":
			t.Errorf("new key %s is %s after rollback", k.ID, k.Status)
		}
	}
	w.invariants(rotation.RolledBack)
	// The credential now backs off: not due without --force.
	due, err := w.engine(rotation.Hooks{}).Due(context.Background(), w.cred)
	must(t, err)
	if due.Due || due.Failures != 1 || !due.At.After(w.clock.Now()) {
		t.Errorf("after a rollback: %+v, want backing off", due)
	}
}

func TestAdoptUnknownKeyRevokesNothing(t *testing.T) {
	w := newWorld(t)
	w.seed()
	// The file holds a key this issuer does not know.
	foreign := secret.New("avk_live_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ")
	must(t, os.WriteFile(w.path, []byte("API_KEY="+foreign.Reveal()+"\n"), 0o600))
	w.seen = append(w.seen, foreign)
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	revoked := 0
	for _, k := range w.sim.Keys() {
		if k.Status == "revoked" {
			revoked++
		}
	}
	if revoked != 0 {
		t.Errorf("%d keys revoked, want none: the old key was never identified", revoked)
	}
	warned := false
	for _, ev := range w.events {
		warned = warned || strings.Contains(ev.Msg, "will not be revoked")
	}
	said := false
	for _, ev := range w.events {
		if strings.Contains(ev.Msg, "never identified") {
			said = true
			if !strings.Contains(ev.Msg, "revoked nothing") || strings.Contains(ev.Msg, "I7") {
				t.Errorf("the warning names an invariant code instead of what happened: %q", ev.Msg)
			}
		}
	}
	if !said {
		t.Error("no warning at revoking that the old key was never identified")
	}
	if !warned {
		t.Errorf("no warning that the old key will not be revoked")
	}
	w.checkNoLeak()
}

func TestVerifyWaitsForSlowActivation(t *testing.T) {
	w := newWorld(t)
	w.seed()
	w.sim.SetActivationDelay(20 * time.Second)
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	// The engine's own verify calls were refused while the key activated;
	// no client ever saw the new key before it worked.
	for _, r := range w.sim.Refusals() {
		if r.Reason != apexsim.RefusedNotYetActive {
			t.Errorf("refusal %+v", r)
		}
	}
	current, _ := w.sink.Get(context.Background())
	must(t, w.iss.Verify(context.Background(), current))
}

func TestKeyLimitRollsBackWithoutTouchingSinks(t *testing.T) {
	w := newWorld(t)
	w.seed()
	before, _ := os.ReadFile(w.path)
	w.sim.SetMaxActiveKeys(1)
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.RolledBack || !strings.Contains(out.Err.Error(), "limit") {
		t.Fatalf("phase %s err %v, want rolled_back naming the key limit", out.Phase, out.Err)
	}
	after, _ := os.ReadFile(w.path)
	if string(before) != string(after) {
		t.Errorf("sink changed although no key was minted")
	}
	w.invariants(rotation.RolledBack)
}

func TestStageThenFinish(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	ctx := context.Background()
	out, err := w.engine(rotation.Hooks{}).Rotate(ctx, w.cred, rotation.Options{Force: true, Stage: true})
	must(t, err)
	if out.Phase != rotation.Deployed {
		t.Fatalf("staged rotation ended %s, want deployed", out.Phase)
	}
	if k, _ := w.iss.Get(ctx, old.ID); k.Status != issuers.Active {
		t.Fatalf("old key %s after --stage, want active", k.Status)
	}
	cur, _ := w.sink.Get(ctx)
	if apexverify.Prefix(cur) == old.Prefix {
		t.Fatalf("--stage did not put the new key live")
	}
	// A plain run leaves the staged rotation alone until its timeout.
	out, err = w.engine(rotation.Hooks{}).Resume(ctx, w.cred)
	must(t, err)
	if out.Phase != rotation.Deployed {
		t.Fatalf("resume of a fresh staged rotation: %s, want still deployed", out.Phase)
	}
	out, err = w.engine(rotation.Hooks{}).Rotate(ctx, w.cred, rotation.Options{Finish: true})
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("--finish ended %s: %v", out.Phase, out.Err)
	}
	w.invariants(rotation.Done)
}

func TestStageTimeoutFinishesWithNormalMonitoring(t *testing.T) {
	w := newWorld(t)
	w.seed()
	ctx := context.Background()
	_, err := w.engine(rotation.Hooks{}).Rotate(ctx, w.cred, rotation.Options{Force: true, Stage: true})
	must(t, err)
	w.clock.Advance(25 * time.Hour)
	out, err := w.engine(rotation.Hooks{}).Resume(ctx, w.cred)
	must(t, err)
	if out.Phase != rotation.Done {
		t.Fatalf("after the stage timeout: %s, want done", out.Phase)
	}
	w.invariants(rotation.Done)
}

func TestFinishWithoutStage(t *testing.T) {
	w := newWorld(t)
	w.seed()
	_, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Finish: true})
	if !errors.Is(err, rotation.ErrNotStaged) {
		t.Fatalf("err %v, want ErrNotStaged", err)
	}
}

func TestDrainWaitsForOldKeyIdle(t *testing.T) {
	w := newWorld(t)
	old := w.seed()
	w.cred.Drain = &rotation.Drain{IdleFor: 15 * time.Minute, MaxWait: 24 * time.Hour}
	var revokedAfterIdle bool
	// The old key was used just now; drain must wait ~15 minutes.
	oldValue := w.seen[0]
	must(t, w.iss.Verify(context.Background(), oldValue))
	used := w.clock.Now()
	e := w.engine(rotation.Hooks{AfterSave: func(r *rotation.Record) error {
		if r.Phase == rotation.Revoking {
			revokedAfterIdle = w.clock.Now().Sub(used) >= 15*time.Minute
		}
		return nil
	}})
	out, err := e.Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(t, err)
	if out.Phase != rotation.Done || !revokedAfterIdle {
		t.Fatalf("phase %s, revoked after idle %v", out.Phase, revokedAfterIdle)
	}
	if k, _ := w.iss.Get(context.Background(), old.ID); k.Status != issuers.Revoked {
		t.Errorf("old key %s", k.Status)
	}
}

func TestSecondRotationOfSameCredentialIsBusy(t *testing.T) {
	w := newWorld(t)
	w.seed()
	unlock, err := w.store.Lock(context.Background(), "prod")
	must(t, err)
	defer unlock()
	_, err = w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	if !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("err %v, want ErrBusy", err)
	}
}

package rotation_test

// Multi-field credentials through the engine: a fake issuer whose keys are
// pairs (the simulator's key as "secret", its ID as "id"), written to two
// file sinks that map both fields.

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/issuertest"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/ghactions"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
)

// pairIssuer turns the simulator's keys into two-field values.
type pairIssuer struct{ *apexverify.Issuer }

var (
	_ issuers.Issuer     = pairIssuer{}
	_ issuers.Identifier = pairIssuer{}
	_ issuers.Fielded    = pairIssuer{}
)

func (pairIssuer) Fields() []string { return []string{"id", "secret"} }

// pairOf makes the pair of a simulator key: its "id" names the key, as an
// AWS access key ID does, without being the issuer's key ID (which rekey
// logs; a field value must never appear).
func pairOf(k issuers.Key, v secret.Value) secret.Value {
	return secret.NewFields(map[string]string{"id": accessKeyID(k.ID), "secret": v.Reveal()})
}

func accessKeyID(keyID string) string { return "AKID-" + keyID }

func (p pairIssuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	k, v, err := p.Issuer.Create(ctx, label)
	if err != nil {
		return k, secret.Value{}, err
	}
	return k, pairOf(k, v), nil
}

func (p pairIssuer) Verify(ctx context.Context, v secret.Value) error {
	if !v.IsFields() {
		return issuers.ErrUnauthorized
	}
	return p.Issuer.Verify(ctx, v.Field("secret"))
}

// Identify needs the whole value: the secret names the key, and the id
// must agree with it.
func (p pairIssuer) Identify(ctx context.Context, v secret.Value) (issuers.Key, error) {
	k, err := p.Issuer.Identify(ctx, v.Field("secret"))
	if err != nil {
		return k, err
	}
	if accessKeyID(k.ID) != v.Field("id").Reveal() {
		return issuers.Key{}, issuers.ErrNotFound
	}
	return k, nil
}

type pairWorld struct {
	*world
	pi        pairIssuer
	env, js   *file.Sink
	jsonPath  string
	unhealthy bool
	onCheck   func(n int) // called at every health check, numbered from 1
}

func newPairWorld(t *testing.T) *pairWorld {
	t.Helper()
	w := &pairWorld{world: newWorld(t)}
	w.pi = pairIssuer{w.iss}
	var err error
	w.env, err = file.New(file.Config{Path: w.path, Fields: map[string]string{"id": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"}}, zap.NewNop())
	must(t, err)
	w.jsonPath = filepath.Join(filepath.Dir(w.path), "app.json")
	w.js, err = file.New(file.Config{Path: w.jsonPath, Format: file.FormatJSON, Fields: map[string]string{"id": "access_key_id", "secret": "secret_access_key"}}, zap.NewNop())
	must(t, err)
	w.cred.Issuer = w.pi
	w.cred.Sinks = []sinks.Sink{w.env, w.js}
	checks := 0
	w.cred.Monitor.Checks = []rotation.Check{checkFunc(func(ctx context.Context) error {
		checks++
		if w.onCheck != nil {
			w.onCheck(checks)
		}
		// The app reads the pair from the env file and uses it (I3).
		if v, err := w.env.Get(ctx); err == nil {
			w.rememberPair(v)
			if err := w.pi.Verify(ctx, v); err != nil {
				return err
			}
		}
		if w.unhealthy {
			return errors.New("503 from app")
		}
		return nil
	})}
	return w
}

func (w *pairWorld) rememberPair(v secret.Value) {
	for _, p := range secret.Parts(v) {
		w.remember(p)
	}
}

// seed mints the pair in production before rekey and writes it to both
// files, next to lines rekey must keep.
func (w *pairWorld) seed() (issuers.Key, secret.Value) {
	w.t.Helper()
	k, v, err := w.pi.Create(context.Background(), "prod-initial")
	must(w.t, err)
	w.writeEnv("OTHER=1\nAWS_ACCESS_KEY_ID=" + v.Field("id").Reveal() + "\nAWS_SECRET_ACCESS_KEY=" + v.Field("secret").Reveal() + "\n")
	must(w.t, os.WriteFile(w.jsonPath, []byte(`{"region": "eu-west-1", "access_key_id": "`+v.Field("id").Reveal()+`", "secret_access_key": "`+v.Field("secret").Reveal()+`"}`+"\n"), 0o600))
	w.rememberPair(v)
	return k, v
}

func (w *pairWorld) writeEnv(s string) { must(w.t, os.WriteFile(w.path, []byte(s), 0o600)) }

func (w *pairWorld) rotate() (rotation.Outcome, *rotation.Record) {
	w.t.Helper()
	out, err := w.engine(rotation.Hooks{}).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
	must(w.t, err)
	hist, err := w.store.History(context.Background(), "prod", 0)
	must(w.t, err)
	if len(hist) == 0 {
		w.t.Fatal("no rotation journaled")
	}
	w.rememberPair(hist[0].NewValue)
	return out, hist[0]
}

// holds fails unless every sink holds want, every field of it.
func (w *pairWorld) holds(want secret.Value, what string) {
	w.t.Helper()
	for _, s := range []*file.Sink{w.env, w.js} {
		got, err := s.Get(context.Background())
		if err != nil {
			w.t.Errorf("%s: Get: %v", s.Name(), err)
			continue
		}
		if !got.Equal(want) {
			w.t.Errorf("%s holds %s, want %s (%s)", s.Name(), got.Fingerprint(), want.Fingerprint(), what)
		}
	}
}

func (w *pairWorld) keyStatus(id string) string {
	for _, k := range w.sim.Keys() {
		if k.ID == id {
			return k.Status
		}
	}
	return "missing"
}

func TestPairRotationWritesEveryField(t *testing.T) {
	w := newPairWorld(t)
	old, oldV := w.seed()
	out, rec := w.rotate()
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	// Adoption (I7) identified the old pair by its whole value.
	if rec.OldKeyID != old.ID || !rec.OldValue.Equal(oldV) {
		t.Errorf("adopted key %q (value %s), want %s (%s)", rec.OldKeyID, rec.OldValue.Fingerprint(), old.ID, oldV.Fingerprint())
	}
	if !rec.NewValue.IsFields() || rec.NewValue.Field("id").Reveal() != accessKeyID(rec.NewKeyID) {
		t.Fatalf("journaled new value is not the issuer's pair (fields %v)", rec.NewValue.FieldNames())
	}
	w.holds(rec.NewValue, "after the rotation")
	if err := w.pi.Verify(context.Background(), rec.NewValue); err != nil {
		t.Errorf("the new pair does not authenticate: %v", err)
	}
	if st := w.keyStatus(old.ID); st != "revoked" {
		t.Errorf("old key is %s, want revoked", st)
	}
	data, _ := os.ReadFile(w.path)
	if !strings.HasPrefix(string(data), "OTHER=1\n") || strings.Count(string(data), "\n") != 3 {
		t.Errorf("env file lost or grew lines: %d lines", strings.Count(string(data), "\n"))
	}
	w.checkNoLeak()
}

func TestPairRollbackRestoresEveryField(t *testing.T) {
	w := newPairWorld(t)
	old, oldV := w.seed()
	envBefore, _ := os.ReadFile(w.path)
	jsonBefore, _ := os.ReadFile(w.jsonPath)
	w.unhealthy = true
	out, rec := w.rotate()
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s: %v, want rolled_back", out.Phase, out.Err)
	}
	w.holds(oldV, "after the rollback")
	envAfter, _ := os.ReadFile(w.path)
	jsonAfter, _ := os.ReadFile(w.jsonPath)
	if string(envAfter) != string(envBefore) || string(jsonAfter) != string(jsonBefore) {
		t.Errorf("files not restored byte for byte")
	}
	if st := w.keyStatus(old.ID); st != "active" {
		t.Errorf("old key is %s after rollback, want active", st)
	}
	if st := w.keyStatus(rec.NewKeyID); st != "revoked" {
		t.Errorf("new key is %s after rollback, want revoked", st)
	}
	w.checkNoLeak()
}

// A sink holding half a pair identifies nothing: the key is adopted from
// the sink that holds it whole, and the deploy repairs the half one.
func TestPairPartialSinkIsRepaired(t *testing.T) {
	w := newPairWorld(t)
	old, oldV := w.seed()
	// The JSON file, read first, lost its secret.
	w.cred.Sinks = []sinks.Sink{w.js, w.env}
	must(t, os.WriteFile(w.jsonPath, []byte(`{"access_key_id": "`+oldV.Field("id").Reveal()+`"}`), 0o600))
	if _, err := w.js.Get(context.Background()); !errors.Is(err, sinks.ErrPartial) {
		t.Fatalf("test premise: the JSON sink should hold a partial pair, got %v", err)
	}
	out, rec := w.rotate()
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	if rec.OldKeyID != old.ID {
		t.Errorf("adopted %q, want %s from the env file", rec.OldKeyID, old.ID)
	}
	w.holds(rec.NewValue, "after the rotation")
	w.checkNoLeak()
}

// With only half a pair anywhere, nothing is known to revoke.
func TestPairOnlyPartialSinksRevokeNothing(t *testing.T) {
	w := newPairWorld(t)
	old, oldV := w.seed()
	w.cred.Sinks = []sinks.Sink{w.env}
	w.writeEnv("AWS_ACCESS_KEY_ID=" + oldV.Field("id").Reveal() + "\n")
	out, rec := w.rotate()
	if out.Phase != rotation.Done {
		t.Fatalf("phase %s: %v", out.Phase, out.Err)
	}
	if rec.OldKeyID != "" {
		t.Errorf("adopted %q from half a pair", rec.OldKeyID)
	}
	if st := w.keyStatus(old.ID); st != "active" {
		t.Errorf("old key is %s, want active: half a pair must not get it revoked", st)
	}
	got, err := w.env.Get(context.Background())
	if err != nil || !got.Equal(rec.NewValue) {
		t.Errorf("env file holds %s (%v), want the new pair", got.Fingerprint(), err)
	}
	found := false
	for _, ev := range w.events {
		found = found || strings.Contains(ev.Msg, "holds only some of the key's fields")
	}
	if !found {
		t.Errorf("no event says the sink held only some of the key's fields")
	}
	w.checkNoLeak()
}

// Before revoking, the read-back finds one field of the env file put back
// to the old secret (the id still new), or removed: that is not the new
// key, so it is deployed again and the window rerun, and only then is the
// old key revoked.
func TestPairReadBackSeesOneFieldReverted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(old secret.Value, line string) (string, bool) // the new line, and whether to keep it
	}{
		{"reverted to the old secret", func(old secret.Value, l string) (string, bool) {
			return "AWS_SECRET_ACCESS_KEY=" + old.Field("secret").Reveal(), true
		}},
		{"removed", func(secret.Value, string) (string, bool) { return "", false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newPairWorld(t)
			old, oldV := w.seed()
			reverted := false
			w.onCheck = func(n int) {
				if reverted || n < 3 {
					return
				}
				reverted = true
				data, err := os.ReadFile(w.path)
				must(t, err)
				var lines []string
				for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
					if strings.HasPrefix(l, "AWS_SECRET_ACCESS_KEY=") {
						var keep bool
						if l, keep = tc.change(oldV, l); !keep {
							continue
						}
					}
					lines = append(lines, l)
				}
				w.writeEnv(strings.Join(lines, "\n") + "\n")
			}
			out, rec := w.rotate()
			if !reverted {
				t.Fatal("test premise: the field was never changed")
			}
			if out.Phase != rotation.Done {
				t.Fatalf("phase %s: %v", out.Phase, out.Err)
			}
			if rec.Reverts != 1 {
				t.Errorf("Reverts = %d, want 1: the half-changed pair must count as reverted", rec.Reverts)
			}
			w.holds(rec.NewValue, "after the redeploy")
			if st := w.keyStatus(old.ID); st != "revoked" {
				t.Errorf("old key is %s, want revoked after the redeploy and a second window", st)
			}
			w.checkNoLeak()
		})
	}
}

// GitHub writes one secret at a time. When the pair's second secret keeps
// failing during the deploy, the first already holds the new id: the
// engine must roll the GitHub sink back (a Put of the whole old pair), so
// that no sink is left holding half of the new pair.
func TestPairGitHubPartialWriteIsRolledBack(t *testing.T) {
	w := newPairWorld(t)
	old, oldV := w.seed()
	gh := ghtest.New(t, ghtest.WithClock(w.clock))
	gh.AddRepo("acme/crm")
	scope := ghtest.RepoScope("acme/crm")
	gh.SetSecret(scope, "AWS_ACCESS_KEY_ID", oldV.Field("id").Reveal())
	gh.SetSecret(scope, "AWS_SECRET_ACCESS_KEY", oldV.Field("secret").Reveal())
	tok := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tok, []byte(gh.Token()), 0o600))
	ghs, err := ghactions.New(ghactions.Config{
		Repository: "acme/crm", BaseURL: gh.URL + "/", Token: config.Secret{Ref: "file:" + tok},
		Fields: map[string]string{"id": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"},
	}, zap.NewNop(), ghactions.WithClock(w.clock))
	must(t, err)
	w.cred.Sinks = []sinks.Sink{w.env, ghs}
	w.clock.Advance(2 * time.Second) // GitHub's updated_at has whole seconds
	// Every deploy attempt is refused on the second secret (a permission
	// missing for it, which alone would be a permanent error); the rollback's
	// writes go through.
	gh.FailPuts("AWS_SECRET_ACCESS_KEY", http.StatusForbidden, 3)

	out, rec := w.rotate()
	if out.Phase != rotation.RolledBack {
		t.Fatalf("phase %s: %v, want rolled_back", out.Phase, out.Err)
	}
	if slices.Contains(rec.Untouched, ghs.Name()) {
		t.Errorf("the GitHub sink was taken as untouched, though its first secret was written")
	}
	for f, name := range map[string]string{"id": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"} {
		if got, _ := gh.Plaintext(scope, name); got != oldV.Field(f).Reveal() {
			t.Errorf("GitHub secret %s does not hold the old %s after the rollback", name, f)
		}
	}
	got, err := w.env.Get(context.Background())
	if err != nil || !got.Equal(oldV) {
		t.Errorf("env file holds %s (%v), want the old pair", got.Fingerprint(), err)
	}
	if st := w.keyStatus(old.ID); st != "active" {
		t.Errorf("old key is %s, want active", st)
	}
	if st := w.keyStatus(rec.NewKeyID); st != "revoked" {
		t.Errorf("new key is %s, want revoked", st)
	}
	w.checkNoLeak()
}

// The fake pair issuer meets the issuer contract, Fielded check included,
// so the engine tests above run against a faithful issuer.
func TestPairIssuerContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Fixture {
		w := newWorld(t)
		return issuertest.Fixture{Issuer: pairIssuer{w.iss}, ActiveCount: w.sim.ActiveCount, Advance: w.clock.Advance}
	})
}

package ghactions

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

// pairSecrets maps the pair to two secrets; AWS_ACCESS_KEY_ID sorts
// first by field name ("id" < "secret"), so it is written first.
var pairSecrets = map[string]string{sinktest.FieldID: "AWS_ACCESS_KEY_ID", sinktest.FieldSecret: "AWS_SECRET_ACCESS_KEY"}

func TestFieldsContract(t *testing.T) {
	scope := ghtest.RepoScope("acme/crm")
	sinktest.RunFields(t, func(t *testing.T) sinktest.FieldsFixture {
		e := newEnv(t)
		e.srv.AddRepo("acme/crm")
		s := e.sink(t, Config{Repository: "acme/crm", Fields: pairSecrets})
		if want := "github-actions:" + scope + "/AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"; s.Name() != want {
			t.Fatalf("Name() = %q, want %q", s.Name(), want)
		}
		return sinktest.FieldsFixture{
			Sink: s,
			Peek: func(t *testing.T) map[string]string {
				out := map[string]string{}
				for f, name := range pairSecrets {
					if v, ok := e.srv.Plaintext(scope, name); ok {
						out[f] = v
					}
				}
				return out
			},
			Seed: func(t *testing.T, fields map[string]string) {
				for f, v := range fields {
					e.srv.SetSecret(scope, pairSecrets[f], v)
				}
			},
		}
	})
}

// TestFieldsPartialWriteIsRolledBack: the second secret's PUT fails after
// the first landed. Put must say so with an error that is not permanent (a
// permanent one tells the engine nothing changed, and it would skip the
// sink's rollback); the engine's rollback, a Put of the old value, then
// rewrites both secrets, so no half-new pair is left.
func TestFieldsPartialWriteIsRolledBack(t *testing.T) {
	ctx := context.Background()
	scope := ghtest.RepoScope("acme/crm")
	for _, status := range []int{http.StatusForbidden, http.StatusBadGateway} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddRepo("acme/crm")
			old := sinktest.PairValue(t, "old")
			for f, v := range mustFields(old) {
				e.srv.SetSecret(scope, pairSecrets[f], v)
			}
			e.clock.Advance(2 * time.Second)
			s := e.sink(t, Config{Repository: "acme/crm", Fields: pairSecrets})

			e.srv.FailPuts("AWS_SECRET_ACCESS_KEY", status, 1)
			newV := sinktest.PairValue(t, "new")
			_, err := s.Put(ctx, newV, "rot-1")
			if err == nil {
				t.Fatal("Put succeeded though the second secret's PUT failed")
			}
			var perm *backoff.PermanentError
			if errors.As(err, &perm) {
				t.Errorf("the error is permanent, so the engine would skip rolling back the secret that was written: %v", err)
			}
			if !strings.Contains(err.Error(), "wrote AWS_ACCESS_KEY_ID but not AWS_SECRET_ACCESS_KEY") {
				t.Errorf("error does not say which secrets were written: %v", err)
			}
			sinktest.AssertNoLeak(t, err.Error(), old, newV)
			if got, _ := e.srv.Plaintext(scope, "AWS_ACCESS_KEY_ID"); got != newV.Field("id").Reveal() {
				t.Fatalf("test premise: the first secret should hold the new id")
			}

			// The engine's rollback: a Put of the journaled old value.
			e.clock.Advance(2 * time.Second)
			r, err := s.Put(ctx, old, "rot-1.rollback")
			if err != nil {
				t.Fatalf("rollback Put: %v", err)
			}
			for f, want := range mustFields(old) {
				if got, _ := e.srv.Plaintext(scope, pairSecrets[f]); got != want {
					t.Errorf("after rollback %s does not hold the old %s", pairSecrets[f], f)
				}
			}
			if err := s.Confirm(ctx, r); err != nil {
				t.Errorf("Confirm of the rollback write: %v", err)
			}
		})
	}
}

// TestFieldsFirstWriteFailingChangedNothing: a permanent failure of the
// first secret's PUT is permanent: nothing was written.
func TestFieldsFirstWriteFailingChangedNothing(t *testing.T) {
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	s := e.sink(t, Config{Repository: "acme/crm", Fields: pairSecrets})
	e.srv.FailPuts("AWS_ACCESS_KEY_ID", http.StatusForbidden, 1)
	_, err := s.Put(context.Background(), sinktest.PairValue(t, "v"), "rot-1")
	var perm *backoff.PermanentError
	if !errors.As(err, &perm) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if n := e.srv.Count("PUT", "/repos/acme/crm/actions/secrets/AWS_SECRET_ACCESS_KEY"); n != 0 {
		t.Errorf("the second secret was written %d times after the first failed", n)
	}
}

// TestFieldsConfirmChecksEverySecret: a write of the pair is confirmed
// only when every secret's updated_at moved.
func TestFieldsConfirmChecksEverySecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.srv.AddRepo("acme/crm")
	s := e.sink(t, Config{Repository: "acme/crm", Fields: pairSecrets})
	v := sinktest.PairValue(t, "v")
	e.srv.SetSecret(ghtest.RepoScope("acme/crm"), "AWS_SECRET_ACCESS_KEY", "seeded-before")
	e.clock.Advance(2 * time.Second)
	e.srv.DropWrites(true)
	r, err := s.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(r.Previous, "=") != 2 || !strings.Contains(r.Previous, "AWS_SECRET_ACCESS_KEY=") {
		t.Errorf("receipt Previous %q does not record each secret's updated_at", r.Previous)
	}
	sinktest.AssertNoLeak(t, r.Previous, v)
	if err := s.Confirm(ctx, r); err == nil {
		t.Errorf("Confirm passed although no write landed")
	}
}

func mustFields(v secret.Value) map[string]string {
	fs, _ := v.Fields()
	out := map[string]string{}
	for k, f := range fs {
		out[k] = f.Reveal()
	}
	return out
}

var _ sinks.Confirmer = (*Sink)(nil)

// Package sinktest is the contract every sinks.Sink must meet. Each back-end
// runs it against the real thing where it can (a real Vault core, a file
// system) or a protocol-faithful server, with Peek and Seed reaching the
// back-end directly, so the suite never trusts the sink's own view of what
// it wrote.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Fixture is one sink over one fresh, empty back-end.
type Fixture struct {
	Sink sinks.Sink
	// Peek returns the value the back-end holds now, read without the
	// sink; ok is false when it holds none.
	Peek func(t *testing.T) (value string, ok bool)
	// Seed stores value in the back-end without the sink, as an operator
	// would have before rekey's first rotation.
	Seed func(t *testing.T, value string)
}

// Run runs the contract against fixtures made by newFixture, one per subtest.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	ctx := context.Background()
	v0, v1, v2 := Value(t, "v0"), Value(t, "v1"), Value(t, "v2")

	t.Run("PutIntoEmpty", func(t *testing.T) {
		f := newFixture(t)
		r := put(t, f.Sink, v1, "rot-1")
		if !r.Created {
			t.Errorf("receipt.Created = false for a put into an empty back-end")
		}
		if r.Sink != f.Sink.Name() || r.RotationID != "rot-1" {
			t.Errorf("receipt names sink %q rotation %q, want %q %q", r.Sink, r.RotationID, f.Sink.Name(), "rot-1")
		}
		if r.At.IsZero() {
			t.Errorf("receipt.At is zero")
		}
		mustHold(t, f, v1)
	})

	t.Run("PutReplacesSeeded", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, v0.Reveal())
		r := put(t, f.Sink, v1, "rot-1")
		if r.Created {
			t.Errorf("receipt.Created = true, but the back-end held a value")
		}
		mustHold(t, f, v1)
	})

	t.Run("PutIsIdempotentPerRotation", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, v0.Reveal())
		first := put(t, f.Sink, v1, "rot-1")
		again := put(t, f.Sink, v1, "rot-1")
		if first.Version != again.Version || first.Previous != again.Previous || first.Created != again.Created {
			t.Errorf("repeated put returned a different receipt:\n first %+v\n again %+v", first, again)
		}
		mustHold(t, f, v1)
	})

	t.Run("SecondRotationReplacesFirst", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.Sink, v1, "rot-1")
		r := put(t, f.Sink, v2, "rot-2")
		if r.Created {
			t.Errorf("receipt.Created = true on the second rotation")
		}
		mustHold(t, f, v2)
	})

	t.Run("GetEmpty", func(t *testing.T) {
		f := newFixture(t)
		rd, ok := f.Sink.(sinks.Reader)
		if !ok {
			t.Skip("write-only sink: no Get to check")
		}
		if _, err := rd.Get(ctx); !errors.Is(err, sinks.ErrNotFound) {
			t.Errorf("Get on an empty back-end: err = %v, want sinks.ErrNotFound", err)
		}
	})

	t.Run("Confirm", func(t *testing.T) {
		f := newFixture(t)
		c, ok := f.Sink.(sinks.Confirmer)
		if !ok {
			t.Skip("sink is not a Confirmer")
		}
		r := put(t, f.Sink, v1, "rot-1")
		if err := c.Confirm(ctx, r); err != nil {
			t.Fatalf("Confirm after a put: %v", err)
		}
	})

	t.Run("Rollback", func(t *testing.T) {
		f := newFixture(t)
		rb, ok := f.Sink.(sinks.Rollbacker)
		if !ok {
			t.Skip("sink is not a Rollbacker: the engine rolls it back with a put of the journaled old value")
		}
		f.Seed(t, v0.Reveal())
		put(t, f.Sink, v1, "rot-1")
		r := put(t, f.Sink, v2, "rot-2")
		for i := 0; i < 2; i++ { // the second call proves idempotency
			if err := rb.Rollback(ctx, r); err != nil {
				t.Fatalf("Rollback #%d: %v", i+1, err)
			}
			mustHold(t, f, v1)
		}
	})

	t.Run("RollbackByPutOfOldValue", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, v0.Reveal())
		put(t, f.Sink, v1, "rot-1")
		put(t, f.Sink, v0, "rot-1.rollback")
		mustHold(t, f, v0)
		put(t, f.Sink, v1, "rot-2")
		mustHold(t, f, v1)
	})

	t.Run("ErrorsNeverHoldTheValue", func(t *testing.T) {
		f := newFixture(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := f.Sink.Put(cctx, v1, "rot-1")
		if err != nil {
			AssertNoLeak(t, err.Error(), v1)
		}
		AssertNoLeak(t, f.Sink.Name(), v1)
		AssertNoLeak(t, fmt.Sprintf("%v %+v %#v", f.Sink, f.Sink, f.Sink), v1)
	})
}

// Value returns a distinct, realistic key value for a test.
func Value(t *testing.T, tag string) secret.Value {
	t.Helper()
	name := strings.NewReplacer("/", "", " ", "", "#", "").Replace(t.Name() + tag)
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte("avk_live_")
	for i := 0; len(b) < 49; i++ {
		h := 0
		for _, c := range name {
			h = h*31 + int(c) + i
		}
		if h < 0 {
			h = -h
		}
		b = append(b, base62[h%62])
	}
	return secret.New(string(b))
}

// AssertNoLeak fails the test if text contains any of the values.
func AssertNoLeak(t *testing.T, text string, values ...secret.Value) {
	t.Helper()
	for _, v := range secret.Parts(values...) {
		if !v.IsZero() && strings.Contains(text, v.Reveal()) {
			t.Errorf("key value leaked into %q", strings.ReplaceAll(text, v.Reveal(), "<THE KEY>"))
		}
	}
}

func put(t *testing.T, s sinks.Sink, v secret.Value, rotationID string) sinks.Receipt {
	t.Helper()
	r, err := s.Put(context.Background(), v, rotationID)
	if err != nil {
		AssertNoLeak(t, err.Error(), v)
		t.Fatalf("Put(%s): %v", rotationID, err)
	}
	return r
}

func mustHold(t *testing.T, f Fixture, want secret.Value) {
	t.Helper()
	got, ok := f.Peek(t)
	if !ok || got != want.Reveal() {
		t.Fatalf("back-end holds %s (present %v), want %s", describe(got), ok, want.Fingerprint())
	}
	if rd, isReader := f.Sink.(sinks.Reader); isReader {
		v, err := rd.Get(context.Background())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !v.Equal(want) {
			t.Fatalf("Get returned %s, want %s", v.Fingerprint(), want.Fingerprint())
		}
	}
}

func describe(s string) string {
	if s == "" {
		return "nothing"
	}
	return secret.New(s).Fingerprint()
}

package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// The credential fields a FieldsFixture's sink maps, each to a place of
// the fixture's choosing.
const (
	FieldID     = "id"
	FieldSecret = "secret"
)

// FieldsFixture is one sink that maps the fields FieldID and FieldSecret
// (sinks.Fields), over one fresh, empty back-end.
type FieldsFixture struct {
	Sink sinks.Sink
	// Peek returns what the back-end's places hold now, by field name,
	// read without the sink; a place that holds nothing is left out.
	Peek func(t *testing.T) map[string]string
	// Seed stores the given fields in their places without the sink, as an
	// operator would have; fields left out are not written, so a Seed of
	// one field makes a partial pair.
	Seed func(t *testing.T, fields map[string]string)
}

// PairValue returns a distinct, realistic two-field value for a test.
func PairValue(t *testing.T, tag string) secret.Value {
	t.Helper()
	return secret.NewFields(map[string]string{
		FieldID:     "AKIA" + strings.ToUpper(Value(t, tag+"id").Reveal()[9:25]),
		FieldSecret: Value(t, tag+"secret").Reveal(),
	})
}

func raw(v secret.Value) map[string]string {
	fs, _ := v.Fields()
	out := make(map[string]string, len(fs))
	for k, f := range fs {
		out[k] = f.Reveal()
	}
	return out
}

// RunFields runs the multi-field contract against fixtures made by
// newFixture, one per subtest: every field lands in its place in one Put,
// Get joins them, a partial pair is told apart from an empty sink, and a
// value whose fields do not match the mapping is refused without a write.
func RunFields(t *testing.T, newFixture func(t *testing.T) FieldsFixture) {
	t.Helper()
	ctx := context.Background()
	v0, v1, v2 := PairValue(t, "v0"), PairValue(t, "v1"), PairValue(t, "v2")

	t.Run("PutIntoEmpty", func(t *testing.T) {
		f := newFixture(t)
		r := put(t, f.Sink, v1, "rot-1")
		if !r.Created {
			t.Errorf("receipt.Created = false for a put into an empty back-end")
		}
		if r.Sink != f.Sink.Name() || r.RotationID != "rot-1" {
			t.Errorf("receipt names sink %q rotation %q, want %q %q", r.Sink, r.RotationID, f.Sink.Name(), "rot-1")
		}
		mustHoldFields(t, f, v1)
		AssertNoLeak(t, fmt.Sprintf("%+v", r), v1)
	})

	t.Run("PutReplacesSeeded", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, raw(v0))
		r := put(t, f.Sink, v1, "rot-1")
		if r.Created {
			t.Errorf("receipt.Created = true, but the back-end held a value")
		}
		mustHoldFields(t, f, v1)
	})

	t.Run("PutIsIdempotentPerRotation", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, raw(v0))
		first := put(t, f.Sink, v1, "rot-1")
		again := put(t, f.Sink, v1, "rot-1")
		if first.Version != again.Version || first.Previous != again.Previous || first.Created != again.Created {
			t.Errorf("repeated put returned a different receipt:\n first %+v\n again %+v", first, again)
		}
		mustHoldFields(t, f, v1)
	})

	t.Run("SecondRotationReplacesFirst", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.Sink, v1, "rot-1")
		put(t, f.Sink, v2, "rot-2")
		mustHoldFields(t, f, v2)
	})

	t.Run("GetEmpty", func(t *testing.T) {
		f := newFixture(t)
		rd, ok := f.Sink.(sinks.Reader)
		if !ok {
			t.Skip("write-only sink: no Get to check")
		}
		if _, err := rd.Get(ctx); !errors.Is(err, sinks.ErrNotFound) || errors.Is(err, sinks.ErrPartial) {
			t.Errorf("Get on an empty back-end: err = %v, want sinks.ErrNotFound", err)
		}
	})

	t.Run("PartialPairIsNotEmpty", func(t *testing.T) {
		f := newFixture(t)
		rd, ok := f.Sink.(sinks.Reader)
		if !ok {
			t.Skip("write-only sink: no Get to check")
		}
		half := map[string]string{FieldID: raw(v0)[FieldID]}
		f.Seed(t, half)
		_, err := rd.Get(ctx)
		if !errors.Is(err, sinks.ErrPartial) || errors.Is(err, sinks.ErrNotFound) {
			t.Fatalf("Get of a half-held pair: err = %v, want sinks.ErrPartial", err)
		}
		AssertNoLeak(t, err.Error(), v0)
		// A Put of the whole value repairs it.
		r := put(t, f.Sink, v1, "rot-1")
		if r.Created {
			t.Errorf("receipt.Created = true, but the back-end held half a pair")
		}
		mustHoldFields(t, f, v1)
	})

	t.Run("MismatchedFieldsAreRefused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			value secret.Value
			words []string // the error must name these
		}{
			{"single value", Value(t, "single"), []string{"single value"}},
			{"missing field", secret.NewFields(map[string]string{FieldID: "AKIAONLYTHEID0000"}), []string{FieldSecret}},
			{"extra field", secret.NewFields(map[string]string{FieldID: "AKIAEXTRAFIELD0000", FieldSecret: "s3cr3t-value-extra", "token": "tok-value-extra"}), []string{"token"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t)
				f.Seed(t, raw(v0))
				_, err := f.Sink.Put(ctx, tc.value, "rot-1")
				if err == nil {
					t.Fatalf("Put of a value with the wrong fields succeeded")
				}
				var perm *backoff.PermanentError
				if !errors.As(err, &perm) {
					t.Errorf("error is not permanent: %v", err)
				}
				for _, w := range tc.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				AssertNoLeak(t, err.Error(), tc.value, v0)
				if got := f.Peek(t); !maps.Equal(got, raw(v0)) {
					t.Errorf("a refused Put changed the back-end: it holds fields %v", slices.Sorted(maps.Keys(got)))
				}
			})
		}
	})

	t.Run("Rollback", func(t *testing.T) {
		f := newFixture(t)
		rb, ok := f.Sink.(sinks.Rollbacker)
		if !ok {
			t.Skip("sink is not a Rollbacker: the engine rolls it back with a put of the journaled old value")
		}
		f.Seed(t, raw(v0))
		put(t, f.Sink, v1, "rot-1")
		r := put(t, f.Sink, v2, "rot-2")
		AssertNoLeak(t, fmt.Sprintf("%+v", r), v1, v2)
		for i := 0; i < 2; i++ {
			if err := rb.Rollback(ctx, r); err != nil {
				t.Fatalf("Rollback #%d: %v", i+1, err)
			}
			mustHoldFields(t, f, v1)
		}
	})

	t.Run("RollbackByPutOfOldValue", func(t *testing.T) {
		f := newFixture(t)
		f.Seed(t, raw(v0))
		put(t, f.Sink, v1, "rot-1")
		put(t, f.Sink, v0, "rot-1.rollback")
		mustHoldFields(t, f, v0)
	})

	t.Run("ErrorsNeverHoldTheValue", func(t *testing.T) {
		f := newFixture(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := f.Sink.Put(cctx, v1, "rot-1"); err != nil {
			AssertNoLeak(t, err.Error(), v1)
		}
		AssertNoLeak(t, f.Sink.Name(), v1)
		AssertNoLeak(t, fmt.Sprintf("%v %+v %#v", f.Sink, f.Sink, f.Sink), v1)
	})
}

func mustHoldFields(t *testing.T, f FieldsFixture, want secret.Value) {
	t.Helper()
	got := f.Peek(t)
	if !maps.Equal(got, raw(want)) {
		var diff []string
		for _, n := range want.FieldNames() {
			if got[n] != raw(want)[n] {
				diff = append(diff, n)
			}
		}
		t.Fatalf("back-end holds fields %v; wrong or missing: %v", slices.Sorted(maps.Keys(got)), diff)
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

// Package issuertest is the contract every issuers.Issuer must meet. Each
// issuer runs it against a real or protocol-faithful server; the optional
// hooks in Fixture reach that server directly, so the suite does not trust
// only the issuer's own view of what it did.
package issuertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// Fixture is one issuer over one fresh account with no keys, in which new
// keys authenticate at once and the key limit is at least 5.
type Fixture struct {
	Issuer issuers.Issuer
	// ActiveCount returns how many keys are active at the issuer, read
	// without the Issuer. Optional.
	ActiveCount func() int
	// Advance moves the issuer's clock forward. Optional: without it the
	// suite cannot check that LastUsed moves on a second use.
	Advance func(d time.Duration)
	// UnknownID is an ID in the issuer's format that names no key;
	// "key_aaaaaaaaaaaaaaaaaaaaaaaa" when empty.
	UnknownID string
	// Logs returns everything the issuer logged so far, for leak checks.
	// Optional.
	Logs func() string
	// NoCreatedAt says the issuer's API shows no creation time (SendGrid):
	// its keys must then carry a zero CreatedAt rather than a made-up one,
	// and List and Find return keys in the API's order, so the suite checks
	// which keys they return but not that they are newest first.
	NoCreatedAt bool
}

// Run runs the contract against fixtures made by newFixture, one per subtest.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()

	t.Run("CreateReturnsWorkingDistinctKeys", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k1, v1 := create(t, ctx, f, "contract-create")
		k2, v2 := create(t, ctx, f, "contract-create")
		for _, c := range []struct {
			k issuers.Key
			v secret.Value
		}{{k1, v1}, {k2, v2}} {
			if c.k.ID == "" || c.k.Label != "contract-create" || c.k.Status != issuers.Active || c.k.CreatedAt.IsZero() != f.NoCreatedAt {
				t.Errorf("Create returned key %+v, want an ID, label %q, status active, created_at set (unless NoCreatedAt: then zero)", c.k, "contract-create")
			}
			if c.k.Prefix != "" && !slices.ContainsFunc(valueParts(c.v), func(p string) bool { return strings.HasPrefix(p, c.k.Prefix) }) {
				t.Errorf("key %s: the value does not start with its prefix %q", c.k.ID, c.k.Prefix)
			}
			if !c.k.LastUsedAt.IsZero() || !c.k.RevokedAt.IsZero() {
				t.Errorf("new key %s has last_used_at %v, revoked_at %v; want both zero", c.k.ID, c.k.LastUsedAt, c.k.RevokedAt)
			}
			mustVerify(t, ctx, f, c.v)
		}
		if k1.ID == k2.ID || v1.Equal(v2) {
			t.Errorf("two creates returned the same ID (%v) or value (%v)", k1.ID == k2.ID, v1.Equal(v2))
		}
		wantActive(t, f, 2)
	})

	t.Run("VerifyRefusesRevokedAndUnknown", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k, v := create(t, ctx, f, "contract-verify")
		revoke(t, ctx, f, k.ID)
		err := f.Issuer.Verify(ctx, v)
		noLeak(t, f, err, v)
		if !errors.Is(err, issuers.ErrUnauthorized) {
			t.Errorf("Verify(revoked key) = %v, want issuers.ErrUnauthorized", err)
		}
		_, live := create(t, ctx, f, "contract-verify")
		unknown := Mutate(live)
		err = f.Issuer.Verify(ctx, unknown)
		noLeak(t, f, err, live, unknown)
		if !errors.Is(err, issuers.ErrUnauthorized) {
			t.Errorf("Verify(unknown value) = %v, want issuers.ErrUnauthorized", err)
		}
		mustVerify(t, ctx, f, live) // the refusals did not disturb the live key
	})

	t.Run("FindByLabelIncludesRevoked", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		a1, _ := create(t, ctx, f, "contract-find-a")
		create(t, ctx, f, "contract-find-b")
		a2, _ := create(t, ctx, f, "contract-find-a")
		revoke(t, ctx, f, a1.ID)
		got, err := f.Issuer.Find(ctx, "contract-find-a")
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if f.NoCreatedAt {
			slices.SortStableFunc(got, func(x, y issuers.Key) int {
				return strings.Compare(string(x.Status), string(y.Status)) // active before revoked
			})
		}
		if ids := keyIDs(got); !slices.Equal(ids, []string{a2.ID, a1.ID}) {
			t.Fatalf("Find(contract-find-a) = %v, want [%s %s] (newest first unless NoCreatedAt, revoked included)", ids, a2.ID, a1.ID)
		}
		if got[0].Status != issuers.Active || got[1].Status != issuers.Revoked || got[1].RevokedAt.IsZero() {
			t.Errorf("Find statuses = %s, %s (revoked_at %v), want active, revoked with a time", got[0].Status, got[1].Status, got[1].RevokedAt)
		}
		none, err := f.Issuer.Find(ctx, "contract-find-none")
		if err != nil || len(none) != 0 {
			t.Errorf("Find(unused label) = %v, %v; want no keys and no error", keyIDs(none), err)
		}
	})

	t.Run("GetAndNotFound", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k, _ := create(t, ctx, f, "contract-get")
		got, err := f.Issuer.Get(ctx, k.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", k.ID, err)
		}
		if got.ID != k.ID || got.Label != k.Label || got.Prefix != k.Prefix || got.Status != issuers.Active || !got.CreatedAt.Equal(k.CreatedAt) {
			t.Errorf("Get = %+v, want the created key %+v", got, k)
		}
		if _, err := f.Issuer.Get(ctx, unknownID(f)); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Get(unknown ID) err = %v, want issuers.ErrNotFound", err)
		}
	})

	t.Run("ListActiveNewestFirst", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k1, _ := create(t, ctx, f, "contract-list")
		k2, _ := create(t, ctx, f, "contract-list")
		k3, _ := create(t, ctx, f, "contract-list")
		revoke(t, ctx, f, k2.ID)
		got, err := f.Issuer.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := []string{k3.ID, k1.ID}
		ids := keyIDs(got)
		if f.NoCreatedAt {
			slices.Sort(want)
			slices.Sort(ids)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("List = %v, want %v (active only, newest first unless NoCreatedAt)", ids, want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.After(got[i-1].CreatedAt) {
				t.Errorf("List is not newest first: %v before %v", got[i-1].CreatedAt, got[i].CreatedAt)
			}
		}
	})

	t.Run("RevokeIsImmediateAndIdempotent", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k, v := create(t, ctx, f, "contract-revoke")
		wantActive(t, f, 1)
		revoke(t, ctx, f, k.ID)
		revoke(t, ctx, f, k.ID) // already revoked: still success
		wantActive(t, f, 0)
		if err := f.Issuer.Verify(ctx, v); !errors.Is(err, issuers.ErrUnauthorized) {
			t.Errorf("Verify right after Revoke = %v, want issuers.ErrUnauthorized", err)
		}
		got, err := f.Issuer.Get(ctx, k.ID)
		if err != nil {
			t.Fatalf("Get(revoked): %v", err)
		}
		if got.Status != issuers.Revoked || got.RevokedAt.IsZero() || got.RevokedAt.Before(got.CreatedAt) {
			t.Errorf("revoked key = %+v, want status revoked and revoked_at >= created_at", got)
		}
		if err := f.Issuer.Revoke(ctx, unknownID(f)); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Revoke(unknown ID) = %v, want issuers.ErrNotFound", err)
		}
	})

	t.Run("IdentifyByPublicPart", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		id, ok := f.Issuer.(issuers.Identifier)
		if !ok {
			t.Skip("issuer is not an Identifier: adoption needs an explicit key ID")
		}
		k, v := create(t, ctx, f, "contract-identify")
		create(t, ctx, f, "contract-identify")
		got, err := id.Identify(ctx, v)
		noLeak(t, f, err, v)
		if err != nil || got.ID != k.ID {
			t.Fatalf("Identify = %s, %v; want %s", got.ID, err, k.ID)
		}
		unknown := Mutate(v)
		unknown = mapParts(unknown, func(s string) string { return "zz" + s[min(2, len(s)):] })
		if _, err := id.Identify(ctx, unknown); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Identify(a value no key carries) = %v, want issuers.ErrNotFound", err)
		}
		revoke(t, ctx, f, k.ID)
		_, err = id.Identify(ctx, v)
		noLeak(t, f, err, v)
		if !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("Identify(revoked key) = %v, want issuers.ErrNotFound", err)
		}
	})

	t.Run("LastUsedMovesWithUse", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		ur, ok := f.Issuer.(issuers.UsageReporter)
		if !ok {
			t.Skip("issuer is not a UsageReporter: draining is unavailable for it")
		}
		k, v := create(t, ctx, f, "contract-lastused")
		if got, err := ur.LastUsed(ctx, k.ID); err != nil || !got.IsZero() {
			t.Fatalf("LastUsed(never used) = %v, %v; want zero", got, err)
		}
		mustVerify(t, ctx, f, v)
		first, err := ur.LastUsed(ctx, k.ID)
		if err != nil || first.IsZero() || first.Before(k.CreatedAt) {
			t.Fatalf("LastUsed after Verify = %v, %v; want a time >= created_at %v", first, err, k.CreatedAt)
		}
		if f.Advance != nil {
			f.Advance(time.Minute)
			mustVerify(t, ctx, f, v)
			second, err := ur.LastUsed(ctx, k.ID)
			if err != nil || !second.After(first) {
				t.Errorf("LastUsed after a later Verify = %v, %v; want after %v", second, err, first)
			}
		}
		if _, err := ur.LastUsed(ctx, unknownID(f)); !errors.Is(err, issuers.ErrNotFound) {
			t.Errorf("LastUsed(unknown ID) = %v, want issuers.ErrNotFound", err)
		}
	})

	t.Run("NothingLeaks", func(t *testing.T) {
		f, ctx := setup(t, newFixture)
		k, v := create(t, ctx, f, "contract-leak")
		revoke(t, ctx, f, k.ID)
		var texts []string
		add := func(err error) {
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
			}
		}
		add(f.Issuer.Verify(ctx, v))
		add(f.Issuer.Verify(ctx, Mutate(v)))
		if id, ok := f.Issuer.(issuers.Identifier); ok {
			_, err := id.Identify(ctx, v)
			add(err)
		}
		if len(texts) == 0 {
			t.Fatal("no error to check: Verify of a revoked key succeeded")
		}
		texts = append(texts, fmt.Sprintf("%v %+v %#v", f.Issuer, f.Issuer, f.Issuer))
		if f.Logs != nil {
			texts = append(texts, f.Logs())
		}
		for _, s := range texts {
			AssertNoLeak(t, s, v, Mutate(v))
		}
	})
}

// Mutate returns a value of the same shape as v that no issuer issued: v
// with its last character changed (each field's, for a multi-field v).
func Mutate(v secret.Value) secret.Value {
	return mapParts(v, func(s string) string {
		if s == "" {
			return "x"
		}
		if s[len(s)-1] == 'x' {
			return s[:len(s)-1] + "y"
		}
		return s[:len(s)-1] + "x"
	})
}

// mapParts applies f to a single value, or to each field of a multi-field
// one.
func mapParts(v secret.Value, f func(string) string) secret.Value {
	fs, ok := v.Fields()
	if !ok {
		return secret.New(f(v.Reveal()))
	}
	out := map[string]string{}
	for name, fv := range fs {
		out[name] = f(fv.Reveal())
	}
	return secret.NewFields(out)
}

// valueParts returns a single value's string, or each field of a
// multi-field one.
func valueParts(v secret.Value) []string {
	fs, ok := v.Fields()
	if !ok {
		return []string{v.Reveal()}
	}
	var out []string
	for _, f := range fs {
		out = append(out, f.Reveal())
	}
	return out
}

// AssertNoLeak fails the test if text contains any of the values.
func AssertNoLeak(t testing.TB, text string, values ...secret.Value) {
	t.Helper()
	for _, v := range values {
		if !v.IsZero() && strings.Contains(text, v.Reveal()) {
			t.Errorf("key value leaked into %q", strings.ReplaceAll(text, v.Reveal(), "<THE KEY>"))
		}
	}
}

func setup(t *testing.T, newFixture func(t *testing.T) Fixture) (Fixture, context.Context) {
	t.Helper()
	f := newFixture(t)
	if f.Issuer == nil {
		t.Fatal("fixture has no Issuer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return f, ctx
}

func create(t *testing.T, ctx context.Context, f Fixture, label string) (issuers.Key, secret.Value) {
	t.Helper()
	k, v, err := f.Issuer.Create(ctx, label)
	noLeak(t, f, err, v)
	if err != nil {
		t.Fatalf("Create(%s): %v", label, err)
	}
	if v.IsZero() {
		t.Fatalf("Create(%s) returned no value", label)
	}
	if fi, ok := f.Issuer.(issuers.Fielded); ok {
		want := slices.Sorted(slices.Values(fi.Fields()))
		if got := v.FieldNames(); !slices.Equal(got, want) {
			t.Fatalf("Create(%s) returned a value with fields %v; the issuer is Fielded with %v", label, got, want)
		}
		for _, n := range want {
			if v.Field(n).IsZero() {
				t.Errorf("Create(%s): field %s is empty", label, n)
			}
		}
	}
	if f.Logs != nil {
		AssertNoLeak(t, f.Logs(), v)
	}
	return k, v
}

func revoke(t *testing.T, ctx context.Context, f Fixture, id string) {
	t.Helper()
	if err := f.Issuer.Revoke(ctx, id); err != nil {
		t.Fatalf("Revoke(%s): %v", id, err)
	}
}

func mustVerify(t *testing.T, ctx context.Context, f Fixture, v secret.Value) {
	t.Helper()
	err := f.Issuer.Verify(ctx, v)
	noLeak(t, f, err, v)
	if err != nil {
		t.Fatalf("Verify(new key %s): %v", v.Fingerprint(), err)
	}
}

func wantActive(t *testing.T, f Fixture, n int) {
	t.Helper()
	if f.ActiveCount == nil {
		return
	}
	if got := f.ActiveCount(); got != n {
		t.Errorf("the issuer holds %d active keys, want %d", got, n)
	}
}

func noLeak(t *testing.T, f Fixture, err error, values ...secret.Value) {
	t.Helper()
	if err != nil {
		AssertNoLeak(t, fmt.Sprintf("%v %+v %#v", err, err, err), values...)
	}
}

func unknownID(f Fixture) string {
	if f.UnknownID != "" {
		return f.UnknownID
	}
	return "key_aaaaaaaaaaaaaaaaaaaaaaaa"
}

func keyIDs(keys []issuers.Key) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

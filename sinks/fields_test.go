package sinks

import (
	"errors"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
)

func TestFieldsSplitJoin(t *testing.T) {
	f := Fields{"id": "ID_PLACE", "secret": "SECRET_PLACE"}
	v := secret.NewFields(map[string]string{"id": "AKIAVALUE1", "secret": "hush-hush-value"})
	parts, err := f.Split(v)
	if err != nil {
		t.Fatal(err)
	}
	if parts["ID_PLACE"].Reveal() != "AKIAVALUE1" || parts["SECRET_PLACE"].Reveal() != "hush-hush-value" {
		t.Fatalf("Split put the fields in the wrong places")
	}
	back, err := f.Join(parts)
	if err != nil || !back.Equal(v) {
		t.Fatalf("Join(Split(v)) = %s, %v; want v", back.Fingerprint(), err)
	}
	if _, err := f.Join(nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Join of nothing: %v, want ErrNotFound", err)
	}
	_, err = f.Join(map[string]secret.Value{"ID_PLACE": secret.New("AKIAVALUE1")})
	if !errors.Is(err, ErrPartial) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "SECRET_PLACE missing") {
		t.Errorf("Join of half a pair: %v, want ErrPartial naming SECRET_PLACE", err)
	}
	if strings.Contains(err.Error(), "AKIAVALUE1") {
		t.Errorf("error leaks a field value: %q", err)
	}
}

func TestFieldsSplitRefuses(t *testing.T) {
	f := Fields{"id": "A", "secret": "B"}
	for _, tc := range []struct {
		v    secret.Value
		want string
	}{
		{secret.New("single-value-xyz"), "single value"},
		{secret.NewFields(map[string]string{"id": "value-of-id"}), "missing secret"},
		{secret.NewFields(map[string]string{"id": "value-of-id", "secret": "value-of-secret", "extra": "value-of-extra"}), "not mapped extra"},
		{secret.NewFields(map[string]string{"id": "value-of-id", "secret": ""}), "field secret is empty"},
	} {
		_, err := f.Split(tc.v)
		var perm *backoff.PermanentError
		if err == nil || !errors.As(err, &perm) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Split: %v, want a permanent error with %q", err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "value-of") || strings.Contains(err.Error(), "xyz") {
			t.Errorf("error leaks a value: %q", err)
		}
	}
}

package secret

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestFieldsRoundTrip(t *testing.T) {
	v := NewFields(map[string]string{"secret_access_key": "wJalr/K7MDENG", "access_key_id": "AKIAIOSFODNN7"})
	if !v.IsFields() {
		t.Fatal("NewFields is not a multi-field Value")
	}
	fs, ok := v.Fields()
	if !ok || len(fs) != 2 || fs["access_key_id"].Reveal() != "AKIAIOSFODNN7" || fs["secret_access_key"].Reveal() != "wJalr/K7MDENG" {
		t.Fatalf("Fields() = %v, %v", fs, ok)
	}
	if got := v.FieldNames(); !slices.Equal(got, []string{"access_key_id", "secret_access_key"}) {
		t.Errorf("FieldNames() = %v", got)
	}
	if got := v.Field("access_key_id").Reveal(); got != "AKIAIOSFODNN7" {
		t.Errorf("Field = %q", got)
	}
	if !v.Field("nope").IsZero() {
		t.Error("a missing field is not zero")
	}
	// The same fields, built in another order, are Equal.
	w := JoinFields(map[string]Value{"access_key_id": New("AKIAIOSFODNN7"), "secret_access_key": New("wJalr/K7MDENG")})
	if !v.Equal(w) {
		t.Error("the same fields are not Equal")
	}
	if v.Equal(NewFields(map[string]string{"access_key_id": "AKIAIOSFODNN7", "secret_access_key": "other"})) {
		t.Error("different secrets are Equal")
	}
	if out := fmt.Sprintf("%v %s %q %#v", v, v, v, v); strings.Contains(out, "AKIA") || strings.Contains(out, "wJalr") {
		t.Errorf("a multi-field Value prints its fields: %s", out)
	}
}

// A single value, even one that looks like JSON, is never taken for fields.
func TestSingleValueIsNotFields(t *testing.T) {
	for _, s := range []string{"avk_live_abc", `{"access_key_id":"x"}`, ""} {
		v := New(s)
		if v.IsFields() || v.FieldNames() != nil || !v.Field("access_key_id").IsZero() {
			t.Errorf("New(%q) reads as fields", s)
		}
		if _, ok := v.Fields(); ok {
			t.Errorf("New(%q).Fields() ok", s)
		}
	}
	if !NewFields(nil).IsZero() {
		t.Error("NewFields(nil) is not zero")
	}
}

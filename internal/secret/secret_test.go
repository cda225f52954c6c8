package secret_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rekeyhq/rekey/internal/secret"
)

const raw = "avk_live_s3cr3tvalue0123456789abcdefghijklmn"

func TestStringAndGoString(t *testing.T) {
	v := secret.New(raw)
	if got := v.String(); got != secret.Redacted {
		t.Errorf("String() = %q, want %q", got, secret.Redacted)
	}
	if got := v.GoString(); got != "secret.Value("+secret.Redacted+")" {
		t.Errorf("GoString() = %q", got)
	}
	if v.Reveal() != raw {
		t.Errorf("Reveal does not return the value")
	}
}

// TestFormatEveryVerb: whatever the verb or flag, fmt prints Redacted, on
// its own or as a field of a struct, a pointer or a slice element.
func TestFormatEveryVerb(t *testing.T) {
	v := secret.New(raw)
	type holder struct{ Key secret.Value }
	operands := map[string]any{
		"value":   v,
		"pointer": &v,
		"struct":  holder{Key: v},
		"slice":   []secret.Value{v, v},
		"map":     map[string]secret.Value{"k": v},
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-20v"} {
		for name, op := range operands {
			got := fmt.Sprintf(verb, op)
			if strings.Contains(got, raw) || strings.Contains(got, hex.EncodeToString([]byte(raw))) || !strings.Contains(got, secret.Redacted) {
				t.Errorf("%s of a %s = %q, want only %s", verb, name, got, secret.Redacted)
			}
		}
	}
	if got := fmt.Sprintf("%#v", v); got != v.GoString() {
		t.Errorf("%%#v = %q, want GoString %q", got, v.GoString())
	}
	if got := fmt.Sprint(v); got != secret.Redacted {
		t.Errorf("Sprint = %q", got)
	}
}

func TestMarshal(t *testing.T) {
	v := secret.New(raw)
	b, err := json.Marshal(struct {
		Key secret.Value `json:"key"`
	}{v})
	if err != nil || string(b) != `{"key":"`+secret.Redacted+`"}` {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
	txt, err := v.MarshalText()
	if err != nil || string(txt) != secret.Redacted {
		t.Errorf("MarshalText = %q, %v", txt, err)
	}
	// As a map key, encoding/json uses MarshalText.
	b, err = json.Marshal(map[secret.Value]int{v: 1})
	if err != nil || strings.Contains(string(b), raw) {
		t.Errorf("json.Marshal of a map keyed by a Value = %s, %v", b, err)
	}
}

// TestZapFields: however a Value reaches a zap logger, the log line says at
// most whether it is set.
func TestZapFields(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel))
	v := secret.New(raw)
	log.Info("fields",
		zap.Any("any", v),
		zap.Object("object", v),
		zap.Stringer("stringer", v),
		zap.Reflect("reflect", v),
		zap.Any("empty", secret.Value{}),
	)
	log.Sugar().Infow("sugar", "key", v)
	log.Sugar().Infof("formatted %v %s %q", v, v, v)
	out := buf.String()
	if strings.Contains(out, raw) {
		t.Fatalf("a zap field holds the value:\n%s", out)
	}
	for _, want := range []string{`"any":{"set":true}`, `"object":{"set":true}`, `"stringer":"` + secret.Redacted + `"`, `"reflect":"` + secret.Redacted + `"`, `"empty":{"set":false}`, `"key":{"set":true}`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestEqual(t *testing.T) {
	a, b, c := secret.New(raw), secret.New(raw), secret.New(raw+"x")
	if !a.Equal(b) || !b.Equal(a) {
		t.Error("equal values compare unequal")
	}
	if a.Equal(c) || c.Equal(a) || a.Equal(secret.Value{}) {
		t.Error("different values compare equal")
	}
	if !(secret.Value{}).Equal(secret.New("")) {
		t.Error("two empty values compare unequal")
	}
	if !(secret.Value{}).IsZero() || a.IsZero() {
		t.Error("IsZero is wrong")
	}
}

// TestFingerprint: stable for a value, different for another, empty for
// the empty value, and a one-way digest that holds nothing of the value.
func TestFingerprint(t *testing.T) {
	v := secret.New(raw)
	fp := v.Fingerprint()
	if fp != secret.New(raw).Fingerprint() || fp != v.Fingerprint() {
		t.Errorf("fingerprint not stable")
	}
	if fp == secret.New(raw+"x").Fingerprint() {
		t.Errorf("two values share a fingerprint")
	}
	if (secret.Value{}).Fingerprint() != "" {
		t.Errorf("empty value has fingerprint %q", (secret.Value{}).Fingerprint())
	}
	sum := sha256.Sum256([]byte(raw))
	if want := "sha256:" + hex.EncodeToString(sum[:6]); fp != want {
		t.Errorf("fingerprint %q, want the truncated SHA-256 %q", fp, want)
	}
	digest := strings.TrimPrefix(fp, "sha256:")
	for i := 0; i+4 <= len(raw); i++ {
		if strings.Contains(fp, raw[i:i+4]) {
			t.Errorf("fingerprint %q holds %q of the value", fp, raw[i:i+4])
		}
	}
	if len(digest) != 12 || strings.Contains(raw, digest) {
		t.Errorf("fingerprint %q is not a 6-byte digest apart from the value", fp)
	}
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestScrub(t *testing.T) {
	key, token := secret.New(raw), secret.New("avm_token_0123456789")
	cause := fmt.Errorf("request %s with %s, again %s: %w", key.Reveal(), token.Reveal(), key.Reveal(), fs.ErrPermission)
	err := secret.Scrub(cause, key, token, secret.Value{})
	msg := err.Error()
	if strings.Contains(msg, key.Reveal()) || strings.Contains(msg, token.Reveal()) {
		t.Fatalf("scrubbed error still holds a value: %s", msg)
	}
	if want := "request [REDACTED] with [REDACTED], again [REDACTED]: permission denied"; msg != want {
		t.Errorf("scrubbed %q, want %q", msg, want)
	}
	for _, s := range []string{fmt.Sprint(err), fmt.Sprintf("%+v", err), fmt.Sprintf("%q", err), fmt.Sprintf("%s", err)} {
		if strings.Contains(s, key.Reveal()) {
			t.Errorf("formatted scrubbed error holds the value: %s", s)
		}
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("errors.Is lost the sentinel through Scrub")
	}
	if errors.Unwrap(err) != cause {
		t.Error("Unwrap does not return the original error")
	}
	var ce *codeError
	if !errors.As(secret.Scrub(fmt.Errorf("%s: %w", raw, &codeError{7}), key), &ce) || ce.code != 7 {
		t.Error("errors.As lost the typed error through Scrub")
	}

	// Nothing to scrub: the same error, not a wrapper.
	plain := errors.New("nothing secret")
	if got := secret.Scrub(plain, key); got != plain {
		t.Errorf("Scrub wrapped an error holding no value: %v", got)
	}
	if secret.Scrub(nil, key) != nil {
		t.Error("Scrub(nil) is not nil")
	}
	// An empty value would match everywhere; it is ignored.
	if got := secret.Scrub(plain, secret.Value{}); got != plain {
		t.Errorf("Scrub with an empty value changed the error: %v", got)
	}
}

// fmt prints a Value held in an unexported field by reflection, without
// calling its methods: that must not show the raw string either.
func TestValueInUnexportedFieldStaysHidden(t *testing.T) {
	raw := "avk_live_" + strings.Repeat("Q", 40)
	type holder struct {
		k secret.Value
		m map[string]secret.Value
		l []secret.Value
	}
	h := holder{k: secret.New(raw), m: map[string]secret.Value{"a": secret.New(raw)}, l: []secret.Value{secret.New(raw)}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, x := range []any{h, &h, []holder{h}} {
			if out := fmt.Sprintf(verb, x); strings.Contains(out, raw) || strings.Contains(out, fmt.Sprintf("%x", raw)) || strings.Contains(out, fmt.Sprintf("%X", raw)) {
				t.Errorf("%s of %T prints the raw value", verb, x)
			}
		}
	}
	if !h.k.Equal(secret.New(raw)) || h.k.Reveal() != raw {
		t.Errorf("the value itself is lost")
	}
}

// Package secret holds key values in a type that never prints them.
//
// A Value formats as [REDACTED] through fmt, JSON, text marshalling and zap;
// the raw string comes out only through Reveal, which only sinks, issuers and
// the journal's encryption call.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Redacted is what a Value prints instead of its contents.
const Redacted = "[REDACTED]"

// Value is a key value or another secret. The zero Value is empty.
//
// The string sits behind a pointer: fmt does not call Format on a Value
// held in an unexported struct field, and prints such a field by
// reflection, where a pointer shows as an address, never the string.
// Compare Values with Equal, not ==.
type Value struct {
	p *string
}

// New wraps s.
func New(s string) Value {
	if s == "" {
		return Value{}
	}
	return Value{p: &s}
}

// Reveal returns the raw value. Call it only where the value leaves rekey
// for a sink, an issuer or the encrypted journal.
func (v Value) Reveal() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// IsZero reports whether v is empty.
func (v Value) IsZero() bool { return v.p == nil }

// Equal compares in constant time.
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(v.Reveal()), []byte(o.Reveal())) == 1
}

// Fingerprint is a short one-way digest, safe to log and compare.
func (v Value) Fingerprint() string {
	if v.IsZero() {
		return ""
	}
	sum := sha256.Sum256([]byte(v.Reveal()))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

func (v Value) String() string   { return Redacted }
func (v Value) GoString() string { return "secret.Value(" + Redacted + ")" }

// Format prints Redacted for every verb, so %q, %x and %#v leak nothing.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprint(f, Redacted)
}

func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalLogObject makes zap.Any and zap.Object print only whether v is set.
func (v Value) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddBool("set", !v.IsZero())
	return nil
}

// Scrub returns err's message with every occurrence of the given values
// replaced by Redacted. Use it on errors from SDKs that echo request bodies.
func Scrub(err error, values ...Value) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, v := range Parts(values...) {
		if s := v.Reveal(); s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, Redacted)
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }

// Unwrap keeps errors.Is and errors.As working; callers must format the
// outer error, never the unwrapped one.
func (e *scrubbed) Unwrap() error { return e.err }

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
type Value struct {
	s string
}

// New wraps s.
func New(s string) Value { return Value{s: s} }

// Reveal returns the raw value. Call it only where the value leaves rekey
// for a sink, an issuer or the encrypted journal.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether v is empty.
func (v Value) IsZero() bool { return v.s == "" }

// Equal compares in constant time.
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(v.s), []byte(o.s)) == 1
}

// Fingerprint is a short one-way digest, safe to log and compare.
func (v Value) Fingerprint() string {
	if v.s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v.s))
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
	for _, v := range values {
		if v.s != "" && strings.Contains(msg, v.s) {
			msg = strings.ReplaceAll(msg, v.s, Redacted)
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

package secret

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// A credential's value is one string (an API key) or a set of named
// fields (an AWS access key ID and its secret, a Twilio SID and secret).
// A multi-field Value carries its fields in one string, so that everything
// that holds, compares, encrypts or journals a Value handles both alike:
// fieldsMark and then a JSON object of the fields, keys sorted. The mark
// starts with a NUL byte, which no single key value holds, so the two
// forms cannot be confused. Only issuers and sinks take a Value apart.
const fieldsMark = "\x00rekey-fields\x00"

// NewFields wraps named fields into one Value; no fields is the zero Value.
// Field names must be non-empty; empty values are kept as given.
func NewFields(fields map[string]string) Value {
	if len(fields) == 0 {
		return Value{}
	}
	// encoding/json sorts map keys: the same fields make the same string,
	// so Equal compares multi-field Values field by field.
	b, err := json.Marshal(fields)
	if err != nil {
		panic("secret: NewFields: " + err.Error()) // a map of strings always marshals
	}
	return New(fieldsMark + string(b))
}

// Fields returns v's fields and true for a multi-field Value; nil and
// false for a single value (or one whose fields do not decode, which only
// a corrupted Value can be).
func (v Value) Fields() (map[string]Value, bool) {
	s, ok := strings.CutPrefix(v.Reveal(), fieldsMark)
	if !ok {
		return nil, false
	}
	var raw map[string]string
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, false
	}
	out := make(map[string]Value, len(raw))
	for k, f := range raw {
		out[k] = New(f)
	}
	return out, true
}

// IsFields reports whether v is a multi-field Value.
func (v Value) IsFields() bool { return strings.HasPrefix(v.Reveal(), fieldsMark) }

// Field returns one field of a multi-field Value; the zero Value if v has
// no such field or is a single value.
func (v Value) Field(name string) Value {
	fs, _ := v.Fields()
	return fs[name]
}

// FieldNames returns a multi-field Value's field names, sorted; nil for a
// single value.
func (v Value) FieldNames() []string {
	fs, ok := v.Fields()
	if !ok {
		return nil
	}
	return slices.Sorted(maps.Keys(fs))
}

// JoinFields is NewFields of Values.
func JoinFields(fields map[string]Value) Value {
	raw := make(map[string]string, len(fields))
	for k, f := range fields {
		raw[k] = f.Reveal()
	}
	return NewFields(raw)
}

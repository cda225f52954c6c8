package awssm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// errNotObject is returned when a JSON-field secret's current value is not a
// JSON object. Its text never quotes the value.
var errNotObject = errors.New("current value is not a JSON object")

// member is one top-level field of a JSON object, its value kept verbatim.
type member struct {
	key string
	raw json.RawMessage
}

// parseObject splits a JSON object into its top-level members in order.
// An empty or all-space string is an empty object.
func parseObject(s string) ([]member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNotObject
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errNotObject
		}
		ms = append(ms, member{key: key, raw: raw})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotObject // trailing data after the object
	}
	return ms, nil
}

// getField returns the string value of field key in the JSON object s.
// present is false when the object has no such field; a field that is not a
// string is an error.
func getField(s, key string) (value string, present bool, err error) {
	ms, err := parseObject(s)
	if err != nil {
		return "", false, err
	}
	for i := len(ms) - 1; i >= 0; i-- { // the last duplicate wins, as in every JSON decoder
		if ms[i].key != key {
			continue
		}
		if err := json.Unmarshal(ms[i].raw, &value); err != nil {
			return "", true, errors.New("field " + quote(key) + " is not a JSON string")
		}
		return value, true, nil
	}
	return "", false, nil
}

// setField returns s with field key set to value, every other field and the
// order of all fields kept; a new field goes last. existed reports whether
// the field was there before.
func setField(s, key, value string) (out string, existed bool, err error) {
	ms, err := parseObject(s)
	if err != nil {
		return "", false, err
	}
	enc, err := encodeString(value)
	if err != nil {
		return "", false, err
	}
	for i := range ms {
		if ms[i].key == key {
			ms[i].raw = enc
			existed = true
		}
	}
	if !existed {
		ms = append(ms, member{key: key, raw: enc})
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := encodeString(m.key)
		if err != nil {
			return "", false, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.String(), existed, nil
}

// encodeString JSON-encodes s without HTML escaping.
func encodeString(s string) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func quote(s string) string {
	b, _ := encodeString(s)
	return string(b)
}

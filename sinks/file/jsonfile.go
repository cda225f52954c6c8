package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// A json file is one top-level object. Put replaces the bytes of one
// field's value (or inserts the field after the last one, copying its
// indentation), so the other fields keep their order, formatting and
// exact bytes.

// errNotObject is returned for a file whose content is not a JSON object.
var errNotObject = errors.New("not a JSON object")

type jsonDoc struct {
	blank   bool // only whitespace: treated like a missing file
	open    int  // offset of '{'
	close   int  // offset of '}'
	members []jsonMember
}

type jsonMember struct {
	key      string
	sepEnd   int // just after the '{' or ',' before the key
	keyStart int
	keyEnd   int
	valStart int
	valEnd   int
}

// parseJSON indexes the top-level object in data. Its errors carry byte
// offsets only, never file content.
func parseJSON(data []byte) (*jsonDoc, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return &jsonDoc{blank: true}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	doc := &jsonDoc{open: int(dec.InputOffset()) - 1}
	for dec.More() {
		m := jsonMember{sepEnd: int(dec.InputOffset())}
		i := skipSpace(data, m.sepEnd)
		if i < len(data) && data[i] == ',' {
			m.sepEnd = i + 1
		}
		m.keyStart = skipSpace(data, m.sepEnd)
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		m.key, m.keyEnd = key, int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonErr(err)
		}
		m.valEnd = int(dec.InputOffset())
		m.valStart = m.valEnd - len(raw)
		doc.members = append(doc.members, m)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonErr(err)
	}
	doc.close = int(dec.InputOffset()) - 1
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("not a single JSON object: data after byte %d", doc.close+1)
	}
	return doc, nil
}

func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end")
	}
	return errors.New("invalid JSON")
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// lookup returns the last member named key (encoding/json also lets the
// last duplicate win).
func (d *jsonDoc) lookup(key string) (jsonMember, bool) {
	for i := len(d.members) - 1; i >= 0; i-- {
		if d.members[i].key == key {
			return d.members[i], true
		}
	}
	return jsonMember{}, false
}

// getJSON returns field key of the object in data; ok is false when the
// field is missing, null or "". A field of another type is an error.
func getJSON(data []byte, key string) (value string, ok bool, err error) {
	doc, err := parseJSON(data)
	if err != nil || doc.blank {
		return "", false, err
	}
	m, found := doc.lookup(key)
	if !found {
		return "", false, nil
	}
	raw := data[m.valStart:m.valEnd]
	if string(raw) == "null" {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", false, fmt.Errorf("field %q is not a string", key)
	}
	return value, value != "", nil
}

// setJSON returns data with field key set to value.
func setJSON(data []byte, key, value string) ([]byte, error) {
	doc, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	k, v := jsonString(key), jsonString(value)
	if doc.blank {
		return []byte("{\n  " + k + ": " + v + "\n}\n"), nil
	}
	if m, ok := doc.lookup(key); ok {
		return splice(data, m.valStart, m.valEnd, v), nil
	}
	if len(doc.members) == 0 {
		return splice(data, doc.open+1, doc.close, "\n  "+k+": "+v+"\n"), nil
	}
	last := doc.members[len(doc.members)-1]
	indent := string(data[last.sepEnd:last.keyStart])
	colon := string(data[last.keyEnd:last.valStart])
	return splice(data, last.valEnd, last.valEnd, ","+indent+k+colon+v), nil
}

func splice(data []byte, start, end int, insert string) []byte {
	out := make([]byte, 0, len(data)-(end-start)+len(insert))
	out = append(out, data[:start]...)
	out = append(out, insert...)
	return append(out, data[end:]...)
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return string(bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))
}

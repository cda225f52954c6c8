package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// SinkTypes lists the sink types a configuration may name.
var SinkTypes = []string{"file", "aws-secretsmanager", "vault-kv", "github-actions"}

// UnmarshalYAML keeps the entry's mapping for Decode and reads its type.
// Load also sets Field, File and Line.
func (s *SinkSpec) UnmarshalYAML(n *yaml.Node) error {
	d := newDecoder("")
	s.Type, s.node = "", nil
	d.readSinkSpec(n, s, "")
	if !d.errs.empty() {
		return errors.New(d.errs.first().Msg)
	}
	return nil
}

// decodeSinkSpec is the decoder's hook for sink entries.
func (d *decoder) decodeSinkSpec(n *yaml.Node, s *SinkSpec, path string) {
	s.Field, s.File, s.Line = path, d.file, d.lineOf(n, path)
	d.readSinkSpec(n, s, path)
}

func (d *decoder) readSinkSpec(n *yaml.Node, s *SinkSpec, path string) {
	for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil && hops < 100; hops++ {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping with a type (one of %s), got %s", listOr(SinkTypes), describe(n))
		return
	}
	s.node = n
	for _, p := range d.pairs(n, path) {
		if p.key.Value != "type" {
			continue
		}
		tp := joinField(path, "type")
		d.mark(tp, p.key)
		val := p.val
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" {
			d.fail(p.key, tp, "expected a string (one of %s), got %s", listOr(SinkTypes), describe(val))
			return
		}
		d.set[tp] = true
		s.Type = val.Value
	}
}

// Decode strictly decodes the entry, without its type key, into v (a
// pointer to the sink's config struct): unknown keys and wrong types are
// errors. If v has a Validate() error method, Decode calls it and places
// each problem it reports with Invalid (a field relative to v, e.g.
// "auth.role_id") at its line in the file. The result is nil or Errors.
func (s *SinkSpec) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode needs a non-nil pointer, got %T", v)
	}
	d := newDecoder(s.File)
	d.pos[s.Field] = s.Line
	if s.node != nil {
		pairs := d.pairs(s.node, s.Field)
		switch e := rv.Elem(); e.Kind() {
		case reflect.Struct:
			d.decodeStruct(pairs, e, s.Field, "type")
		case reflect.Map:
			pairs = slices.DeleteFunc(pairs, func(p pair) bool { return p.key.Value == "type" })
			d.decodeMap(pairs, e, s.Field)
		default:
			return fmt.Errorf("config: Decode needs a pointer to a struct or map, got %T", v)
		}
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		for _, err := range flatten(val.Validate()) {
			e := d.place(s, err)
			if !d.failed(e.Field) {
				d.errs.addError(e)
			}
		}
	}
	if d.errs.empty() {
		return nil
	}
	return d.errs.result()
}

// place turns an error from a Validate method into an absolute, positioned
// one.
func (d *decoder) place(s *SinkSpec, err error) *Error {
	e, ok := err.(*Error)
	if !ok {
		return &Error{File: s.File, Line: s.Line, Field: s.Field, Msg: err.Error()}
	}
	if e.File != "" {
		return e // already positioned
	}
	field := joinField(s.Field, e.Field)
	return &Error{File: s.File, Line: d.line(field), Field: field, Msg: e.Msg}
}

// listOr formats "a, b or c".
func listOr(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	out := ""
	for i, it := range items[:len(items)-1] {
		if i > 0 {
			out += ", "
		}
		out += it
	}
	return out + " or " + items[len(items)-1]
}

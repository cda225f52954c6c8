package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML keeps the entry's mapping for Decode and reads its type.
// Load also sets Field, File and Line.
func (s *SinkSpec) UnmarshalYAML(n *yaml.Node) error { return s.unmarshal(n, "sink") }

// UnmarshalYAML keeps the entry's mapping for Decode and reads its type.
// Load also sets Name, Field, File and Line.
func (s *IssuerSpec) UnmarshalYAML(n *yaml.Node) error { return s.unmarshal(n, "issuer") }

func (e *entry) unmarshal(n *yaml.Node, kind string) error {
	d := newDecoder("")
	*e = entry{kind: kind}
	d.readSpec(n, e, "")
	if !d.errs.empty() {
		return errors.New(d.errs.first().Msg)
	}
	return nil
}

// decodeSpec is the decoder's hook for sink and issuer entries; line is
// where the entry is reported as a whole.
func (d *decoder) decodeSpec(n *yaml.Node, e *entry, kind, path string, line int) {
	e.kind, e.Field, e.File, e.Line = kind, path, d.file, line
	d.readSpec(n, e, path)
}

func (d *decoder) readSpec(n *yaml.Node, e *entry, path string) {
	for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil && hops < 100; hops++ {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping with a type, got %s", describe(n))
		return
	}
	e.node = n
	for _, p := range d.pairs(n, path) {
		if p.key.Value != "type" {
			continue
		}
		tp := joinField(path, "type")
		d.mark(tp, p.key)
		e.typeLine = d.lineOf(p.key, tp)
		val := p.val
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" {
			d.fail(p.key, tp, "expected a string, got %s", describe(val))
			return
		}
		d.set[tp] = true
		e.Type = val.Value
	}
}

// UnknownType is the error for an entry whose type no back-end has, at the
// line of its type key, e.g. "rekey.yaml:6: issuers.apex.type: unknown
// issuer type "apexverify2"".
func (e *entry) UnknownType() error {
	line := e.typeLine
	if line == 0 {
		line = e.Line
	}
	kind := e.kind
	if kind == "" {
		kind = "back-end"
	}
	return &Error{File: e.File, Line: line, Field: joinField(e.Field, "type"), Msg: fmt.Sprintf("unknown %s type %q", kind, e.Type)}
}

// Decode strictly decodes the entry, without its type key, into v (a
// pointer to the back-end's config struct): unknown keys and wrong types
// are errors. If v has a SetDefaults() method, Decode calls it first, so
// that a key absent from the entry (or null) keeps its default. If v has a
// Validate() error method, Decode calls it after decoding and places each
// problem it reports with Invalid (a field relative to v, e.g.
// "auth.role_id") at its line in the file. The result is nil or Errors.
//
// An entry that a Backends hook decoded at load no longer holds its YAML:
// Decode then sets *v to the value the hook returned, which must be of v's
// element type (or a pointer to one), and the caller must treat the maps
// and slices in it as shared, read-only.
func (s *entry) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode needs a non-nil pointer, got %T", v)
	}
	if s.decoded != nil {
		return s.decodedInto(rv.Elem())
	}
	if def, ok := v.(interface{ SetDefaults() }); ok {
		def.SetDefaults()
	}
	d := newDecoder(s.File)
	if s.budget != nil {
		d.budget = s.budget
	}
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
	s.secrets = d.secrets
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

// decodedInto sets v to the value kept at load.
func (s *entry) decodedInto(v reflect.Value) error {
	kept := reflect.ValueOf(s.decoded)
	if kept.Kind() == reflect.Pointer && kept.Type().Elem() == v.Type() && !kept.IsNil() {
		kept = kept.Elem()
	}
	if kept.Type() != v.Type() {
		return fmt.Errorf("config: %s was decoded at load into %T, not %s", s.Field, s.decoded, v.Type())
	}
	v.Set(kept)
	return nil
}

// keep records what a Backends hook decoded the entry into and releases
// its YAML; a nil value keeps the YAML.
func (s *entry) keep(v any) {
	if v == nil || reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil() {
		return
	}
	s.decoded, s.node = v, nil
}

// place turns an error from a Validate method into an absolute, positioned
// one.
func (d *decoder) place(s *entry, err error) *Error {
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

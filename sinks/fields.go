package sinks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
)

// ErrPartial is returned by Reader.Get when a sink that maps a multi-field
// value (Fields) holds some of its places but not all: a pair half
// written, or half removed by hand. It is not ErrNotFound: the sink holds
// something, and a Put of the whole value is what repairs it.
var ErrPartial = errors.New("sinks: the sink holds a partial set of fields")

// Fields maps a multi-field credential's field names (e.g. "id",
// "secret") to the places a sink keeps them: dotenv variables or JSON keys
// of a file, JSON fields of an AWS secret, KV fields of a Vault secret,
// GitHub Actions secret names. Each sink's config has it as `fields:`,
// mutually exclusive with its single-value `key:` (or `name:`). A nil
// Fields is a single-value sink.
type Fields map[string]string

// Names returns the credential field names, sorted.
func (f Fields) Names() []string { return slices.Sorted(maps.Keys(f)) }

// Places returns the sink's places in the order of Names.
func (f Fields) Places() []string {
	out := make([]string, 0, len(f))
	for _, n := range f.Names() {
		out = append(out, f[n])
	}
	return out
}

// Validate checks f as the `fields` entry of a sink config: at least one
// field, no empty name or place, no place used twice. place checks one
// place in the back-end's terms (nil accepts any non-empty place); its
// error message is used as given. Errors are config.Invalid, relative to
// the sink entry ("fields.id").
func (f Fields) Validate(place func(string) error) error {
	if f == nil {
		return nil
	}
	if len(f) == 0 {
		return config.Invalid("fields", "must map at least one field (or use key: for a single value)")
	}
	var errs []error
	seen := map[string]string{}
	for _, name := range f.Names() {
		p := "fields." + name
		if name == "" {
			p = "fields"
		}
		switch pl := f[name]; {
		case name == "":
			errs = append(errs, config.Invalid(p, "a field name must not be empty"))
		case pl == "":
			errs = append(errs, config.Invalid(p, "the place for field %q must not be empty", name))
		case seen[pl] != "":
			errs = append(errs, config.Invalid(p, "%q is already the place of field %q: each field needs its own place", pl, seen[pl]))
		default:
			seen[pl] = name
			if place != nil {
				if err := place(pl); err != nil {
					errs = append(errs, config.Invalid(p, "%v", err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// MappedFields returns the credential field names f maps, sorted; nil for
// a single-value sink. Sink configs expose it so that config can check
// that every sink of a credential maps the same fields.
func (f Fields) MappedFields() []string {
	if f == nil {
		return nil
	}
	return f.Names()
}

// Split returns v's fields by place. v must be a multi-field Value with
// exactly f's field names; otherwise the error is permanent and names the
// missing and extra field names (never a value).
func (f Fields) Split(v secret.Value) (map[string]secret.Value, error) {
	got, ok := v.Fields()
	if !ok {
		return nil, backoff.Permanent(fmt.Errorf("the sink maps fields %s but the value is a single value", strings.Join(f.Names(), ", ")))
	}
	var missing, extra []string
	for _, n := range f.Names() {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := f[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing "+strings.Join(missing, ", "))
		}
		if len(extra) > 0 {
			parts = append(parts, "not mapped "+strings.Join(extra, ", "))
		}
		return nil, backoff.Permanent(fmt.Errorf("the value's fields do not match the sink's fields: %s", strings.Join(parts, "; ")))
	}
	out := make(map[string]secret.Value, len(f))
	for n, pl := range f {
		if got[n].IsZero() {
			return nil, backoff.Permanent(fmt.Errorf("field %s is empty", n))
		}
		out[pl] = got[n]
	}
	return out, nil
}

// Join turns what a sink read from its places (absent places left out of
// held, or held as the zero Value) into one multi-field Value. No place
// held gives ErrNotFound; some but not all give an error wrapping
// ErrPartial that names the missing places.
func (f Fields) Join(held map[string]secret.Value) (secret.Value, error) {
	out := make(map[string]secret.Value, len(f))
	var missing []string
	for _, n := range f.Names() {
		pl := f[n]
		if v := held[pl]; !v.IsZero() {
			out[n] = v
		} else {
			missing = append(missing, pl)
		}
	}
	switch {
	case len(out) == 0:
		return secret.Value{}, ErrNotFound
	case len(missing) > 0:
		return secret.Value{}, fmt.Errorf("%w: %s missing", ErrPartial, strings.Join(missing, ", "))
	}
	return secret.JoinFields(out), nil
}

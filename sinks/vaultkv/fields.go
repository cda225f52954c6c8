package vaultkv

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// The sink's value lives in one field of the secret (Key) or, for a
// multi-field credential, in one field per credential field (Fields). Every
// Put writes all of them in one KV write, so no version of the secret holds
// half a pair.

// places returns the secret's fields the sink owns.
func (c Config) places() []string {
	if c.Fields != nil {
		return c.Fields.Places()
	}
	return []string{c.Key}
}

// placeName is what names the sink's fields in its Name and messages.
func (c Config) placeName() string { return strings.Join(c.places(), ",") }

// checkShape refuses a value the sink cannot hold, before anything is read
// or written: see sinks.Fields.Split; a single-value sink refuses a
// multi-field value.
func (c Config) checkShape(p string, value secret.Value) error {
	if c.Fields != nil {
		if _, err := c.Fields.Split(value); err != nil {
			return fmt.Errorf("vaultkv: put %s: %w", p, err)
		}
		return nil
	}
	if value.IsFields() {
		return backoff.Permanent(fmt.Errorf("vaultkv: put %s: the value has fields %s but the sink holds a single value: map them with fields", p, strings.Join(value.FieldNames(), ", ")))
	}
	return nil
}

// holds reports whether data already holds value in the sink's fields.
func (c Config) holds(data map[string]any, value secret.Value) bool {
	v, err := c.valueOf(data, "")
	return err == nil && v.Equal(value)
}

// hadAny reports whether data has any of the sink's fields.
func (c Config) hadAny(data map[string]any) bool {
	for _, pl := range c.places() {
		if _, ok := data[pl]; ok {
			return true
		}
	}
	return false
}

// set puts value into data's fields; value has passed checkShape.
func (c Config) set(data map[string]any, value secret.Value) {
	if c.Fields == nil {
		data[c.Key] = value.Reveal()
		return
	}
	parts, _ := c.Fields.Split(value)
	for pl, v := range parts {
		data[pl] = v.Reveal()
	}
}

// unset removes the sink's fields from data.
func (c Config) unset(data map[string]any) {
	for _, pl := range c.places() {
		delete(data, pl)
	}
}

// samePlaces reports whether a and b agree on every field of the sink.
func (c Config) samePlaces(a, b map[string]any) bool {
	for _, pl := range c.places() {
		if !reflect.DeepEqual(a[pl], b[pl]) {
			return false
		}
	}
	return true
}

// valueOf returns the value data holds: sinks.ErrNotFound when it has none
// of the sink's fields, an error wrapping sinks.ErrPartial when it has some
// of a pair's, a permanent error for a field that is not a string.
func (c Config) valueOf(data map[string]any, p string) (secret.Value, error) {
	held := make(map[string]secret.Value, len(c.places()))
	for _, pl := range c.places() {
		raw, present := data[pl]
		if !present {
			continue
		}
		v, ok := raw.(string)
		if !ok {
			return secret.Value{}, backoff.Permanent(fmt.Errorf("vaultkv: get %s: field %q is a %T, not a string", p, pl, raw))
		}
		held[pl] = secret.New(v)
	}
	if c.Fields == nil {
		v, ok := held[c.Key]
		if !ok {
			return secret.Value{}, sinks.ErrNotFound
		}
		return v, nil
	}
	v, err := c.Fields.Join(held)
	if err != nil && !errors.Is(err, sinks.ErrNotFound) {
		return secret.Value{}, fmt.Errorf("vaultkv: get %s: %w", p, err)
	}
	return v, err
}

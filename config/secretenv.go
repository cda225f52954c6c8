package config

import (
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SecretEnv returns the name of every environment variable c reads a
// secret from, sorted and without duplicates: each env:NAME reference in a
// secret-valued field (state.encryption_key, issuer tokens, check headers,
// notifier URLs) and each string starting with "env:" anywhere in an issuer
// or sink entry, whose fields only the back-end's package knows. A
// back-end's default (a variable it reads when its entry names none) is not
// in the file and so not in the list. Processes rekey starts (on_change) should not
// inherit these variables.
func (c *Config) SecretEnv() []string {
	if c.secretEnv != nil {
		return slices.Clone(*c.secretEnv)
	}
	seen := map[string]bool{}
	add := func(ref string) {
		if name, ok := strings.CutPrefix(ref, envPrefix); ok && (Secret{Ref: ref}).Check(false) == nil {
			seen[name] = true
		}
	}
	walkSecrets(reflect.ValueOf(c), add)
	return slices.Sorted(func(yield func(string) bool) {
		for name := range seen {
			if !yield(name) {
				return
			}
		}
	})
}

// SecretEnv is Config.SecretEnv of the configuration the entry was loaded
// from (nil for an entry that Load or Parse did not produce), for a
// back-end that starts processes: they should not inherit these variables.
func (e *entry) SecretEnv() []string { return slices.Clone(e.secretEnv) }

var (
	secretType     = reflect.TypeFor[Secret]()
	sinkSpecType   = reflect.TypeFor[SinkSpec]()
	issuerSpecType = reflect.TypeFor[IssuerSpec]()
)

// walkSecrets calls add with the reference of every Secret in v, and with
// every string scalar of every issuer and sink entry's YAML.
func walkSecrets(v reflect.Value, add func(string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkSecrets(v.Elem(), add)
		}
	case reflect.Struct:
		switch v.Type() {
		case secretType:
			add(v.Field(0).String())
			return
		case sinkSpecType:
			walkNode(v.Interface().(SinkSpec).node, add, nil)
			return
		case issuerSpecType:
			walkNode(v.Interface().(IssuerSpec).node, add, nil)
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkSecrets(v.Field(i), add)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkSecrets(v.Index(i), add)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			walkSecrets(it.Value(), add)
		}
	}
}

// walkNode calls add with every string scalar under n, walking each
// alias's anchor once (seen holds the anchors walked; nil until the first),
// so that aliases cannot multiply the work.
func walkNode(n *yaml.Node, add func(string), seen map[*yaml.Node]bool) map[*yaml.Node]bool {
	if n == nil {
		return seen
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || seen[n.Alias] {
			return seen
		}
		if seen == nil {
			seen = map[*yaml.Node]bool{}
		}
		seen[n.Alias] = true
		return walkNode(n.Alias, add, seen)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		add(n.Value)
	}
	for _, c := range n.Content {
		seen = walkNode(c, add, seen)
	}
	return seen
}

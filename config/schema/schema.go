// Package schema generates the JSON Schema (draft 2020-12) of rekey's
// configuration file from the Go types that decode it, for editors (the
// YAML language server) and for checking configs outside rekey.
//
// Issuer and sink entries are polymorphic by their type key, and only
// cmd/rekey knows every back-end, so Generate takes the back-ends' config
// types as arguments. Only cmd/rekey imports this package: it keeps the
// schema library out of every other package's dependencies.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
	orderedmap "github.com/pb33f/ordered-map/v2"

	"github.com/rekeyhq/rekey/config"
)

// ID is the schema's $id: where the committed file is published.
const ID = "https://raw.githubusercontent.com/rekeyhq/rekey/main/config/rekey.schema.json"

// Backend is one issuer or sink type: the value of its type key, its
// config struct as decoded by config.IssuerSpec.Decode or
// config.SinkSpec.Decode, and the fields an entry must give.
type Backend struct {
	Type     string
	Config   any
	Required []string
	// Enums lists the values a field of the config takes, by field name.
	Enums map[string][]any
}

// DurationPattern matches what config.ParseDuration accepts: Go units plus
// d and w, in any combination ("90d", "1d12h", "1.5h", "500ms").
const DurationPattern = `^\s*[-+]?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w))*)\s*$`

// SecretPattern matches a secret reference: env:NAME or file:PATH.
const SecretPattern = `^(env:[^=\s]+|file:.+)$`

// required lists the fields rekey's validation requires, by definition.
var required = map[string][]string{
	"config.Config":     {"version", "credentials"},
	"config.State":      {"encryption_key"},
	"config.Credential": {"issuer", "label", "rotate_every", "sinks"},
	"config.Check":      {"url"},
	"config.Drain":      {"idle_for", "max_wait"},
	"config.Notifier":   {"type", "url"},
}

// descriptions document the definitions an editor shows on hover.
var descriptions = map[string]string{
	"config.Config":     "rekey configuration, version 1 (see the README's config reference). Unknown keys are errors.",
	"config.State":      "Where the journal lives (SQLite by default, or etcd) and the key that encrypts key material in it.",
	"config.Etcd":       "The etcd cluster of state.backend etcd: endpoints, key prefix, TLS files, login, timeouts and the lock's lease TTL.",
	"config.Credential": "One key rekey keeps rotated.",
	"config.Monitor":    "The window after deploy during which health checks must pass.",
	"config.Check":      "One HTTP health check.",
	"config.Drain":      "Before revoking, wait until the old key has been unused for idle_for, at most max_wait.",
	"config.Verify":     "How long the new key may take to authenticate.",
	"config.Notifier":   "A Slack or generic webhook notification.",
	"config.Daemon":     "rekey daemon's HTTP address and the concurrency of rekey run.",
	"duration":          "A Go duration with days and weeks: 30s, 10m, 12h, 90d, 1d12h, 2w.",
	"secret":            "A secret reference: env:NAME (an environment variable) or file:PATH (a file's contents). Literal secrets are refused.",
	"issuer":            "An issuer entry: type selects the back-end, whose own fields follow.",
	"sink":              "A sink entry: type selects the back-end, whose own fields follow.",
}

// Generate returns the schema of the config file, indented JSON ending in
// a newline. The same back-ends give the same bytes.
func Generate(issuers, sinks []Backend) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true, // required comes from the table above
		Namer:                      defName,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			switch t {
			case reflect.TypeFor[config.Duration]():
				return ref("duration")
			case reflect.TypeFor[config.Secret]():
				return ref("secret")
			case reflect.TypeFor[config.IssuerSpec]():
				return ref("issuer")
			case reflect.TypeFor[config.SinkSpec]():
				return ref("sink")
			}
			return nil
		},
	}
	root := r.Reflect(&config.Config{})
	root.ID = ID
	defs := root.Definitions

	defs["duration"] = &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
		{Type: "string", Pattern: DurationPattern},
		{Type: "integer", Const: 0},
	}}
	defs["secret"] = &jsonschema.Schema{Type: "string", Pattern: SecretPattern}

	var err error
	if defs["issuer"], err = polymorphic(r, defs, "issuer", issuers); err != nil {
		return nil, err
	}
	if defs["sink"], err = polymorphic(r, defs, "sink", sinks); err != nil {
		return nil, err
	}

	for name, fields := range required {
		d := defs[name]
		if d == nil {
			return nil, fmt.Errorf("schema: no definition %s", name)
		}
		d.Required = fields
	}
	for name, text := range descriptions {
		defs[name].Description = text
	}
	// Specific values the decoder or validation insists on.
	prop(defs, "config.Config", "version").Const = 1
	prop(defs, "config.Config", "issuers").MinProperties = ptr(uint64(1))
	prop(defs, "config.Config", "credentials").MinProperties = ptr(uint64(1))
	prop(defs, "config.Credential", "sinks").MinItems = ptr(uint64(1))
	prop(defs, "config.Credential", "label").Pattern = `\{\{date\}\}|^[A-Za-z0-9._-]+$`
	// Check headers may be literal, env: or file:.
	prop(defs, "config.Check", "headers").AdditionalProperties = &jsonschema.Schema{Type: "string"}
	prop(defs, "config.Notifier", "type").Enum = []any{"slack", "webhook"}
	prop(defs, "config.State", "backend").Enum = []any{config.BackendSQLite, config.BackendEtcd}
	prop(defs, "config.Etcd", "endpoints").Items = &jsonschema.Schema{Type: "string", Pattern: `^https?://[^/\s]+:[0-9]+/?$`}
	prop(defs, "config.Etcd", "prefix").Pattern = `^/.+/$`
	prop(defs, "config.Notifier", "on").Items = &jsonschema.Schema{Enum: []any{"success", "rollback", "failure", "overdue"}}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return buf.Bytes(), nil
}

// polymorphic returns the schema of an issuer or sink entry: an object
// whose type is one of the back-ends', and, by an if/then on that type,
// exactly the fields of that back-end's config (each a definition of its
// own, with additionalProperties false, so unknown keys are errors).
func polymorphic(r *jsonschema.Reflector, defs jsonschema.Definitions, kind string, backends []Backend) (*jsonschema.Schema, error) {
	s := &jsonschema.Schema{Type: "object", Required: []string{"type"}}
	var types []any
	for _, b := range backends {
		t := reflect.TypeOf(b.Config)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, fmt.Errorf("schema: %s %s: config %s is not a struct", kind, b.Type, t)
		}
		sub := r.ReflectFromType(t)
		for name, d := range sub.Definitions {
			if old, ok := defs[name]; ok && !sameJSON(old, d) {
				return nil, fmt.Errorf("schema: two types are named %s", name)
			}
			defs[name] = d
		}
		name := defName(t)
		d := defs[name]
		if d == nil || d.Properties == nil {
			return nil, fmt.Errorf("schema: %s %s: no definition %s", kind, b.Type, name)
		}
		if _, ok := d.Properties.Get("type"); ok {
			return nil, fmt.Errorf("schema: %s %s: its config has a field named type", kind, b.Type)
		}
		d.Properties.Set("type", &jsonschema.Schema{Const: b.Type})
		_ = d.Properties.MoveToFront("type")
		d.Required = append([]string{"type"}, b.Required...)
		for field, values := range b.Enums {
			p, ok := d.Properties.Get(field)
			if !ok {
				return nil, fmt.Errorf("schema: %s %s: no field %s", kind, b.Type, field)
			}
			p.Enum = values
		}
		d.Description = fmt.Sprintf("A %s of type %s.", kind, b.Type)
		types = append(types, b.Type)
		s.AllOf = append(s.AllOf, &jsonschema.Schema{
			If:   &jsonschema.Schema{Properties: props("type", &jsonschema.Schema{Const: b.Type}), Required: []string{"type"}},
			Then: ref(name),
		})
	}
	s.Properties = props("type", &jsonschema.Schema{Type: "string", Enum: types})
	return s, nil
}

// defName names the definition of a Go type by its package and name:
// "config.Credential", "file.Config", "vaultkv.Auth"; "" for a type
// without a name.
func defName(t reflect.Type) string {
	if t.Name() == "" {
		return "" // a map or slice is written in place
	}
	pkg := t.PkgPath()
	return pkg[strings.LastIndex(pkg, "/")+1:] + "." + t.Name()
}

func ref(name string) *jsonschema.Schema { return &jsonschema.Schema{Ref: "#/$defs/" + name} }

func props(name string, s *jsonschema.Schema) *orderedmap.OrderedMap[string, *jsonschema.Schema] {
	p := jsonschema.NewProperties()
	p.Set(name, s)
	return p
}

// prop returns definition def's property name; it panics if there is
// none, which the test of the committed schema catches.
func prop(defs jsonschema.Definitions, def, name string) *jsonschema.Schema {
	d := defs[def]
	if d == nil || d.Properties == nil {
		panic("schema: no definition " + def)
	}
	p, ok := d.Properties.Get(name)
	if !ok {
		panic("schema: " + def + " has no property " + name)
	}
	return p
}

func sameJSON(a, b *jsonschema.Schema) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}

func ptr[T any](v T) *T { return &v }

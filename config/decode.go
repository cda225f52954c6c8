package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the work of one decode, so that nested aliases ("billion
// laughs") cannot make a small file expensive. A whole file's load may
// spend one node more per byte of the file (see budgetFor).
const maxNodes = 100_000

// maxDepth bounds nesting, including nesting built from aliases; rekey's
// own configuration nests about ten levels.
const maxDepth = 200

// decoder strictly decodes a yaml.Node tree into Go values by their yaml
// tags, collecting every problem with its line and field path instead of
// stopping at the first, and recording where each field was found.
type decoder struct {
	file string
	errs errorList
	// pos maps each field path found in the file to the line of its key
	// (mapping entries) or item (list entries).
	pos map[string]int
	// set holds the paths whose value is not null.
	set map[string]bool
	// bad holds the paths that failed to decode; validation stays quiet
	// about them and what lies below them. Nil until the first.
	bad map[string]bool
	// budget is how many more nodes may be decoded; a load shares it with
	// the Backends' decodes of its entries.
	budget *int
	depth  int
	active map[*yaml.Node]bool // aliases being expanded, to stop cycles; nil until the first
	// secrets are the secret-valued fields decoded, in file order.
	secrets []SecretRef
}

func newDecoder(file string) *decoder {
	budget := maxNodes
	return &decoder{
		file:   file,
		pos:    map[string]int{},
		set:    map[string]bool{},
		budget: &budget,
	}
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs.add(d.file, d.lineOf(n, path), path, format, args...)
	if d.bad == nil {
		d.bad = map[string]bool{}
	}
	d.bad[path] = true
}

// line returns the line of path, or of its deepest recorded ancestor.
func (d *decoder) line(path string) int {
	for p := path; ; p = parentField(p) {
		if l, ok := d.pos[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
	}
}

// lineOf returns n's line, or inside an alias's expansion the line of the
// alias (see mark).
func (d *decoder) lineOf(n *yaml.Node, path string) int {
	if n == nil || len(d.active) > 0 {
		return d.line(path)
	}
	return n.Line
}

// mark records where path is. Inside an alias's expansion it records
// nothing, so that problems there are reported at the alias, where the
// reader is looking, rather than at the anchor; this also keeps aliases
// that expand to many nodes cheap.
func (d *decoder) mark(path string, n *yaml.Node) {
	if len(d.active) == 0 {
		d.pos[path] = n.Line
	}
}

// failed reports whether a decode error was reported at field or above it.
// It looks up field and each of its ancestors (parentField), which are
// exactly the paths field lies under, so it costs the field's depth, not
// the number of errors.
func (d *decoder) failed(field string) bool {
	for p := field; ; p = parentField(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// describe names a node's kind for error messages. It never prints a
// scalar's value: a misplaced value may be a secret.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!str":
		return "a string"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode stores n in v (which must be settable) and reports problems under
// path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.charge(n, path) {
		return
	}
	if d.depth >= maxDepth {
		d.fail(n, path, "nested too deeply")
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if n.Kind == yaml.AliasNode {
		if d.enter(n, path) {
			d.decode(n.Alias, v, path)
			delete(d.active, n)
		}
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], v, path)
		return
	}
	if isNull(n) {
		// Null is absent: v keeps its zero value, or the default
		// SetDefaults gave it (see SinkSpec.Decode).
		return
	}
	d.set[path] = true

	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if v.CanAddr() {
		switch p := v.Addr(); {
		case p.Type() == reflect.TypeFor[*SinkSpec]():
			d.decodeSpec(n, &p.Interface().(*SinkSpec).entry, "sink", path, d.lineOf(n, path))
			return
		case p.Type() == reflect.TypeFor[*IssuerSpec]():
			// Reported at its key, "NAME:", as every mapping entry is.
			d.decodeSpec(n, &p.Interface().(*IssuerSpec).entry, "issuer", path, d.line(path))
			return
		case p.Type().Implements(unmarshalerType):
			if err := p.Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
				d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
				return
			}
			if sec, ok := p.Interface().(*Secret); ok && sec.IsSet() {
				d.secrets = append(d.secrets, SecretRef{Field: path, File: d.file, Line: d.line(path), Secret: *sec})
			}
			return
		case p.Type().Implements(textUnmarshalerType):
			if n.Kind != yaml.ScalarNode {
				d.fail(n, path, "expected a string, got %s", describe(n))
				return
			}
			if err := p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				d.fail(n, path, "%v", err)
			}
			return
		}
	}

	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		d.decodeStruct(d.pairs(n, path), v, path, "")
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		d.decodeMap(d.pairs(n, path), v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.mark(p, item)
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var x int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil || v.OverflowInt(x) {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var x uint64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil || v.OverflowUint(x) {
			d.fail(n, path, "expected a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(x)
	case reflect.Float32, reflect.Float64:
		var x float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&x) != nil {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(x)
	case reflect.Bool:
		var x bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&x) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(x)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.fail(n, path, "config: cannot decode into %s", v.Type())
	}
}

// budgetFor is the node budget of loading a file of size bytes: a file
// may hold about one node per byte, while aliases may not multiply the
// work past that, so a load costs time linear in the file's size
// (MaxConfigSize bounds it).
func budgetFor(size int) int { return maxNodes + size }

// charge spends one node of the budget, reporting once when it runs out.
func (d *decoder) charge(n *yaml.Node, path string) bool {
	*d.budget--
	if *d.budget == -1 {
		d.fail(n, path, "document too large (too many nodes or aliases)")
	}
	return *d.budget >= 0
}

// enter marks the alias n as being expanded; it reports false (after
// reporting the problem) when n is already being expanded.
func (d *decoder) enter(n *yaml.Node, path string) bool {
	if d.active[n] || n.Alias == nil {
		d.fail(n, path, "alias refers to itself")
		return false
	}
	if d.active == nil {
		d.active = map[*yaml.Node]bool{}
	}
	d.active[n] = true
	return true
}

type pair struct{ key, val *yaml.Node }

// pairs returns a mapping's entries with "<<" merge keys applied (explicit
// keys win, then earlier merges), reporting non-string and duplicate keys.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	seen := keySet{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(k, val, path)...)
			continue
		}
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if first := seen.get(own, k.Value); first != nil {
			d.fail(k, joinField(path, k.Value), "duplicate key (first at line %d)", first.Line)
			continue
		}
		own = append(own, pair{k, val})
		seen.add(own)
	}
	for _, p := range merged {
		if seen.get(own, p.key.Value) == nil {
			own = append(own, p)
			seen.add(own)
		}
	}
	return own
}

// keySet finds a key among a mapping's pairs so far: by a scan while they
// are few (most mappings have a handful of keys, and a map per mapping is
// most of the cost of decoding a large file), by a map past that.
type keySet struct{ m map[string]*yaml.Node }

const keySetScan = 16

func (s *keySet) get(pairs []pair, key string) *yaml.Node {
	if s.m != nil {
		return s.m[key]
	}
	for _, p := range pairs {
		if p.key.Value == key {
			return p.key
		}
	}
	return nil
}

// add records the last of pairs, which grew by one.
func (s *keySet) add(pairs []pair) {
	switch {
	case s.m != nil:
		last := pairs[len(pairs)-1]
		s.m[last.key.Value] = last.key
	case len(pairs) > keySetScan:
		s.m = make(map[string]*yaml.Node, 2*len(pairs))
		for _, p := range pairs {
			s.m[p.key.Value] = p.key
		}
	}
}

func (d *decoder) mergePairs(k, val *yaml.Node, path string) []pair {
	if !d.charge(val, path) {
		return nil
	}
	if val.Kind == yaml.AliasNode {
		if !d.enter(val, path) {
			return nil
		}
		defer delete(d.active, val)
		return d.mergePairs(k, val.Alias, path)
	}
	switch val.Kind {
	case yaml.MappingNode:
		return d.pairs(val, path)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range val.Content {
			if item.Kind != yaml.AliasNode && item.Kind != yaml.MappingNode {
				d.fail(item, path, "merge (<<) takes a mapping or a list of mappings")
				continue
			}
			out = append(out, d.mergePairs(k, item, path)...)
		}
		return out
	}
	d.fail(k, path, "merge (<<) takes a mapping or a list of mappings")
	return nil
}

// decodeStruct decodes pairs into the struct v by yaml tags; skip is a key
// to ignore (a sink entry's "type").
func (d *decoder) decodeStruct(pairs []pair, v reflect.Value, path, skip string) {
	fields, names := structFields(v.Type())
	for _, p := range pairs {
		key := p.key.Value
		if skip != "" && key == skip {
			continue
		}
		fp := joinField(path, key)
		idx, ok := fields[key]
		if !ok {
			d.fail(p.key, fp, "unknown field (valid fields: %s)", strings.Join(names, ", "))
			continue
		}
		d.mark(fp, p.key)
		d.decode(p.val, v.FieldByIndex(idx), fp)
	}
}

func (d *decoder) decodeMap(pairs []pair, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(nil, path, "config: cannot decode into %s", t)
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(t, len(pairs)))
	}
	for _, p := range pairs {
		fp := joinField(path, p.key.Value)
		d.mark(fp, p.key)
		e := reflect.New(t.Elem()).Elem()
		d.decode(p.val, e, fp)
		v.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), e)
	}
}

// structFields maps the yaml names of t's fields (following ",inline"
// structs) to their indexes, and lists the names in declaration order.
func structFields(t reflect.Type) (map[string][]int, []string) {
	if c, ok := fieldCache.Load(t); ok {
		c := c.(cachedFields)
		return c.fields, c.names
	}
	fields := map[string][]int{}
	var names []string
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if _, dup := fields[name]; !dup {
				names = append(names, name)
			}
			fields[name] = idx
		}
	}
	walk(t, nil)
	fieldCache.Store(t, cachedFields{fields, names})
	return fields, names
}

type cachedFields struct {
	fields map[string][]int
	names  []string
}

var fieldCache sync.Map // reflect.Type → cachedFields

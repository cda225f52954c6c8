package config

import (
	"fmt"
	"sort"
	"strings"
)

// Errors is every problem found in one configuration, sorted by line. It
// prints one problem per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Invalid returns an error for field, a path relative to the object being
// validated (e.g. "auth.role_id", "key", "headers[0]"). SinkSpec.Decode
// turns it into an absolute, positioned error; the message must not contain
// a secret value.
func Invalid(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// sorted orders es by file and line, keeping the order of discovery within a
// line, and drops exact duplicates.
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
	out := es[:0]
	seen := make(map[Error]bool, len(es))
	for _, e := range es {
		if seen[*e] {
			continue
		}
		seen[*e] = true
		out = append(out, e)
	}
	return out
}

// flatten returns the leaves of err: every *Error of an Errors, every error
// joined with errors.Join, or err itself.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if es, ok := err.(Errors); ok {
		return es.Unwrap()
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// joinField appends key to path.
func joinField(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	case strings.HasPrefix(key, "["):
		return path + key
	}
	return path + "." + key
}

// parentField returns the path one level up ("a.b[2]" → "a.b", "a.b" → "a",
// "a" → "").
func parentField(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// under reports whether field is path or lies below it.
func under(field, path string) bool {
	if path == "" || field == path {
		return true
	}
	return strings.HasPrefix(field, path) && (field[len(path)] == '.' || field[len(path)] == '[')
}

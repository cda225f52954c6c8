package config

import (
	"fmt"
	"sort"
	"strings"
)

// MaxErrors is how many problems one configuration reports. Past it, Load
// and SinkSpec.Decode keep counting, without formatting or keeping the
// rest, and end with a line "… and K more errors", so a huge bad file
// costs bounded time and memory.
const MaxErrors = 50

// Errors is the problems found in one configuration, sorted by line: the
// first MaxErrors of them, then, if there were more, an *Error that counts
// the rest ("… and K more errors"). It prints one problem per line, and
// never more than MaxErrors and that last line, however it was built.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, 0, min(len(es), MaxErrors+1))
	more := 0
	for _, e := range es {
		switch {
		case e.more > 0:
			more += e.more
		case len(lines) < MaxErrors:
			lines = append(lines, e.Error())
		default:
			more++
		}
	}
	if more > 0 {
		lines = append(lines, moreErrors(more).Error())
	}
	return strings.Join(lines, "\n")
}

// moreErrors is the last entry of a capped Errors.
func moreErrors(n int) *Error {
	return &Error{Msg: fmt.Sprintf("… and %d more errors", n), more: n}
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

// errorList collects the first MaxErrors problems by position (file, line,
// then order of discovery) and counts the rest. A message is formatted only
// if it is kept, and exact duplicates are dropped.
type errorList struct {
	kept []listed
	seq  int
	more int // problems found but not kept
}

type listed struct {
	e   *Error
	seq int
}

// add reports a problem at file:line.
func (l *errorList) add(file string, line int, field, format string, args ...any) {
	if len(l.kept) == MaxErrors {
		if w := l.kept[l.worst()].e; !before(file, line, w.File, w.Line) && (file != w.File || line != w.Line) {
			l.more++ // it would not be kept: do not format it
			return
		}
	}
	l.addError(&Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// addError reports a problem already built.
func (l *errorList) addError(e *Error) {
	for _, k := range l.kept {
		if *k.e == *e {
			return
		}
	}
	l.seq++
	if len(l.kept) < MaxErrors {
		l.kept = append(l.kept, listed{e, l.seq})
		return
	}
	l.more++
	if w := l.worst(); before(e.File, e.Line, l.kept[w].e.File, l.kept[w].e.Line) {
		l.kept[w] = listed{e, l.seq}
	}
}

// worst is the index of the kept problem that sorts last.
func (l *errorList) worst() int {
	w := 0
	for i := range l.kept {
		if l.less(w, i) {
			w = i
		}
	}
	return w
}

func (l *errorList) less(i, j int) bool {
	a, b := l.kept[i], l.kept[j]
	if a.e.File != b.e.File || a.e.Line != b.e.Line {
		return before(a.e.File, a.e.Line, b.e.File, b.e.Line)
	}
	return a.seq < b.seq
}

func before(file1 string, line1 int, file2 string, line2 int) bool {
	if file1 != file2 {
		return file1 < file2
	}
	return line1 < line2
}

// empty reports whether no problem was reported.
func (l *errorList) empty() bool { return len(l.kept) == 0 }

// first returns the first problem reported, in sorted order.
func (l *errorList) first() *Error { return l.result()[0] }

// result returns the kept problems sorted, with the count of the rest.
func (l *errorList) result() Errors {
	sort.Slice(l.kept, func(i, j int) bool { return l.less(i, j) })
	out := make(Errors, 0, len(l.kept)+1)
	for _, k := range l.kept {
		out = append(out, k.e)
	}
	if l.more > 0 {
		out = append(out, moreErrors(l.more))
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

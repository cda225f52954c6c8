package httpissuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Templates are a strict tiny substitution, not text/template: the only
// syntax is {{name}}, and each context escapes what it inserts — a JSON
// string's contents in a body, a path segment in a path, nothing in a
// query value (url.Values encodes it) or a header (checked for CR/LF).

var placeholderRE = regexp.MustCompile(`\{\{([A-Za-z_]*)\}\}`)

// placeholders lists the names used in t, in order.
func placeholders(t string) []string {
	var names []string
	for _, m := range placeholderRE.FindAllStringSubmatch(t, -1) {
		names = append(names, m[1])
	}
	return names
}

func substitute(t string, vars map[string]string, escape func(string) string) string {
	return placeholderRE.ReplaceAllStringFunc(t, func(m string) string {
		name := placeholderRE.FindStringSubmatch(m)[1]
		return escape(vars[name])
	})
}

// renderPath fills a path template, each value path-escaped.
func renderPath(t string, vars map[string]string) string {
	return substitute(t, vars, url.PathEscape)
}

// renderQuery fills each query template; url.Values encodes them.
func renderQuery(q map[string]string, vars map[string]string) url.Values {
	out := url.Values{}
	for k, t := range q {
		out.Set(k, substitute(t, vars, func(s string) string { return s }))
	}
	return out
}

// renderBody fills a JSON body template with each value's JSON string
// contents and checks that the result is JSON. The error never quotes the
// body.
func renderBody(t string, vars map[string]string) ([]byte, error) {
	b := substitute(t, vars, func(s string) string {
		q, _ := json.Marshal(s)
		return string(q[1 : len(q)-1])
	})
	if !json.Valid([]byte(b)) {
		return nil, errors.New("not JSON once filled in (write a placeholder inside quotes: \"{{label}}\")")
	}
	return []byte(b), nil
}

// renderHeader fills a header value template; a value with a line break
// cannot be sent.
func renderHeader(t, name, value string) (string, error) {
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", fmt.Errorf("the %s contains a line break or NUL and cannot be sent in a header", name)
	}
	return strings.ReplaceAll(t, "{{"+name+"}}", value), nil
}

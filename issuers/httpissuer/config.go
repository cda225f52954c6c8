package httpissuer

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theory/jsonpath"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Type is the issuer's type in configuration.
const Type = "http"

// Defaults of an entry.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxPages = 100
)

// FileConfig is one `type: http` entry of the configuration's issuers: an
// HTTP API described entirely in YAML, or a preset of one.
//
//	issuers:
//	  openai:
//	    type: http
//	    preset: openai-admin                  # optional: see Presets
//	    auth: {token: env:OPENAI_ADMIN_KEY}   # fills the preset's header
//
// A preset is a complete FileConfig. The merge rule: every field the entry
// sets replaces the preset's field at the same path, one leaf at a time
// (create.body replaces only the preset's create.body); lists and maps
// (expect_status, query, status.active) are replaced whole, never merged;
// a field left zero keeps the preset's, so a preset's true cannot be set false.
// Expanded returns the result, which is plain config the user could copy.
//
// Decode it with config.IssuerSpec.Decode, which applies SetDefaults and
// Validate; Resolve turns it into the Config that New takes.
type FileConfig struct {
	// Preset names a built-in description of a vendor's API.
	Preset string `yaml:"preset"`
	// BaseURL is the API root; calls' paths are appended to it.
	BaseURL string `yaml:"base_url"`
	// Timeout bounds each HTTP request; default 10s.
	Timeout config.Duration `yaml:"timeout"`
	// MaxActiveKeys is the account's documented limit of active keys; 0
	// means unknown (the issuer then reports no limit).
	MaxActiveKeys int `yaml:"max_active_keys"`
	// Auth is how management calls authenticate.
	Auth Auth `yaml:"auth"`
	// Create mints a key; its body usually carries {{label}}.
	Create Call `yaml:"create"`
	// Get reads one key; its path carries {{id}}.
	Get Call `yaml:"get"`
	// List reads every key, page by page.
	List ListCall `yaml:"list"`
	// Revoke revokes (or deletes) one key; its path carries {{id}}.
	Revoke RevokeCall `yaml:"revoke"`
	// Verify is a call made with a key, to see that it authenticates.
	Verify VerifyCall `yaml:"verify"`
	// Key maps a key object of the API's responses to rekey's key.
	Key Mapping `yaml:"key"`
	// Identify says how a key value is recognised among the listed keys
	// without sending it (adoption, invariant I7); empty: not at all.
	Identify Identify `yaml:"identify"`
	// Errors maps error answers.
	Errors ErrorMapping `yaml:"errors"`
}

// Auth authenticates management calls: a header whose value is a template
// of {{token}}, more such headers, and/or HTTP basic auth.
type Auth struct {
	Header string        `yaml:"header"` // e.g. Authorization
	Value  string        `yaml:"value"`  // e.g. "Bearer {{token}}"; default "{{token}}"
	Token  config.Secret `yaml:"token"`  // env: or file:
	// Extra are more headers of the same shape (an API that wants two
	// keys, such as Datadog's DD-API-KEY and DD-APPLICATION-KEY).
	Extra []HeaderAuth `yaml:"extra"`
	Basic Basic        `yaml:"basic"`
}

// HeaderAuth is one management header.
type HeaderAuth struct {
	Header string        `yaml:"header"`
	Value  string        `yaml:"value"`
	Token  config.Secret `yaml:"token"`
}

// Basic is HTTP basic authentication; both are env: or file: references.
type Basic struct {
	Username config.Secret `yaml:"username"`
	Password config.Secret `yaml:"password"`
}

// Call is one request: method, a path template appended to base_url, query
// parameters, an optional JSON body template, and where in the answer the
// key object is.
type Call struct {
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Query  map[string]string `yaml:"query"`
	// Body is a JSON template: {{label}} (and {{id}}) are replaced by the
	// value's JSON string contents, so write "name": "{{label}}".
	Body string `yaml:"body"`
	// Form is a form-encoded body (application/x-www-form-urlencoded)
	// instead of a JSON one: each value a template like a query value.
	Form map[string]string `yaml:"form"`
	// Object is the JSONPath of the key object in the answer; default "$".
	Object string `yaml:"object"`
	// ExpectStatus are the success statuses; default any 2xx.
	ExpectStatus []int `yaml:"expect_status"`
}

// ListCall is the list request and how to page through it.
type ListCall struct {
	Call `yaml:",inline"`
	// Items is the JSONPath of the key objects in a page, e.g. $.data[*].
	Items      string     `yaml:"items"`
	Pagination Pagination `yaml:"pagination"`
}

// Pagination is one of: cursor (the answer names the next cursor, sent
// back in Param), page (page numbers in Param from Start, stopping at an
// empty or short page), link (RFC 8288 Link: <…>; rel="next" on the same
// host), url (the answer names the next page's URL, absolute or relative
// to base_url, at Cursor; followed only on base_url's host; null or empty
// ends the list). Empty: one page.
type Pagination struct {
	Type string `yaml:"type"` // cursor | page | link | url
	// Cursor is the JSONPath of the next cursor (cursor) or of the next
	// page's URL (url).
	Cursor string `yaml:"cursor"`
	// HasMore is the JSONPath of a boolean "more pages" flag (cursor;
	// optional: without it an empty cursor ends the list).
	HasMore string `yaml:"has_more"`
	// Param is the query parameter of the cursor or page number.
	Param string `yaml:"param"`
	// Start is the first page's number (page); default 1.
	Start *int `yaml:"start"`
	// SizeParam and Size ask for pages of Size keys (page: a page shorter
	// than Size is the last).
	SizeParam string `yaml:"size_param"`
	Size      int    `yaml:"size"`
	// MaxPages bounds a listing; default 100. A list longer than that is
	// an error, never a silently short list.
	MaxPages int `yaml:"max_pages"`
}

// RevokeCall is the revoke request.
type RevokeCall struct {
	Call `yaml:",inline"`
	// Deletes says the API deletes keys rather than marking them revoked:
	// afterwards they are unknown (404). A key this process deleted is
	// reported revoked until it restarts; after that, not found, which
	// rekey's engine treats as gone.
	Deletes bool `yaml:"deletes"`
}

// VerifyCall is a request made with a key instead of the management auth.
type VerifyCall struct {
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Query  map[string]string `yaml:"query"`
	// Header carries the key, as Value's template of {{key}}; default
	// Authorization: "Bearer {{key}}".
	Header string `yaml:"header"`
	Value  string `yaml:"value"`
	// Basic sends the key as HTTP basic auth instead of Header, each a
	// template of {{key}} or of a multi-field key's fields, e.g.
	// {username: "{{sid}}", password: "{{secret}}"}.
	Basic BasicTemplate `yaml:"basic"`
	// ExpectStatus are the statuses of a working key; default [200].
	ExpectStatus []int `yaml:"expect_status"`
	// RefusedStatus are the statuses of a refused key; default [401, 403].
	RefusedStatus []int `yaml:"refused_status"`
}

// BasicTemplate is HTTP basic auth built from a key.
type BasicTemplate struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Mapping holds JSONPaths (RFC 9535) into one key object. Times are RFC
// 3339 strings, RFC 1123 dates with a numeric zone ("Mon, 16 Aug 2010
// 03:45:01 +0000") or Unix seconds.
type Mapping struct {
	ID    string `yaml:"id"`    // required
	Value string `yaml:"value"` // the key value in create's answer; this or fields
	// Fields makes the key a multi-field one (a SID and a secret): each
	// field's name, as sinks' fields: mappings name it, and its JSONPath in
	// create's answer. Mutually exclusive with value.
	Fields     map[string]string `yaml:"fields"`
	Label      string            `yaml:"label"` // required
	CreatedAt  string            `yaml:"created_at"`
	LastUsedAt string            `yaml:"last_used_at"` // makes the issuer a UsageReporter
	RevokedAt  string            `yaml:"revoked_at"`
	// Prefix is the key's public prefix, a leading part of its value.
	Prefix string `yaml:"prefix"`
	// Status is the key's status string, mapped by StatusMap; without it
	// every listed key is active.
	Status    string    `yaml:"status"`
	StatusMap StatusMap `yaml:"status_map"`
}

// StatusMap lists the vendor's status strings that mean active and
// revoked; any other string is an error.
type StatusMap struct {
	Active  []string `yaml:"active"`
	Revoked []string `yaml:"revoked"`
}

// Identify recognises a key value among listed keys by a public part of it
// in Field (a JSONPath into the key object): its first Length characters
// (prefix), its last Length characters (suffix), the redacted form
// value[:Head] + Separator + value[len-Tail:] (redacted), or the first
// capture group of the regular expression Pattern (pattern: for values
// that carry their key's ID, such as SendGrid's SG.<id>.<secret>). For a
// multi-field key, ValueField names the field looked at. More than one
// match identifies nothing.
type Identify struct {
	Match      string `yaml:"match"` // prefix | suffix | redacted | pattern
	Field      string `yaml:"field"`
	Length     int    `yaml:"length"`
	Head       int    `yaml:"head"`
	Tail       int    `yaml:"tail"`
	Separator  string `yaml:"separator"`
	Pattern    string `yaml:"pattern"`
	ValueField string `yaml:"value_field"`
}

// ErrorMapping maps error answers to rekey's errors.
type ErrorMapping struct {
	// KeyLimitStatus are statuses meaning "too many keys"; default [409].
	// They win over 401/403 meaning refused credentials.
	KeyLimitStatus []int `yaml:"key_limit_status"`
	// KeyLimitMessage, a regular expression, narrows key_limit_status to
	// the answers whose message (errors.message) matches it: for an API that
	// answers a full account with a status that also means something else
	// (SendGrid: 403, also "access forbidden").
	KeyLimitMessage string `yaml:"key_limit_message"`
	// Message is the JSONPath of a human message in an error body.
	Message string `yaml:"message"`
}

// SetDefaults fills in the defaults that do not depend on a preset.
func (c *FileConfig) SetDefaults() {
	c.Timeout = config.Duration(DefaultTimeout)
}

// Expanded returns c over its preset (see FileConfig for the merge rule)
// with every remaining default filled in. An unknown preset leaves c as
// it is; Validate reports it.
func (c FileConfig) Expanded() FileConfig {
	out := c
	if p, ok := presets[c.Preset]; ok {
		base := p.config()
		mergeInto(reflect.ValueOf(&out).Elem(), reflect.ValueOf(base))
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if out.Auth.Header != "" {
		def(&out.Auth.Value, "{{token}}")
	}
	for i := range out.Auth.Extra {
		def(&out.Auth.Extra[i].Value, "{{token}}")
	}
	def(&out.Create.Method, http.MethodPost)
	def(&out.Get.Method, http.MethodGet)
	def(&out.List.Method, http.MethodGet)
	def(&out.Revoke.Method, http.MethodDelete)
	def(&out.Verify.Method, http.MethodGet)
	if out.Verify.Basic == (BasicTemplate{}) {
		def(&out.Verify.Header, "Authorization")
		def(&out.Verify.Value, "Bearer {{key}}")
	}
	for _, call := range []*Call{&out.Create, &out.Get, &out.List.Call, &out.Revoke.Call} {
		def(&call.Object, "$")
	}
	if len(out.Verify.ExpectStatus) == 0 {
		out.Verify.ExpectStatus = []int{http.StatusOK}
	}
	if len(out.Verify.RefusedStatus) == 0 {
		out.Verify.RefusedStatus = []int{http.StatusUnauthorized, http.StatusForbidden}
	}
	if len(out.Errors.KeyLimitStatus) == 0 {
		out.Errors.KeyLimitStatus = []int{http.StatusConflict}
	}
	if out.List.Pagination.MaxPages == 0 {
		out.List.Pagination.MaxPages = DefaultMaxPages
	}
	if out.List.Pagination.Type == "page" && out.List.Pagination.Start == nil {
		one := 1
		out.List.Pagination.Start = &one
	}
	return out
}

// mergeInto fills every zero leaf of dst with src's (FileConfig's merge
// rule): structs recurse, everything else is a leaf.
func mergeInto(dst, src reflect.Value) {
	if dst.Kind() == reflect.Struct && dst.Type() != reflect.TypeFor[config.Secret]() {
		for i := range dst.NumField() {
			if dst.Type().Field(i).IsExported() {
				mergeInto(dst.Field(i), src.Field(i))
			}
		}
		return
	}
	if dst.IsZero() {
		dst.Set(src)
	}
}

var (
	fieldNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z_]*$`)
	methodRE    = regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE)$`)
	headerRE    = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)
)

// Validate checks the expanded config without network access or reading
// a secret. Field names in its errors are relative to the issuer entry.
func (c *FileConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}
	if c.Preset != "" {
		if _, ok := presets[c.Preset]; !ok {
			bad("preset", "unknown preset %q (known: %s)", c.Preset, strings.Join(PresetNames(), ", "))
			return errors.Join(errs...)
		}
		needs := presetNeeds(c.Preset, *c)
		for _, field := range sortedKeys(needs) {
			bad(field, "required by preset %s: %s", c.Preset, needs[field])
		}
		if len(needs) > 0 {
			return errors.Join(errs...)
		}
	}
	x := c.Expanded()
	if err := checkBaseURL(x.BaseURL); err != nil {
		bad("base_url", "%v", err)
	}
	if x.Timeout <= 0 {
		bad("timeout", "must be greater than 0")
	}
	if x.MaxActiveKeys < 0 {
		bad("max_active_keys", "must not be negative")
	}
	// Auth: at least one way, each complete.
	n := 0
	checkHeader := func(field, header, value string, token config.Secret) {
		if header == "" && !token.IsSet() {
			return
		}
		n++
		if !headerRE.MatchString(header) {
			bad(field+".header", "must be an HTTP header name")
		}
		if err := token.Check(false); err != nil {
			bad(field+".token", "%v", err)
		}
		checkTemplate(bad, field+".value", value, "token", true)
	}
	checkHeader("auth", x.Auth.Header, x.Auth.Value, x.Auth.Token)
	for i, h := range x.Auth.Extra {
		checkHeader(fmt.Sprintf("auth.extra[%d]", i), h.Header, h.Value, h.Token)
	}
	if x.Auth.Basic.Username.IsSet() || x.Auth.Basic.Password.IsSet() {
		n++
		if err := x.Auth.Basic.Username.Check(false); err != nil {
			bad("auth.basic.username", "%v", err)
		}
		if err := x.Auth.Basic.Password.Check(false); err != nil {
			bad("auth.basic.password", "%v", err)
		}
	}
	if n == 0 {
		bad("auth", "required: a header with a token, or basic credentials")
	}
	checkCall(bad, "create", x.Create, []string{"label"}, false)
	if strings.Contains(x.Create.Path, "{{id}}") {
		bad("create.path", "names an existing key ({{id}}): that is a roll, which revokes the old key at once; rekey creates a second key and revokes the old one only after the new one is live")
	} else if isRollPath(x.Create.Path) {
		bad("create.path", "is a known roll endpoint, which revokes the old key at once; rekey needs a call that creates a second key")
	}
	if !strings.Contains(x.Create.Body+x.Create.Path+fmt.Sprint(x.Create.Query)+fmt.Sprint(x.Create.Form), "{{label}}") {
		bad("create", "must send {{label}} (in body, form, path or query): rekey finds keys by label")
	}
	checkCall(bad, "get", x.Get, []string{"id"}, true)
	checkCall(bad, "list", x.List.Call, nil, false)
	checkCall(bad, "revoke", x.Revoke.Call, []string{"id"}, true)
	if x.List.Items == "" {
		bad("list.items", "required: the JSONPath of the key objects, e.g. $.data[*]")
	} else {
		checkPath(bad, "list.items", x.List.Items)
	}
	p := x.List.Pagination
	switch p.Type {
	case "":
	case "cursor":
		if p.Cursor == "" {
			bad("list.pagination.cursor", "required for cursor pagination: the JSONPath of the next cursor")
		}
		checkPath(bad, "list.pagination.cursor", p.Cursor)
		checkPath(bad, "list.pagination.has_more", p.HasMore)
		if p.Param == "" {
			bad("list.pagination.param", "required for cursor pagination: the query parameter of the cursor")
		}
	case "page":
		if p.Param == "" {
			bad("list.pagination.param", "required for page pagination: the query parameter of the page number")
		}
		if p.Start != nil && *p.Start < 0 {
			bad("list.pagination.start", "must not be negative")
		}
	case "link":
	case "url":
		if p.Cursor == "" {
			bad("list.pagination.cursor", "required for url pagination: the JSONPath of the next page's URL")
		}
		checkPath(bad, "list.pagination.cursor", p.Cursor)
	default:
		bad("list.pagination.type", "must be cursor, page, link or url")
	}
	if p.Size < 0 {
		bad("list.pagination.size", "must not be negative")
	}
	if (p.Size > 0) != (p.SizeParam != "") {
		bad("list.pagination.size", "size and size_param go together")
	}
	if p.MaxPages < 1 {
		bad("list.pagination.max_pages", "must be at least 1")
	}
	v := x.Verify
	if v.Path == "" {
		bad("verify.path", "required: a call that succeeds only with a working key")
	}
	if !methodRE.MatchString(v.Method) {
		bad("verify.method", "must be GET, POST, PUT, PATCH or DELETE")
	}
	checkTemplate(bad, "verify.path", v.Path, "", false)
	keyVars := []string{"key"}
	if len(x.Key.Fields) > 0 {
		keyVars = sortedKeys(x.Key.Fields)
	}
	if v.Basic != (BasicTemplate{}) {
		if v.Header != "" || v.Value != "" {
			bad("verify.basic", "header/value and basic are mutually exclusive: the key goes in one place")
		}
		checkTemplates(bad, "verify.basic.username", v.Basic.Username, keyVars, false)
		checkTemplates(bad, "verify.basic.password", v.Basic.Password, keyVars, false)
		if len(placeholders(v.Basic.Username+v.Basic.Password)) == 0 {
			bad("verify.basic", "must contain %s", placeholderList(keyVars))
		}
	} else {
		if !headerRE.MatchString(v.Header) {
			bad("verify.header", "must be an HTTP header name")
		}
		checkTemplates(bad, "verify.value", v.Value, keyVars, len(keyVars) == 1)
		if len(keyVars) > 1 && len(placeholders(v.Value)) == 0 {
			bad("verify.value", "must contain one of %s", placeholderList(keyVars))
		}
	}
	checkStatuses(bad, "verify.expect_status", v.ExpectStatus)
	checkStatuses(bad, "verify.refused_status", v.RefusedStatus)
	for _, s := range v.RefusedStatus {
		if slices.Contains(v.ExpectStatus, s) {
			bad("verify.refused_status", "%d is also in expect_status", s)
		}
	}
	m := x.Key
	for _, f := range []struct{ name, path string }{{"key.id", m.ID}, {"key.label", m.Label}} {
		if f.path == "" {
			bad(f.name, "required: a JSONPath into a key object, e.g. $.id")
		}
	}
	switch {
	case m.Value == "" && len(m.Fields) == 0:
		bad("key.value", "required (or key.fields): a JSONPath into a key object, e.g. $.value")
	case m.Value != "" && len(m.Fields) > 0:
		bad("key.fields", "key.value and key.fields are mutually exclusive: a key is one value or several fields")
	}
	for _, name := range sortedKeys(m.Fields) {
		if !fieldNameRE.MatchString(name) {
			bad("key.fields", "%q is not a field name (letters and _, starting with a letter)", name)
		}
		if name == "key" || name == "label" || name == "id" || name == "token" {
			bad("key.fields", "%q is a template name of its own; name the field otherwise", name)
		}
		if m.Fields[name] == "" {
			bad("key.fields."+name, "required: a JSONPath into a key object")
		}
		checkPath(bad, "key.fields."+name, m.Fields[name])
	}
	for _, f := range []struct{ name, path string }{
		{"key.id", m.ID}, {"key.value", m.Value}, {"key.label", m.Label}, {"key.created_at", m.CreatedAt},
		{"key.last_used_at", m.LastUsedAt}, {"key.revoked_at", m.RevokedAt}, {"key.prefix", m.Prefix}, {"key.status", m.Status},
		{"create.object", x.Create.Object}, {"get.object", x.Get.Object}, {"errors.message", x.Errors.Message},
	} {
		checkPath(bad, f.name, f.path)
	}
	if m.Status != "" && len(m.StatusMap.Active) == 0 {
		bad("key.status_map.active", "required with key.status: the status strings that mean active")
	}
	if m.Status == "" && len(m.StatusMap.Active)+len(m.StatusMap.Revoked) > 0 {
		bad("key.status", "required with key.status_map")
	}
	for _, s := range m.StatusMap.Revoked {
		if slices.Contains(m.StatusMap.Active, s) {
			bad("key.status_map.revoked", "%q is also active", s)
		}
	}
	id := x.Identify
	switch id.Match {
	case "":
	case "prefix", "suffix":
		if id.Length < 4 {
			bad("identify.length", "must be at least 4")
		}
	case "redacted":
		if id.Head < 1 || id.Tail < 1 {
			bad("identify.head", "head and tail must be at least 1")
		}
	case "pattern":
		if re, err := regexp.Compile(id.Pattern); id.Pattern == "" || err != nil {
			bad("identify.pattern", "required for match pattern: a regular expression whose first group is the public part")
		} else if re.NumSubexp() < 1 {
			bad("identify.pattern", "needs a capture group: the part of the value compared with identify.field")
		}
	default:
		bad("identify.match", "must be prefix, suffix, redacted or pattern")
	}
	if id.Match != "pattern" && id.Pattern != "" {
		bad("identify.pattern", "only with match: pattern")
	}
	switch {
	case id.Match != "" && len(m.Fields) > 0 && id.ValueField == "":
		bad("identify.value_field", "required with key.fields: the field whose value carries the public part")
	case id.ValueField != "" && m.Fields[id.ValueField] == "":
		bad("identify.value_field", "%q is not one of key.fields", id.ValueField)
	}
	if id.Match != "" && id.Field == "" {
		bad("identify.field", "required: the JSONPath of the public part in a key object")
	}
	checkPath(bad, "identify.field", id.Field)
	checkStatuses(bad, "errors.key_limit_status", x.Errors.KeyLimitStatus)
	if x.Errors.KeyLimitMessage != "" {
		if _, err := regexp.Compile(x.Errors.KeyLimitMessage); err != nil {
			bad("errors.key_limit_message", "not a regular expression: %v", err)
		}
		if x.Errors.Message == "" {
			bad("errors.key_limit_message", "needs errors.message: the JSONPath of the message it is matched against")
		}
	}
	return errors.Join(errs...)
}

func checkCall(bad func(string, string, ...any), name string, c Call, vars []string, needID bool) {
	if c.Path == "" {
		bad(name+".path", "required")
		return
	}
	if !methodRE.MatchString(c.Method) {
		bad(name+".method", "must be GET, POST, PUT, PATCH or DELETE")
	}
	allowed := ""
	if len(vars) > 0 {
		allowed = vars[0]
	}
	checkTemplate(bad, name+".path", c.Path, allowed, false)
	if !strings.HasPrefix(c.Path, "/") {
		bad(name+".path", "must start with /")
	}
	if needID && !strings.Contains(c.Path, "{{id}}") {
		bad(name+".path", "must carry {{id}}")
	}
	for _, k := range sortedKeys(c.Query) {
		checkTemplate(bad, name+".query."+k, c.Query[k], allowed, false)
	}
	for _, k := range sortedKeys(c.Form) {
		checkTemplate(bad, name+".form."+k, c.Form[k], allowed, false)
	}
	if c.Body != "" && len(c.Form) > 0 {
		bad(name+".form", "body and form are mutually exclusive")
	}
	if c.Body != "" {
		checkTemplate(bad, name+".body", c.Body, allowed, false)
		if _, err := renderBody(c.Body, map[string]string{"label": "x", "id": "x"}); err != nil {
			bad(name+".body", "%v", err)
		}
	}
	checkStatuses(bad, name+".expect_status", c.ExpectStatus)
}

func checkStatuses(bad func(string, string, ...any), field string, s []int) {
	for _, n := range s {
		if n < 100 || n > 599 {
			bad(field, "%d is not an HTTP status", n)
			return
		}
	}
}

func checkPath(bad func(string, string, ...any), field, p string) {
	if p == "" {
		return
	}
	if _, err := jsonpath.Parse(p); err != nil {
		bad(field, "not an RFC 9535 JSONPath: %v", err)
	}
}

// checkTemplate reports placeholders other than allowed; required: the
// template must use it.
func checkTemplate(bad func(string, string, ...any), field, tmpl, allowed string, required bool) {
	var names []string
	if allowed != "" {
		names = []string{allowed}
	}
	checkTemplates(bad, field, tmpl, names, required)
}

// checkTemplates reports placeholders not among allowed; required: the
// template must use allowed[0].
func checkTemplates(bad func(string, string, ...any), field, tmpl string, allowed []string, required bool) {
	for _, name := range placeholders(tmpl) {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				bad(field, "{{%s}} is not available here", name)
			} else {
				bad(field, "{{%s}} is not available here (only %s)", name, placeholderList(allowed))
			}
		}
	}
	if required && !strings.Contains(tmpl, "{{"+allowed[0]+"}}") {
		bad(field, "must contain {{%s}}", allowed[0])
	}
	if strings.ContainsAny(tmpl, "\r\n") && !strings.HasSuffix(field, ".body") {
		bad(field, "must be one line")
	}
}

// rollPathRE matches vendor endpoints that replace a key's value in place,
// revoking the old one at once (Cloudflare's PUT /user/tokens/{id}/value,
// "Roll Token").
var rollPathRE = regexp.MustCompile(`(?i)(/tokens/[^/]+/value$|/(roll|rotate|regenerate|reset)$)`)

func isRollPath(p string) bool { return rollPathRE.MatchString(strings.TrimRight(p, "/")) }

// checkBaseURL reports a URL that is not absolute http(s). The message
// never repeats the URL: it may carry a token.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("required (or a preset)")
	case err != nil:
		return errors.New("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("URL needs a host")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errors.New("must have no query, fragment or user info")
	}
	return nil
}

// Resolve expands the preset, reads the management secrets and returns
// the Config for New. Errors name references, never values.
func (c FileConfig) Resolve() (Config, error) {
	x := c.Expanded()
	var headers []Header
	add := func(field, name, tmpl string, ref config.Secret) error {
		tok, err := ref.Resolve()
		if err != nil {
			return fmt.Errorf("httpissuer: %s.token: %w", field, err)
		}
		headers = append(headers, Header{Name: name, Value: secret.New(strings.ReplaceAll(tmpl, "{{token}}", tok.Reveal()))})
		return nil
	}
	if x.Auth.Header != "" {
		if err := add("auth", x.Auth.Header, x.Auth.Value, x.Auth.Token); err != nil {
			return Config{}, err
		}
	}
	for i, h := range x.Auth.Extra {
		if err := add(fmt.Sprintf("auth.extra[%d]", i), h.Header, h.Value, h.Token); err != nil {
			return Config{}, err
		}
	}
	if x.Auth.Basic.Username.IsSet() {
		u, err := x.Auth.Basic.Username.Resolve()
		if err != nil {
			return Config{}, fmt.Errorf("httpissuer: auth.basic.username: %w", err)
		}
		p, err := x.Auth.Basic.Password.Resolve()
		if err != nil {
			return Config{}, fmt.Errorf("httpissuer: auth.basic.password: %w", err)
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(u.Reveal(), p.Reveal())
		headers = append(headers, Header{Name: "Authorization", Value: secret.New(r.Header.Get("Authorization"))})
	}
	return Config{API: x, Headers: headers}, nil
}

func placeholderList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{{" + n + "}}"
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

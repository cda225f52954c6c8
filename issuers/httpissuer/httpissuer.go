// Package httpissuer is the declarative issuer: any HTTP API that creates,
// lists and deletes keys, described in YAML (FileConfig) or by a preset
// for a known vendor (OpenAI admin keys, Cloudflare API tokens, Datadog
// API keys, SendGrid API keys, Twilio API keys). Responses are read with
// RFC 9535 JSONPath. It keeps
// apexverify's guarantees: a create is never retried blindly, 429s wait
// for Retry-After, response bodies are bounded, and no key value or
// management secret appears in an error or a log line.
package httpissuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"github.com/theory/jsonpath"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/neterr"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// ErrManagementAuth: the API refused the management credentials (401 or
// 403 on a management call). It wraps issuers.ErrUnauthorized and is
// always permanent.
var ErrManagementAuth = fmt.Errorf("management credentials refused: %w", issuers.ErrUnauthorized)

// Header is one management header with its value filled in.
type Header struct {
	Name  string
	Value secret.Value
}

// Config configures an Issuer: the expanded API description and the
// management headers Resolve built from its auth.
type Config struct {
	API     FileConfig
	Headers []Header
	// HTTPClient is used for every call; when nil, a client that does not
	// follow redirects (so no credential is sent elsewhere) over Transport.
	HTTPClient *http.Client
	Transport  http.RoundTripper
}

// Issuer talks to one account of one HTTP API. It is safe for concurrent
// use. New returns it wrapped so that it has exactly the optional
// abilities its config supports.
type Issuer struct {
	api     FileConfig
	base    *url.URL
	account string
	headers []Header
	secrets []secret.Value // every management secret, scrubbed from errors
	timeout time.Duration
	hc      *http.Client
	log     *zap.Logger

	object  map[string]*jsonpath.Path // per call: where the key object is
	items   *jsonpath.Path
	fields  map[string]*jsonpath.Path // key mapping, by yaml name
	cursor  *jsonpath.Path
	hasMore *jsonpath.Path
	message *jsonpath.Path
	idField *jsonpath.Path
	// valueFields are key.fields' paths, by field name: a multi-field key.
	valueFields map[string]*jsonpath.Path
	idPattern   *regexp.Regexp
	limitMsg    *regexp.Regexp

	mu      sync.Mutex
	deleted map[string]issuers.Key // keys this process deleted (revoke.deletes)

	maxTries       int
	createTries    int
	maxElapsed     time.Duration
	initialBackoff time.Duration
	maxBackoff     time.Duration
	clock          clockwork.Clock
}

// Option adjusts an Issuer.
type Option func(*Issuer)

// WithClock sets the clock that retry waits run on, Retry-After dates are
// read against and revocation times of deleted keys come from (default:
// the real clock). Per-request timeouts stay on real time.
func WithClock(c clockwork.Clock) Option { return func(i *Issuer) { i.clock = c } }

// Bounds of a response body: a page of keys, or one key.
const maxBody = 4 << 20

var (
	_ issuers.Issuer  = (*Issuer)(nil)
	_ issuers.Account = (*Issuer)(nil)
)

// New checks c and returns the issuer, which implements issuers.Account
// always, issuers.Identifier when c.API.Identify is set,
// issuers.UsageReporter when key.last_used_at is mapped and
// issuers.KeyLimiter when max_active_keys is set. It makes no network
// call.
func New(c Config, log *zap.Logger, opts ...Option) (issuers.Issuer, error) {
	i, err := newIssuer(c, log, opts...)
	if err != nil {
		return nil, err
	}
	return i.withAbilities(), nil
}

func newIssuer(c Config, log *zap.Logger, opts ...Option) (*Issuer, error) {
	api := c.API
	if err := api.Validate(); err != nil {
		return nil, fmt.Errorf("httpissuer: invalid config: %w", err)
	}
	api = api.Expanded()
	base := strings.TrimRight(api.BaseURL, "/")
	u, _ := url.Parse(base)
	if len(c.Headers) == 0 {
		return nil, errors.New("httpissuer: management credentials are required")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if log == nil {
		log = zap.NewNop()
	}
	i := &Issuer{
		api: api, base: u, account: Type + " " + base, headers: c.Headers,
		timeout: time.Duration(api.Timeout), hc: hc, log: log,
		object:   map[string]*jsonpath.Path{},
		fields:   map[string]*jsonpath.Path{},
		deleted:  map[string]issuers.Key{},
		maxTries: 6, createTries: 4, maxElapsed: 2 * time.Minute,
		initialBackoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second,
		clock: clockwork.NewRealClock(),
	}
	for _, h := range c.Headers {
		i.secrets = append(i.secrets, h.Value)
	}
	mustPath := func(p string) *jsonpath.Path {
		if p == "" {
			return nil
		}
		return jsonpath.MustParse(p) // Validate parsed it
	}
	i.object["create"] = mustPath(api.Create.Object)
	i.object["get"] = mustPath(api.Get.Object)
	i.object["revoke"] = mustPath(api.Revoke.Object)
	i.items = mustPath(api.List.Items)
	m := api.Key
	for name, p := range map[string]string{"id": m.ID, "value": m.Value, "label": m.Label, "created_at": m.CreatedAt,
		"last_used_at": m.LastUsedAt, "revoked_at": m.RevokedAt, "prefix": m.Prefix, "status": m.Status} {
		if p != "" {
			i.fields[name] = mustPath(p)
		}
	}
	i.cursor = mustPath(api.List.Pagination.Cursor)
	i.hasMore = mustPath(api.List.Pagination.HasMore)
	i.message = mustPath(api.Errors.Message)
	i.idField = mustPath(api.Identify.Field)
	if len(m.Fields) > 0 {
		i.valueFields = map[string]*jsonpath.Path{}
		for name, p := range m.Fields {
			i.valueFields[name] = mustPath(p)
		}
	}
	if api.Identify.Pattern != "" {
		i.idPattern = regexp.MustCompile(api.Identify.Pattern) // Validate compiled it
	}
	if api.Errors.KeyLimitMessage != "" {
		i.limitMsg = regexp.MustCompile(api.Errors.KeyLimitMessage)
	}
	for _, o := range opts {
		o(i)
	}
	return i, nil
}

// Account is "http " and the base URL without a trailing slash
// (issuers.Account); it stays the same for the same base_url.
func (i *Issuer) Account() string { return i.account }

// Fields names the fields of every key value (key.fields), sorted; nil
// when the values are single (key.value). See issuers.Fielded.
func (i *Issuer) Fields() []string {
	if len(i.api.Key.Fields) == 0 {
		return nil
	}
	return sortedKeys(i.api.Key.Fields)
}

// GoString and String print no secret.
func (i *Issuer) String() string   { return "httpissuer(" + i.account + ")" }
func (i *Issuer) GoString() string { return i.String() }

// Create mints a key labelled label, with the semantics of
// issuers.Issuer.Create: a 429 waits for Retry-After; when the outcome of
// a request is unknown (timeout, connection lost after sending, 5xx, a 2xx
// without a usable key), every active key labelled label is revoked
// before trying again; if that clean-up fails, or an attempt the server
// never answered (timeout, lost connection, 502, 504) preceded the final
// failure, the error wraps issuers.ErrMaybeCreated. If ctx ends while an
// outcome is unknown nothing is cleaned up (ErrMaybeCreated): the clean-up
// is the caller's, under its lock.
func (i *Issuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	if label == "" || strings.ContainsAny(label, "\r\n\x00") || len(label) > 200 {
		return issuers.Key{}, secret.Value{}, backoff.Permanent(fmt.Errorf("httpissuer: create: label must be 1-200 characters on one line: %w", issuers.ErrInvalidLabel))
	}
	vars := map[string]string{"label": label}
	var (
		k             issuers.Key
		v             secret.Value
		cleanupFailed bool
		inFlight      bool
	)
	p := i.policy(i.createTries, func(err error) bool { return cleanupFailed || isPermanent(err) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("httpissuer: retrying create", zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	err := i.try(ctx, p, func(ctx context.Context) error {
		res := i.call(ctx, i.api.Create, vars)
		if res.err == nil && i.ok(i.api.Create, res.status) {
			var err error
			k, v, err = i.decodeObject("create", res.body, true)
			if err == nil && v.IsZero() {
				err = errors.New("the create response carries no key value")
			}
			if err == nil && k.Label != label {
				err = errors.New("the created key does not carry the label")
			}
			if err == nil {
				if k.Status == "" {
					k.Status = issuers.Active
				}
				return nil
			}
			v = secret.Value{}
			if k.ID != "" && safeID(k.ID) == k.ID {
				// Created, and it says which key it made, but the key is
				// unusable (no value, or the API changed the label, which
				// a clean-up by label would miss): revoke that key. A
				// retry would make the same.
				if rerr := i.Revoke(ctx, k.ID); rerr != nil {
					return backoff.Permanent(fmt.Errorf("httpissuer: create %s: %v; revoking the unusable key %s: %v (%w)", label, err, k.ID, rerr, issuers.ErrMaybeCreated))
				}
				i.log.Warn("httpissuer: revoked a created key that was unusable", zap.String("key_id", k.ID), zap.String("label", label))
				return backoff.Permanent(fmt.Errorf("httpissuer: create %s: %w (the key was revoked)", label, err))
			}
			// Created, but the answer is unusable: the value is lost.
			res.err = err
			res.ambiguous = true
		}
		err := i.fail("create "+label, res)
		if isPermanent(err) || !res.ambiguous {
			return err
		}
		if res.status == 0 || res.status == http.StatusBadGateway || res.status == http.StatusGatewayTimeout {
			inFlight = true
		}
		err, cleanupFailed = issuers.AfterUnknownCreate(ctx, err, label, i.revokeOrphans)
		return err
	})
	if err != nil {
		return issuers.Key{}, secret.Value{}, issuers.MaybeCreated(err, inFlight)
	}
	return k, v, nil
}

// revokeOrphans revokes every active key labelled label.
func (i *Issuer) revokeOrphans(ctx context.Context, label string) error {
	keys, err := i.listAll(ctx, "list keys labelled "+label)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Status != issuers.Active || k.Label != label {
			continue
		}
		if err := i.Revoke(ctx, k.ID); err != nil {
			return err
		}
		i.log.Warn("httpissuer: revoked a key whose create response was lost", zap.String("key_id", k.ID), zap.String("label", label))
	}
	return nil
}

// Find returns every key labelled exactly label, newest first: the
// listed ones, and those this process deleted.
func (i *Issuer) Find(ctx context.Context, label string) ([]issuers.Key, error) {
	if label == "" {
		return nil, backoff.Permanent(fmt.Errorf("httpissuer: find: empty label: %w", issuers.ErrInvalidLabel))
	}
	keys, err := i.listAll(ctx, "find "+label)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []issuers.Key
	for _, k := range keys {
		if k.Label == label {
			out = append(out, k)
			seen[k.ID] = true
		}
	}
	i.mu.Lock()
	for id, k := range i.deleted {
		if k.Label == label && !seen[id] {
			out = append(out, k)
		}
	}
	i.mu.Unlock()
	sortNewest(out)
	return out, nil
}

// List returns the active keys, newest first.
func (i *Issuer) List(ctx context.Context) ([]issuers.Key, error) {
	keys, err := i.listAll(ctx, "list keys")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k issuers.Key) bool { return k.Status != issuers.Active }), nil
}

// listAll reads every page of the list, newest first.
func (i *Issuer) listAll(ctx context.Context, op string) ([]issuers.Key, error) {
	objs, err := i.listPages(ctx, op)
	if err != nil {
		return nil, err
	}
	keys := make([]issuers.Key, len(objs))
	for n, o := range objs {
		keys[n] = o.key
	}
	return sortNewest(keys), nil
}

// keyObject is a listed key with the object it was read from.
type keyObject struct {
	key issuers.Key
	obj any
}

// listPages reads every page of the list, in the API's order.
func (i *Issuer) listPages(ctx context.Context, op string) ([]keyObject, error) {
	pg := i.api.List.Pagination
	call := i.api.List.Call
	query := map[string]string{}
	for k, v := range call.Query {
		query[k] = v
	}
	if pg.SizeParam != "" {
		query[pg.SizeParam] = strconv.Itoa(pg.Size)
	}
	page := 0
	if pg.Start != nil {
		page = *pg.Start
	}
	var (
		keys []keyObject
		next *url.URL // link pagination
	)
	for n := 0; ; n++ {
		if n == pg.MaxPages {
			return nil, backoff.Permanent(fmt.Errorf("httpissuer: %s: more than %d pages (list.pagination.max_pages)", op, pg.MaxPages))
		}
		if pg.Type == "page" {
			query[pg.Param] = strconv.Itoa(page)
		}
		c := call
		c.Query = query
		var res result
		err := i.retry(ctx, op, func(ctx context.Context) error {
			if next != nil {
				res = i.do(ctx, c.Method, next, nil, i.headers)
			} else {
				res = i.call(ctx, c, nil)
			}
			if res.err == nil && i.ok(c, res.status) {
				return nil
			}
			return i.fail(op, res)
		})
		if err != nil {
			return nil, err
		}
		doc, err := parseJSON(res.body)
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("httpissuer: %s: %v", op, err))
		}
		objs := i.items.Select(doc)
		for _, o := range objs {
			// A list that shows values is fine (some do); they are not kept.
			k, _, err := i.decodeKey(o)
			if err != nil {
				return nil, backoff.Permanent(fmt.Errorf("httpissuer: %s: %w", op, err))
			}
			keys = append(keys, keyObject{k, o})
		}
		switch pg.Type {
		case "cursor":
			cur := scalarString(first(i.cursor.Select(doc)))
			more := cur != ""
			if i.hasMore != nil {
				b, _ := first(i.hasMore.Select(doc)).(bool)
				more = b && cur != ""
			}
			if !more {
				return keys, nil
			}
			query[pg.Param] = cur
		case "page":
			if len(objs) == 0 || (pg.Size > 0 && len(objs) < pg.Size) {
				return keys, nil
			}
			page++
		case "link", "url":
			var nu *url.URL
			if pg.Type == "link" {
				nu, err = i.nextLink(res.header)
			} else {
				nu, err = i.nextURL(scalarString(first(i.cursor.Select(doc))))
			}
			if err != nil {
				return nil, backoff.Permanent(fmt.Errorf("httpissuer: %s: %w", op, err))
			}
			if nu == nil {
				return keys, nil
			}
			next = nu
		default:
			return keys, nil
		}
	}
}

// nextLink returns the rel="next" target of a Link header (RFC 8288), or
// nil. A target on another host than base_url is refused: the management
// credentials go only to the API.
func (i *Issuer) nextLink(h http.Header) (*url.URL, error) {
	for _, line := range h.Values("Link") {
		for _, part := range splitLinks(line) {
			target, params, ok := strings.Cut(part, ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			isNext := false
			for _, p := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "rel") {
					for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
						isNext = isNext || strings.EqualFold(r, "next")
					}
				}
			}
			if !isNext {
				continue
			}
			return i.sameHost(target[1:len(target)-1], `the Link: rel="next" target`)
		}
	}
	return nil, nil
}

// nextURL returns the next page's URL named in an answer (url
// pagination), or nil at the end.
func (i *Issuer) nextURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	return i.sameHost(s, "the next page's URL")
}

// sameHost resolves ref against base_url and refuses a target on another
// host: the management credentials go only to the API.
func (i *Issuer) sameHost(ref, what string) (*url.URL, error) {
	u, err := i.base.Parse(ref)
	if err != nil {
		return nil, errors.New("malformed " + what)
	}
	if u.Scheme != i.base.Scheme || !strings.EqualFold(u.Host, i.base.Host) {
		return nil, errors.New(what + " is on another host than base_url; not following it")
	}
	return u, nil
}

// splitLinks splits a Link header at the commas between link-values.
func splitLinks(s string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for j, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == '<' && !quoted:
			depth++
		case r == '>' && !quoted:
			depth--
		case r == ',' && !quoted && depth == 0:
			parts = append(parts, s[start:j])
			start = j + 1
		}
	}
	return append(parts, s[start:])
}

// Get returns one key; an error wrapping issuers.ErrNotFound (permanent)
// for an unknown ID. A key this process deleted is returned revoked.
func (i *Issuer) Get(ctx context.Context, id string) (issuers.Key, error) {
	if k, ok := i.tombstone(id); ok {
		return k, nil
	}
	return i.get(ctx, "get", id)
}

func (i *Issuer) get(ctx context.Context, verb, id string) (issuers.Key, error) {
	if err := checkID(verb, id); err != nil {
		return issuers.Key{}, err
	}
	op := verb + " " + safeID(id)
	var k issuers.Key
	err := i.retry(ctx, op, func(ctx context.Context) error {
		res := i.call(ctx, i.api.Get, map[string]string{"id": id})
		if res.err == nil && i.ok(i.api.Get, res.status) {
			var err error
			if k, _, err = i.decodeObject("get", res.body, false); err == nil {
				return nil
			}
			res.err = err
		}
		return i.fail(op, res)
	})
	return k, err
}

// Revoke revokes a key; revoking a revoked key succeeds. An unknown ID is
// an error wrapping issuers.ErrNotFound (permanent). With revoke.deletes,
// a key this process deleted counts as revoked.
func (i *Issuer) Revoke(ctx context.Context, id string) error {
	if _, ok := i.tombstone(id); ok {
		return nil
	}
	if err := checkID("revoke", id); err != nil {
		return err
	}
	var before issuers.Key
	if i.api.Revoke.Deletes {
		// Kept to report the key revoked afterwards.
		k, err := i.get(ctx, "revoke", id)
		if err != nil {
			return err
		}
		before = k
	}
	op := "revoke " + safeID(id)
	err := i.retry(ctx, op, func(ctx context.Context) error {
		res := i.call(ctx, i.api.Revoke.Call, map[string]string{"id": id})
		if res.err == nil && i.ok(i.api.Revoke.Call, res.status) {
			return nil
		}
		if res.err == nil && res.status == http.StatusNotFound && i.api.Revoke.Deletes && before.ID != "" {
			// A retried DELETE whose first answer was lost: gone is done.
			return nil
		}
		return i.fail(op, res)
	})
	if err == nil && i.api.Revoke.Deletes {
		before.Status, before.RevokedAt = issuers.Revoked, i.clock.Now().UTC()
		if before.RevokedAt.Before(before.CreatedAt) {
			before.RevokedAt = before.CreatedAt
		}
		i.mu.Lock()
		i.deleted[id] = before
		i.mu.Unlock()
	}
	return err
}

func (i *Issuer) tombstone(id string) (issuers.Key, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	k, ok := i.deleted[id]
	return k, ok
}

// Verify makes the verify call with value. A refusal (verify's
// refused_status) is an error wrapping issuers.ErrUnauthorized, neither
// permanent nor retried here: a new key may take a moment to work.
func (i *Issuer) Verify(ctx context.Context, value secret.Value) error {
	if value.IsZero() {
		return backoff.Permanent(fmt.Errorf("httpissuer: verify: empty key: %w", issuers.ErrUnauthorized))
	}
	v := i.api.Verify
	hdr, err := i.verifyHeader(value)
	if err != nil {
		return backoff.Permanent(fmt.Errorf("httpissuer: verify: %v: %w", err, issuers.ErrUnauthorized))
	}
	u := i.url(renderPath(v.Path, nil), renderQuery(v.Query, nil))
	return i.retry(ctx, "verify", func(ctx context.Context) error {
		res := i.do(ctx, v.Method, u, nil, hdr)
		switch {
		case res.err == nil && slices.Contains(v.ExpectStatus, res.status):
			return nil
		case res.err == nil && slices.Contains(v.RefusedStatus, res.status):
			return secret.Scrub(fmt.Errorf("httpissuer: verify: key refused: %w", i.apiError(res)), value, hdr[0].Value)
		case res.err == nil && res.status/100 == 4 && res.status != http.StatusTooManyRequests:
			return secret.Scrub(backoff.Permanent(fmt.Errorf("httpissuer: verify: unexpected %w", i.apiError(res))), value, hdr[0].Value)
		}
		return secret.Scrub(i.fail("verify", res), value, hdr[0].Value)
	})
}

// verifyHeader is the header that carries value on the verify call: the
// header template, or basic auth, filled with the key (single value) or
// its fields (multi-field).
func (i *Issuer) verifyHeader(value secret.Value) ([]Header, error) {
	v := i.api.Verify
	vars := map[string]string{"key": value.Reveal()}
	if i.valueFields != nil {
		fs, ok := value.Fields()
		if !ok {
			return nil, errors.New("the key is a single value; key.fields expects fields")
		}
		vars = map[string]string{}
		for name := range i.valueFields {
			f, ok := fs[name]
			if !ok {
				return nil, fmt.Errorf("the key has no field %s", name)
			}
			vars[name] = f.Reveal()
		}
	} else if value.IsFields() {
		return nil, errors.New("the key has fields; this issuer's keys are single values")
	}
	fill := func(t string) (string, error) {
		out := t
		for name, val := range vars {
			var err error
			if out, err = renderHeader(out, name, val); err != nil {
				return "", err
			}
		}
		return out, nil
	}
	if v.Basic != (BasicTemplate{}) {
		user, err := fill(v.Basic.Username)
		if err != nil {
			return nil, err
		}
		pass, err := fill(v.Basic.Password)
		if err != nil {
			return nil, err
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(user, pass)
		return []Header{{Name: "Authorization", Value: secret.New(r.Header.Get("Authorization"))}}, nil
	}
	hv, err := fill(v.Value)
	if err != nil {
		return nil, err
	}
	return []Header{{Name: v.Header, Value: secret.New(hv)}}, nil
}

// identify returns the one active key whose public part matches value.
func (i *Issuer) identify(ctx context.Context, value secret.Value) (issuers.Key, error) {
	id := i.api.Identify
	s := value.Reveal()
	if id.ValueField != "" {
		f := value.Field(id.ValueField)
		if f.IsZero() {
			return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: the value has no field %s: %w", id.ValueField, issuers.ErrNotFound))
		}
		s = f.Reveal()
	}
	var want string
	switch id.Match {
	case "pattern":
		m := i.idPattern.FindStringSubmatch(s)
		if m == nil || m[1] == "" {
			return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: the value does not match identify.pattern: %w", issuers.ErrNotFound))
		}
		want = m[1]
	case "prefix":
		if len(s) <= id.Length {
			return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: value too short to carry a prefix: %w", issuers.ErrNotFound))
		}
		want = s[:id.Length]
	case "suffix":
		if len(s) <= id.Length*2 {
			return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: value too short to carry a suffix: %w", issuers.ErrNotFound))
		}
		want = s[len(s)-id.Length:]
	case "redacted":
		if len(s) <= (id.Head+id.Tail)*2 {
			return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: value too short for its redacted form: %w", issuers.ErrNotFound))
		}
		want = s[:id.Head] + id.Separator + s[len(s)-id.Tail:]
	}
	objs, err := i.listPages(ctx, "list keys")
	if err != nil {
		return issuers.Key{}, secret.Scrub(err, value)
	}
	var found []issuers.Key
	for _, o := range objs {
		if o.key.Status == issuers.Active && scalarString(first(i.idField.Select(o.obj))) == want {
			found = append(found, o.key)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: no active key matches the value's %s: %w", id.Match, issuers.ErrNotFound))
	default:
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("httpissuer: identify: %d active keys match the value's %s, so none is identified: %w", len(found), id.Match, issuers.ErrNotFound))
	}
}

// lastUsed returns when the key last authenticated; zero if never.
func (i *Issuer) lastUsed(ctx context.Context, id string) (time.Time, error) {
	k, err := i.Get(ctx, id)
	return k.LastUsedAt, err
}

// result is the outcome of one HTTP request.
type result struct {
	status     int
	body       []byte
	header     http.Header
	retryAfter time.Duration
	err        error
	ambiguous  bool
	timedOut   bool
}

func (i *Issuer) url(path string, q url.Values) *url.URL {
	// path is escaped already (renderPath): keep it as sent.
	u := *i.base
	plain, err := url.PathUnescape(path)
	if err != nil {
		plain = path
	}
	u.Path = i.base.Path + plain
	u.RawPath = i.base.EscapedPath() + path
	u.RawQuery = q.Encode()
	return &u
}

// call makes one management request of c with vars filled in.
func (i *Issuer) call(ctx context.Context, c Call, vars map[string]string) result {
	var body []byte
	ctype := "application/json"
	switch {
	case c.Body != "":
		var err error
		if body, err = renderBody(c.Body, vars); err != nil {
			return result{err: backoff.Permanent(err)}
		}
	case len(c.Form) > 0:
		body, ctype = []byte(renderQuery(c.Form, vars).Encode()), "application/x-www-form-urlencoded"
	}
	return i.doBody(ctx, c.Method, i.url(renderPath(c.Path, vars), renderQuery(c.Query, vars)), body, ctype, i.headers)
}

// do makes one request with the per-request timeout and a JSON body, if
// any.
func (i *Issuer) do(ctx context.Context, method string, u *url.URL, body []byte, headers []Header) result {
	return i.doBody(ctx, method, u, body, "application/json", headers)
}

// doBody makes one request with the per-request timeout and a body of
// content type ctype, if any.
func (i *Issuer) doBody(ctx context.Context, method string, u *url.URL, body []byte, ctype string, headers []Header) result {
	rctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	var sent bool
	rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sent = true },
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), rd)
	if err != nil {
		return result{err: err}
	}
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value.Reveal())
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := i.hc.Do(req)
	if err != nil {
		return result{err: err, ambiguous: sent, timedOut: ctx.Err() == nil && rctx.Err() != nil}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err == nil && len(data) > maxBody {
		err = fmt.Errorf("response body exceeds %d bytes", maxBody)
	}
	if err != nil {
		return result{status: resp.StatusCode, err: fmt.Errorf("read response: %w", err), ambiguous: true, timedOut: ctx.Err() == nil && rctx.Err() != nil}
	}
	return result{
		status: resp.StatusCode, body: data, header: resp.Header,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), i.clock.Now()),
		ambiguous:  resp.StatusCode >= 500,
	}
}

func (i *Issuer) ok(c Call, status int) bool {
	if len(c.ExpectStatus) > 0 {
		return slices.Contains(c.ExpectStatus, status)
	}
	return status/100 == 2
}

// fail turns a failed result into the error for op: retryable for
// transport errors, timeouts, 5xx and 429; permanent otherwise. The
// management secrets are scrubbed from the message.
func (i *Issuer) fail(op string, res result) error {
	var err error
	switch {
	case res.timedOut:
		err = fmt.Errorf("httpissuer: %s: no answer within %s: %w", op, i.timeout, context.DeadlineExceeded)
	case res.err != nil && isPermanent(res.err):
		err = fmt.Errorf("httpissuer: %s: %w", op, res.err)
	case res.err != nil && !res.ambiguous && neterr.Permanent(res.err):
		err = backoff.Permanent(fmt.Errorf("httpissuer: %s: %w", op, res.err))
	case res.err != nil:
		err = fmt.Errorf("httpissuer: %s: %w", op, res.err)
	default:
		ae := i.apiError(res)
		switch {
		case ae.retryable():
			err = fmt.Errorf("httpissuer: %s: %w", op, ae)
		case errors.Is(ae, issuers.ErrKeyLimit):
			err = backoff.Permanent(fmt.Errorf("httpissuer: %s: %w", op, ae))
		case res.status == http.StatusUnauthorized || res.status == http.StatusForbidden:
			err = backoff.Permanent(fmt.Errorf("httpissuer: %s: %w (%w)", op, ErrManagementAuth, ae))
		case res.status < 400:
			err = backoff.Permanent(fmt.Errorf("httpissuer: %s: unexpected %w", op, ae))
		default:
			err = backoff.Permanent(fmt.Errorf("httpissuer: %s: %w", op, ae))
		}
	}
	return secret.Scrub(err, i.secrets...)
}

// apiError is a non-success answer; it unwraps to the sentinel its status
// stands for.
type apiError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
	sentinel   error
}

func (e *apiError) Error() string {
	s := "status " + strconv.Itoa(e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *apiError) Unwrap() error { return e.sentinel }

func (e *apiError) retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

func (i *Issuer) apiError(res result) *apiError {
	e := &apiError{Status: res.status, RetryAfter: res.retryAfter}
	if i.message != nil {
		if doc, err := parseJSON(res.body); err == nil {
			e.Message = safeText(scalarString(first(i.message.Select(doc))), 200)
		}
	}
	// errors.key_limit_status wins: an API may answer a full account with
	// 403, which otherwise means refused credentials.
	switch {
	case slices.Contains(i.api.Errors.KeyLimitStatus, res.status) && (i.limitMsg == nil || i.limitMsg.MatchString(e.Message)):
		e.sentinel = issuers.ErrKeyLimit
	case res.status == http.StatusUnauthorized || res.status == http.StatusForbidden:
		e.sentinel = issuers.ErrUnauthorized
	case res.status == http.StatusNotFound:
		e.sentinel = issuers.ErrNotFound
	}
	return e
}

// decodeObject finds call's key object in body and maps it.
func (i *Issuer) decodeObject(call string, body []byte, wantValue bool) (issuers.Key, secret.Value, error) {
	doc, err := parseJSON(body)
	if err != nil {
		return issuers.Key{}, secret.Value{}, err
	}
	objs := i.object[call].Select(doc)
	if len(objs) != 1 {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key: %s.object selects %d nodes, want 1", call, len(objs))
	}
	k, v, err := i.decodeKey(objs[0])
	if !wantValue {
		v = secret.Value{}
	}
	return k, v, err
}

// decodeKey maps one key object. Errors quote nothing of the input but a
// well-formed ID.
func (i *Issuer) decodeKey(obj any) (issuers.Key, secret.Value, error) {
	get := func(name string) any {
		p := i.fields[name]
		if p == nil {
			return nil
		}
		return first(p.Select(obj))
	}
	k := issuers.Key{ID: scalarString(get("id")), Label: scalarString(get("label")), Prefix: scalarString(get("prefix"))}
	if k.ID == "" {
		return issuers.Key{}, secret.Value{}, errors.New("decode key: missing id")
	}
	var err error
	if k.CreatedAt, err = parseTime(get("created_at")); err != nil {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key %s: created_at: %w", safeID(k.ID), err)
	}
	if k.LastUsedAt, err = parseTime(get("last_used_at")); err != nil {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key %s: last_used_at: %w", safeID(k.ID), err)
	}
	if k.RevokedAt, err = parseTime(get("revoked_at")); err != nil {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key %s: revoked_at: %w", safeID(k.ID), err)
	}
	k.Status = issuers.Active
	if i.fields["status"] != nil {
		s := scalarString(get("status"))
		switch {
		case slices.Contains(i.api.Key.StatusMap.Active, s):
		case slices.Contains(i.api.Key.StatusMap.Revoked, s):
			k.Status = issuers.Revoked
		default:
			return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key %s: status %q is in neither key.status_map.active nor revoked", safeID(k.ID), safeText(s, 32))
		}
	}
	var v secret.Value
	if i.valueFields != nil {
		// All fields or none: a pair missing one half is no value.
		fs := map[string]string{}
		for name, p := range i.valueFields {
			if s, ok := first(p.Select(obj)).(string); ok && s != "" {
				fs[name] = s
			}
		}
		if len(fs) == len(i.valueFields) {
			v = secret.NewFields(fs)
		}
	} else if s, ok := get("value").(string); ok && s != "" {
		v = secret.New(s)
	}
	if k.Prefix != "" && !v.IsZero() && !v.IsFields() && !strings.HasPrefix(v.Reveal(), k.Prefix) {
		return issuers.Key{}, secret.Value{}, fmt.Errorf("decode key %s: the value does not start with its prefix", safeID(k.ID))
	}
	return k, v, nil
}

func parseJSON(body []byte) (any, error) {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("malformed JSON response")
	}
	return doc, nil
}

func first(nodes jsonpath.NodeList) any {
	if len(nodes) == 0 {
		return nil
	}
	return nodes[0]
}

// scalarString is a JSON string or number as text; "" for anything else.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// parseTime reads an RFC 3339 string or Unix seconds; null is zero.
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		if x == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			if t, err = time.Parse(time.RFC1123Z, x); err != nil {
				return time.Time{}, errors.New("neither an RFC 3339 time nor an RFC 1123 date with a numeric zone")
			}
		}
		return t.UTC(), nil
	case float64:
		if x < 0 || x > 1e11 || math.IsNaN(x) {
			return time.Time{}, errors.New("not a Unix time")
		}
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, errors.New("neither a string nor a number")
}

func sortNewest(keys []issuers.Key) []issuers.Key {
	sort.SliceStable(keys, func(a, b int) bool { return keys[a].CreatedAt.After(keys[b].CreatedAt) })
	return keys
}

func checkID(verb, id string) error {
	if id == "" || safeID(id) != id {
		return backoff.Permanent(fmt.Errorf("httpissuer: %s: malformed key id: %w", verb, issuers.ErrNotFound))
	}
	return nil
}

// safeID keeps an ID printable in an error only if it looks like an ID.
func safeID(id string) string {
	if len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r == '_' || r == '-' || r == '.' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) {
		return "(malformed id)"
	}
	return id
}

func safeText(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('?')
		}
		n--
	}
	return b.String()
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

func (i *Issuer) retry(ctx context.Context, op string, call func(context.Context) error) error {
	p := i.policy(i.maxTries, func(err error) bool { return isPermanent(err) || errors.Is(err, issuers.ErrUnauthorized) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("httpissuer: retrying", zap.String("call", op), zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	return i.try(ctx, p, call)
}

func (i *Issuer) policy(tries int, stop func(error) bool) retry.Policy {
	return retry.Policy{
		Initial: i.initialBackoff, Max: i.maxBackoff, Jitter: 0.5,
		Tries: tries, For: i.maxElapsed, Clock: i.clock, Permanent: stop,
		After: func(err error) time.Duration {
			var ae *apiError
			if errors.As(err, &ae) {
				return ae.RetryAfter
			}
			return 0
		},
	}
}

func (i *Issuer) try(ctx context.Context, p retry.Policy, call func(context.Context) error) error {
	var ended bool
	n, err := p.Do(ctx, func(ctx context.Context) error {
		err := call(ctx)
		ended = ctx.Err() != nil
		return err
	})
	switch {
	case err == nil, p.Permanent(err), ended:
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%w (while waiting to retry: %v)", err, context.Cause(ctx))
	default:
		return fmt.Errorf("%w (gave up after %d attempts)", err, n)
	}
}

func isPermanent(err error) bool { return errors.As(err, new(*backoff.PermanentError)) }

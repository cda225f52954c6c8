// Package apexverify is the issuer for ApexVerify API keys. It speaks
// ApexVerify's key-management API v1 (the project's apexverify API.md);
// the simulator that speaks the other side is apexverify/apexsim.
package apexverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/neterr"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// PrefixLen is the length of a key's public prefix.
const PrefixLen = 12

// DefaultTimeout bounds each HTTP request when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// DefaultMaxActiveKeys is how many active keys an ApexVerify account may
// hold unless the account's plan says otherwise (the API answers
// key_limit_reached past it); used when Config.MaxActiveKeys is 0.
const DefaultMaxActiveKeys = 10

// ErrManagementToken: ApexVerify refused the management token. It wraps
// issuers.ErrUnauthorized and is always permanent.
var ErrManagementToken = fmt.Errorf("management token refused: %w", issuers.ErrUnauthorized)

// Config configures an Issuer.
type Config struct {
	// BaseURL is the API root, e.g. https://api.apexverify.com.
	BaseURL string
	// ManagementToken authorizes creating, listing and revoking keys.
	ManagementToken secret.Value
	// Timeout bounds each HTTP request; DefaultTimeout when 0.
	Timeout time.Duration
	// MaxActiveKeys is the account's limit of active keys;
	// DefaultMaxActiveKeys when 0. A key list larger than 1 KiB per key of
	// it (and than 1 MiB) is refused.
	MaxActiveKeys int
	// HTTPClient is used for every call; when nil, a client that does not
	// follow redirects (so no bearer is ever sent elsewhere), over
	// Transport.
	HTTPClient *http.Client
	// Transport carries the default client's requests; when nil,
	// http.DefaultTransport, which keeps only 2 idle connections per host.
	// Issuers of one host should share one (see Transports).
	Transport http.RoundTripper
}

// Issuer talks to one ApexVerify account. It is safe for concurrent use.
type Issuer struct {
	base    *url.URL
	account string // Account's answer
	token   secret.Value
	timeout time.Duration
	maxKeys int
	// listBody bounds a key list's body (listBodyLimit of maxKeys).
	listBody int
	hc       *http.Client
	log      *zap.Logger

	// Retry policy, waiting on clock.
	maxTries       int           // per GET/DELETE call
	createTries    int           // create attempts, cleanups in between
	maxElapsed     time.Duration // overall bound of one call with its retries
	initialBackoff time.Duration
	maxBackoff     time.Duration
	clock          clockwork.Clock
}

// Option adjusts an Issuer.
type Option func(*Issuer)

// WithClock sets the clock that retry waits run on and that Retry-After
// dates are read against (default: the real clock). Per-request timeouts
// stay on real time: they bound real network calls.
func WithClock(c clockwork.Clock) Option { return func(i *Issuer) { i.clock = c } }

var (
	_ issuers.Issuer        = (*Issuer)(nil)
	_ issuers.Identifier    = (*Issuer)(nil)
	_ issuers.UsageReporter = (*Issuer)(nil)
	_ issuers.KeyLimiter    = (*Issuer)(nil)
	_ issuers.Fielded       = (*Issuer)(nil)
	_ issuers.Account       = (*Issuer)(nil)
)

// New checks c and returns an Issuer. It makes no network call.
func New(c Config, log *zap.Logger, opts ...Option) (*Issuer, error) {
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("apexverify: base_url must be an http or https URL without query")
	}
	if c.ManagementToken.IsZero() {
		return nil, errors.New("apexverify: management token is required")
	}
	if c.Timeout < 0 {
		return nil, errors.New("apexverify: timeout must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxActiveKeys < 0 {
		return nil, errors.New("apexverify: max_active_keys must not be negative")
	}
	if c.MaxActiveKeys == 0 {
		c.MaxActiveKeys = DefaultMaxActiveKeys
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if log == nil {
		log = zap.NewNop()
	}
	i := &Issuer{
		base:           u,
		account:        Type + " " + strings.TrimRight(c.BaseURL, "/"),
		token:          c.ManagementToken,
		timeout:        c.Timeout,
		maxKeys:        c.MaxActiveKeys,
		listBody:       listBodyLimit(c.MaxActiveKeys),
		hc:             hc,
		log:            log,
		maxTries:       6,
		createTries:    4,
		maxElapsed:     2 * time.Minute,
		initialBackoff: 250 * time.Millisecond,
		maxBackoff:     10 * time.Second,
		clock:          clockwork.NewRealClock(),
	}
	for _, opt := range opts {
		opt(i)
	}
	return i, nil
}

// Fields is nil: an ApexVerify key is a single value (issuers.Fielded), so
// its sinks hold it with key:.
func (i *Issuer) Fields() []string { return nil }

// MaxActiveKeys is the account's limit of active keys (issuers.KeyLimiter).
func (i *Issuer) MaxActiveKeys() int { return i.maxKeys }

// Account is "apexverify " and the base URL without a trailing slash, as
// configured (issuers.Account). Journals written since rekey first bound
// histories to their setup carry this string: keep it as it is.
func (i *Issuer) Account() string { return i.account }

// Prefix returns the public prefix of a key value: its first PrefixLen
// characters, or "" if the value is not longer than that (so a prefix is
// never the whole secret).
func Prefix(value secret.Value) string {
	s := value.Reveal()
	if len(s) <= PrefixLen {
		return ""
	}
	return s[:PrefixLen]
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Create mints a key labelled label. A 429 is retried after Retry-After.
// When the outcome of a request is unknown (timeout, connection lost after
// sending, 5xx), every active key labelled label is revoked, since its value
// is lost, before trying again; labels must therefore be unique to one
// rotation. A Create that fails after an attempt the server itself never
// answered (a timeout, a lost connection, a gateway's 502 or 504) wraps
// issuers.ErrMaybeCreated: that request may still land. Errors wrapping issuers.ErrInvalidLabel, issuers.ErrKeyLimit and
// ErrManagementToken are permanent, and so are local errors no retry fixes
// (an untrusted certificate, a token net/http will not send as a header). If ctx ends while an outcome is unknown,
// nothing is cleaned up: the error wraps issuers.ErrMaybeCreated and the
// clean-up is the caller's (under its lock: another process may have
// taken the rotation over and minted under the same label).
func (i *Issuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	if !labelRE.MatchString(label) {
		return issuers.Key{}, secret.Value{}, backoff.Permanent(fmt.Errorf("apexverify: create: label must be 1-64 characters of a-z A-Z 0-9 . _ -: %w", issuers.ErrInvalidLabel))
	}
	body, _ := json.Marshal(map[string]string{"label": label})
	var (
		k             issuers.Key
		v             secret.Value
		cleanupFailed bool // ends the attempts
		inFlight      bool // an attempt may still land
	)
	p := i.policy(i.createTries, func(err error) bool { return cleanupFailed || isPermanent(err) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("apexverify: retrying create", zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	err := i.try(ctx, p, func(ctx context.Context) error {
		res := i.do(ctx, http.MethodPost, "/v1/api-keys", nil, body, i.token)
		if res.err == nil && res.status/100 == 2 {
			var err error
			k, v, err = decodeKey(res.body)
			if err == nil && v.IsZero() {
				err = errors.New("decode key: the create response carries no key value")
			}
			if err == nil {
				return nil
			}
			// Created, but the answer is unusable: the value is lost.
			res.err = err
			res.ambiguous = true
		}
		err := i.fail("create "+label, res, i.token)
		if isPermanent(err) || !res.ambiguous {
			return err
		}
		if res.status == 0 || res.status == http.StatusBadGateway || res.status == http.StatusGatewayTimeout {
			// No answer from the server itself: the request may still be
			// on its way and land after the clean-up below.
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
	keys, err := i.list(ctx, "list keys labelled "+label, url.Values{"label": {label}, "status": {"all"}})
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
		i.log.Warn("apexverify: revoked a key whose create response was lost", zap.String("key_id", k.ID), zap.String("label", label))
	}
	return nil
}

// Find returns every key labelled exactly label, active or revoked, newest
// first; none is an empty slice, not an error.
func (i *Issuer) Find(ctx context.Context, label string) ([]issuers.Key, error) {
	if label == "" {
		return nil, backoff.Permanent(fmt.Errorf("apexverify: find: empty label: %w", issuers.ErrInvalidLabel))
	}
	return i.list(ctx, "find "+label, url.Values{"label": {label}, "status": {"all"}})
}

// List returns the active keys, newest first.
func (i *Issuer) List(ctx context.Context) ([]issuers.Key, error) {
	return i.list(ctx, "list keys", nil)
}

func (i *Issuer) list(ctx context.Context, op string, q url.Values) ([]issuers.Key, error) {
	var keys []issuers.Key
	err := i.retry(ctx, op, func(ctx context.Context) error {
		res := i.do(ctx, http.MethodGet, "/v1/api-keys", q, nil, i.token)
		if res.err == nil && res.status == http.StatusOK {
			var err error
			if keys, err = decodeList(res.body); err == nil {
				return nil
			}
			res.err = err
		}
		return i.fail(op, res, i.token)
	})
	return keys, err
}

// Get returns one key; an error wrapping issuers.ErrNotFound (permanent) if
// the account has no key with that ID.
func (i *Issuer) Get(ctx context.Context, id string) (issuers.Key, error) {
	return i.keyCall(ctx, http.MethodGet, "get", id)
}

// Revoke revokes a key; revoking a revoked key succeeds. An unknown ID is an
// error wrapping issuers.ErrNotFound (permanent).
func (i *Issuer) Revoke(ctx context.Context, id string) error {
	_, err := i.keyCall(ctx, http.MethodDelete, "revoke", id)
	return err
}

// LastUsed returns when the key last authenticated; zero if never.
func (i *Issuer) LastUsed(ctx context.Context, id string) (time.Time, error) {
	k, err := i.keyCall(ctx, http.MethodGet, "last used", id)
	return k.LastUsedAt, err
}

func (i *Issuer) keyCall(ctx context.Context, method, verb, id string) (issuers.Key, error) {
	op := verb + " " + safeID(id)
	if id == "" || safeID(id) != id {
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("apexverify: %s: malformed key id: %w", verb, issuers.ErrNotFound))
	}
	var k issuers.Key
	err := i.retry(ctx, op, func(ctx context.Context) error {
		res := i.do(ctx, method, "/v1/api-keys/"+url.PathEscape(id), nil, nil, i.token)
		if res.err == nil && res.status == http.StatusOK {
			var err error
			if k, _, err = decodeKey(res.body); err == nil {
				return nil
			}
			res.err = err
		}
		return i.fail(op, res, i.token)
	})
	return k, err
}

// Verify calls GET /v1/account with value. A refusal is an error wrapping
// issuers.ErrUnauthorized; it is not permanent, because a new key may take
// a moment to start working, and it is not retried here: the caller decides
// how long to wait for a new key.
func (i *Issuer) Verify(ctx context.Context, value secret.Value) error {
	if value.IsZero() {
		return backoff.Permanent(fmt.Errorf("apexverify: verify: empty key: %w", issuers.ErrUnauthorized))
	}
	return i.retry(ctx, "verify", func(ctx context.Context) error {
		res := i.do(ctx, http.MethodGet, "/v1/account", nil, nil, value)
		if res.err == nil && res.status == http.StatusOK {
			return nil
		}
		if res.err == nil && res.status == http.StatusUnauthorized {
			return secret.Scrub(fmt.Errorf("apexverify: verify: key refused: %w", decodeError(res.status, res.body)), value, i.token)
		}
		return i.fail("verify", res, value, i.token)
	})
}

// Identify returns the one active key whose prefix is value's, or an error
// wrapping issuers.ErrNotFound (permanent) if none or several are. The value
// itself is never sent.
func (i *Issuer) Identify(ctx context.Context, value secret.Value) (issuers.Key, error) {
	p := Prefix(value)
	if p == "" {
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("apexverify: identify: value too short to carry a prefix: %w", issuers.ErrNotFound))
	}
	keys, err := i.List(ctx)
	if err != nil {
		return issuers.Key{}, secret.Scrub(err, value)
	}
	var found []issuers.Key
	for _, k := range keys {
		if k.Prefix == p {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("apexverify: identify %s: no active key has this prefix: %w", p, issuers.ErrNotFound))
	default:
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("apexverify: identify %s: %d active keys have this prefix: %w", p, len(found), issuers.ErrNotFound))
	}
}

// Matches reports whether value's public prefix is k's (issuers.Matcher).
// With 3 random characters in a prefix, two keys of one account share one
// now and then; Identify then names neither, but each still matches.
func (i *Issuer) Matches(k issuers.Key, value secret.Value) bool {
	p := Prefix(value)
	return p != "" && k.Prefix == p
}

// result is the outcome of one HTTP request.
type result struct {
	status     int
	body       []byte
	retryAfter time.Duration
	err        error // transport or decoding error
	// ambiguous: the request may have been acted upon but the answer was
	// lost or unusable (sent then timeout/reset, or 5xx).
	ambiguous bool
	timedOut  bool // the per-request timeout fired
	tooLarge  bool // a key list past its bound: permanent
}

// Bounds of a response body. A key list holds at most the account's
// max_active_keys active keys (and a label's few revoked ones), each a key
// object of about 250 bytes: its bound grows with MaxActiveKeys, from
// maxBody, so that Identify, which lists every active key, works at any
// limit the account really has.
const (
	maxBody     = 1 << 20   // any response, and the least a list may be
	maxKeyBody  = 1 << 10   // per key of max_active_keys in a list: 4 times a key object
	maxListBody = 256 << 20 // the most a list may be, whatever max_active_keys says
)

// listBodyLimit is the bound of a key list's body for an account of
// maxKeys active keys.
func listBodyLimit(maxKeys int) int {
	if maxKeys > maxListBody/maxKeyBody {
		return maxListBody
	}
	return max(maxBody, maxKeys*maxKeyBody)
}

// do makes one request with the per-request timeout.
func (i *Issuer) do(ctx context.Context, method, path string, q url.Values, body []byte, bearer secret.Value) result {
	rctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	var sent bool
	rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sent = true },
	})
	u := *i.base
	u.Path += path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), rd)
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+bearer.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := i.hc.Do(req)
	if err != nil {
		return result{err: err, ambiguous: sent, timedOut: ctx.Err() == nil && rctx.Err() != nil}
	}
	defer resp.Body.Close()
	limit, list := maxBody, method == http.MethodGet && path == "/v1/api-keys"
	if list {
		limit = i.listBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err == nil && len(data) > limit {
		if list {
			// Asking again gets as many keys: the config must change.
			return result{status: resp.StatusCode, tooLarge: true,
				err: fmt.Errorf("key list exceeds %d bytes (%d per key of max_active_keys %d): set max_active_keys to the account's limit", limit, maxKeyBody, i.maxKeys)}
		}
		err = fmt.Errorf("response body exceeds %d bytes", limit)
	}
	if err != nil {
		return result{status: resp.StatusCode, err: fmt.Errorf("read response: %w", err), ambiguous: true, timedOut: ctx.Err() == nil && rctx.Err() != nil}
	}
	return result{
		status:     resp.StatusCode,
		body:       data,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), i.clock.Now()),
		ambiguous:  resp.StatusCode >= 500,
	}
}

// fail turns a failed result into the error for op: retryable for
// transport errors, timeouts, 5xx and 429; permanent for local errors no
// retry can fix (neterr.Permanent: TLS verification, invalid header) and
// for the rest. The
// secrets are scrubbed from the message.
func (i *Issuer) fail(op string, res result, secrets ...secret.Value) error {
	var err error
	switch {
	case res.timedOut:
		err = fmt.Errorf("apexverify: %s: no answer within %s: %w", op, i.timeout, context.DeadlineExceeded)
	case res.tooLarge:
		err = backoff.Permanent(fmt.Errorf("apexverify: %s: %w", op, res.err))
	case res.err != nil && !res.ambiguous && neterr.Permanent(res.err):
		// Nothing was sent (an untrusted certificate, a header net/http
		// will not send): the same request can never work.
		err = backoff.Permanent(fmt.Errorf("apexverify: %s: %w", op, res.err))
	case res.err != nil: // transport error, or a 2xx with an unusable body
		err = fmt.Errorf("apexverify: %s: %w", op, res.err)
	default:
		ae := decodeError(res.status, res.body)
		ae.RetryAfter = res.retryAfter
		switch {
		case ae.retryable():
			err = fmt.Errorf("apexverify: %s: %w", op, ae)
		case res.status == http.StatusUnauthorized:
			err = backoff.Permanent(fmt.Errorf("apexverify: %s: %w (%w)", op, ErrManagementToken, ae))
		case res.status < 400:
			err = backoff.Permanent(fmt.Errorf("apexverify: %s: unexpected %w", op, ae))
		default:
			err = backoff.Permanent(fmt.Errorf("apexverify: %s: %w", op, ae))
		}
	}
	return secret.Scrub(err, secrets...)
}

// retry runs a safe (GET/DELETE) call until it succeeds, fails permanently,
// runs out of tries or time, or ctx ends, with exponential backoff and
// jitter, waiting Retry-After where the server names it. A refused API key
// (issuers.ErrUnauthorized) is returned at once: the caller decides.
func (i *Issuer) retry(ctx context.Context, op string, call func(context.Context) error) error {
	p := i.policy(i.maxTries, func(err error) bool { return isPermanent(err) || errors.Is(err, issuers.ErrUnauthorized) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("apexverify: retrying", zap.String("call", op), zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	return i.try(ctx, p, call)
}

// policy is the Issuer's retry policy for a call of at most tries attempts
// that stops at the errors stop reports.
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

// try runs call under p and words its last error: as it is when p.Permanent
// stopped the attempts or ctx had ended when call returned; naming the
// interrupted wait when ctx ended during one; otherwise saying how many
// attempts were made.
func (i *Issuer) try(ctx context.Context, p retry.Policy, call func(context.Context) error) error {
	var ended bool // ctx had ended when the last call returned
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

// Package execissuer is the issuer for an API rekey has no issuer of its
// own for: a command, run directly (no shell) once per call, that speaks
// rekey's exec protocol, version 1, on stdin and stdout. The protocol is a
// contract users write scripts against; it is specified in the README
// ("The exec issuer protocol") and summed up here.
//
// rekey writes one JSON object, the request, and a newline to the
// command's stdin, then closes it; the command writes one JSON object, the
// response, to stdout and exits.
//
//	{"protocol":1,"op":"create","label":"prod-20261201-ab12cd"}
//	→ {"key":{"id":"k1","label":"prod-20261201-ab12cd","prefix":"sk_live_ab12","status":"active","created_at":"2026-12-01T10:00:00Z"},"value":"sk_live_ab12…"}
//
// The ops are create {label}, get {id}, list, find {label}, revoke {id},
// verify {value or fields}, and, when declared in the config's abilities,
// identify {value or fields} and last_used {id}. A key value travels only
// on stdin and stdout, never in the command's argv or environment. A
// failure is {"error":{"code":…,"message":…}}, with the codes
// unauthorized, not_found, key_limit, invalid_label, unknown_outcome and
// temporary, mapped to the issuers sentinels.
package execissuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// Protocol is the version of the exec protocol this package speaks; every
// request carries it as "protocol".
const Protocol = 1

// DefaultTimeout bounds each call of the command when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

const (
	// MaxStdout bounds a response: a command that writes more is killed
	// and its answer refused.
	MaxStdout = 1 << 20
	// stderrCapture is how much of the command's stderr is kept for
	// redaction; stderrShown is how much of it an error quotes.
	stderrCapture = 64 << 10
	stderrShown   = 2 << 10
	// messageShown bounds an error message the command sent.
	messageShown = 512
	// waitDelay bounds the wait for the command's output after it was
	// killed (a child it left behind may hold the pipes open).
	waitDelay = 2 * time.Second
	// maxField bounds a key's id, label and prefix.
	maxField = 256
)

// The error codes of the protocol.
const (
	CodeUnauthorized   = "unauthorized"
	CodeNotFound       = "not_found"
	CodeKeyLimit       = "key_limit"
	CodeInvalidLabel   = "invalid_label"
	CodeUnknownOutcome = "unknown_outcome"
	CodeTemporary      = "temporary"
)

// Config configures an Issuer.
type Config struct {
	// Command is the program and its arguments; it runs without a shell.
	Command []string
	// Account names the account the command acts on (issuers.Account);
	// "exec " + Command[0] when empty.
	Account string
	// Identify and LastUsed say that the command answers the optional ops
	// identify and last_used; only then is the Issuer an
	// issuers.Identifier or issuers.UsageReporter.
	Identify, LastUsed bool
	// MaxActiveKeys is the account's limit of active keys, if known; only
	// when it is above 0 is the Issuer an issuers.KeyLimiter, so that
	// `rekey plan` checks for a free slot.
	MaxActiveKeys int
	// Fields names the fields of a multi-field credential, which create
	// answers as "fields"; empty: it answers one "value". An answer of the
	// other form, or of other fields, is refused (and its key revoked).
	Fields []string
	// Timeout bounds each call of the command; DefaultTimeout when 0. On
	// timeout the command's whole process group is killed.
	Timeout time.Duration
	// Env holds secret variables added to the command's environment; their
	// values are redacted from everything the command prints.
	Env map[string]secret.Value
	// Vars holds variables added to the command's environment that are not
	// secret; the config file has no such field (its settings that are not
	// secret go into the command's arguments).
	Vars map[string]string
}

// Issuer runs one command. It is safe for concurrent use: each call is a
// process of its own.
type Issuer struct {
	argv    []string
	account string
	timeout time.Duration
	env     map[string]secret.Value
	vars    map[string]string
	hideEnv []string
	log     *zap.Logger
	maxKeys int
	fields  []string // sorted

	// Retry policy, waiting on clock.
	maxTries       int // per idempotent call
	createTries    int // create attempts, clean-ups in between
	maxElapsed     time.Duration
	initialBackoff time.Duration
	maxBackoff     time.Duration
	clock          clockwork.Clock
}

// Option adjusts an Issuer.
type Option func(*Issuer)

// WithClock sets the clock that retry waits run on (default: the real
// clock). The per-call timeout stays on real time: it bounds a real
// process.
func WithClock(c clockwork.Clock) Option { return func(i *Issuer) { i.clock = c } }

// WithoutEnv hides the named variables of rekey's environment from the
// command: those the config reads secrets from, and the sinks' default
// token variables. A variable of Config.Env or Config.Vars of the same
// name is still set.
func WithoutEnv(names ...string) Option {
	return func(i *Issuer) { i.hideEnv = append(i.hideEnv, names...) }
}

// The Issuer's optional abilities come from its config, so New returns one
// of the with* types, whose method sets hold exactly the declared ones.
type (
	identifyOp struct{ i *Issuer }
	lastUsedOp struct{ i *Issuer }
	limitOp    struct{ i *Issuer }

	withI struct {
		*Issuer
		identifyOp
	}
	withL struct {
		*Issuer
		lastUsedOp
	}
	withK struct {
		*Issuer
		limitOp
	}
	withIL struct {
		*Issuer
		identifyOp
		lastUsedOp
	}
	withIK struct {
		*Issuer
		identifyOp
		limitOp
	}
	withLK struct {
		*Issuer
		lastUsedOp
		limitOp
	}
	withILK struct {
		*Issuer
		identifyOp
		lastUsedOp
		limitOp
	}
)

// Identify returns the active key value is (issuers.Identifier).
func (o identifyOp) Identify(ctx context.Context, v secret.Value) (issuers.Key, error) {
	return o.i.identifyKey(ctx, v)
}

// LastUsed returns when the key last authenticated (issuers.UsageReporter).
func (o lastUsedOp) LastUsed(ctx context.Context, id string) (time.Time, error) {
	return o.i.lastUsedAt(ctx, id)
}

// MaxActiveKeys is the configured limit of active keys (issuers.KeyLimiter).
func (o limitOp) MaxActiveKeys() int { return o.i.maxKeys }

var (
	_ issuers.Issuer        = (*Issuer)(nil)
	_ issuers.Account       = (*Issuer)(nil)
	_ issuers.Identifier    = withILK{}
	_ issuers.UsageReporter = withILK{}
	_ issuers.KeyLimiter    = withILK{}
)

// New checks c and returns the issuer: an *Issuer, or a type embedding
// one that is also an issuers.Identifier if c.Identify, an
// issuers.UsageReporter if c.LastUsed and an issuers.KeyLimiter if
// c.MaxActiveKeys > 0. It does not run the command.
func New(c Config, log *zap.Logger, opts ...Option) (issuers.Issuer, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return nil, errors.New("exec: command is required")
	}
	if c.Timeout < 0 {
		return nil, errors.New("exec: timeout must not be negative")
	}
	if c.MaxActiveKeys < 0 {
		return nil, errors.New("exec: max_active_keys must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	account := c.Account
	if account == "" {
		account = Type + " " + c.Command[0]
	}
	i := &Issuer{
		argv:           slices.Clone(c.Command),
		account:        account,
		timeout:        c.Timeout,
		env:            maps.Clone(c.Env),
		vars:           maps.Clone(c.Vars),
		log:            log,
		maxKeys:        c.MaxActiveKeys,
		fields:         slices.Sorted(slices.Values(c.Fields)),
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
	id, lu, lim := identifyOp{i}, lastUsedOp{i}, limitOp{i}
	switch {
	case c.Identify && c.LastUsed && c.MaxActiveKeys > 0:
		return withILK{i, id, lu, lim}, nil
	case c.Identify && c.LastUsed:
		return withIL{i, id, lu}, nil
	case c.Identify && c.MaxActiveKeys > 0:
		return withIK{i, id, lim}, nil
	case c.LastUsed && c.MaxActiveKeys > 0:
		return withLK{i, lu, lim}, nil
	case c.Identify:
		return withI{i, id}, nil
	case c.LastUsed:
		return withL{i, lu}, nil
	case c.MaxActiveKeys > 0:
		return withK{i, lim}, nil
	}
	return i, nil
}

// Fields returns the names of the fields of the credentials the command
// mints, sorted; nil for single values. A caller that can write only
// single values must refuse an issuer that returns some.
func (i *Issuer) Fields() []string { return slices.Clone(i.fields) }

// Account is the configured account, or "exec " and the command's program
// as configured (issuers.Account). The journal binds histories to it: a
// changed account or program makes them another setup's, so set account
// in the config.
func (i *Issuer) Account() string { return i.account }

// request is what rekey writes to the command's stdin.
type request struct {
	Protocol int               `json:"protocol"`
	Op       string            `json:"op"`
	Label    string            `json:"label,omitempty"`
	ID       string            `json:"id,omitempty"`
	Value    string            `json:"value,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// response is what the command writes to stdout; which members it holds
// depends on the op.
type response struct {
	Protocol   *int              `json:"protocol"`
	Key        *wireKey          `json:"key"`
	Keys       *[]wireKey        `json:"keys"`
	Value      *string           `json:"value"`
	Fields     map[string]string `json:"fields"`
	LastUsedAt json.RawMessage   `json:"last_used_at"`
	OK         *bool             `json:"ok"`
	Error      *wireError        `json:"error"`
}

type wireKey struct {
	ID         string     `json:"id"`
	Label      string     `json:"label"`
	Prefix     string     `json:"prefix"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Create asks the command for a key labelled label. A temporary error is
// retried with backoff. When the outcome is unknown — the command answered
// unknown_outcome, exited non-zero without an error response, was killed
// at the timeout, or answered with a key rekey cannot use (its value is
// then lost) — every active key labelled label is looked up (find) and
// revoked before trying again; labels must therefore be unique to one
// rotation. A Create that fails after an attempt that may still land at
// the API (unknown_outcome, a crash, a timeout) wraps
// issuers.ErrMaybeCreated, as does one whose clean-up failed. Errors
// wrapping issuers.ErrInvalidLabel, issuers.ErrKeyLimit and
// issuers.ErrUnauthorized are permanent, and so are a command that cannot
// be started and an answer whose form (one value or fields) is not the
// configured one, whose key is revoked first. Any other error response means no key was created. If ctx
// ends while an outcome is unknown, the clean-up still runs, bounded by
// the timeout.
func (i *Issuer) Create(ctx context.Context, label string) (issuers.Key, secret.Value, error) {
	if label == "" || len(label) > maxField || strings.ContainsFunc(label, isControl) {
		return issuers.Key{}, secret.Value{}, backoff.Permanent(fmt.Errorf("exec: create: label must be 1-%d printable characters: %w", maxField, issuers.ErrInvalidLabel))
	}
	var (
		k             issuers.Key
		v             secret.Value
		cleanupFailed bool // ends the attempts
		inFlight      bool // an attempt may still land
		misfit        bool // the answer's form is not the config's: no retry helps
	)
	op := "create " + label
	p := i.policy(i.createTries, func(err error) bool { return cleanupFailed || isPermanent(err) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("exec: retrying create", zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	err := i.try(ctx, p, func(ctx context.Context) error {
		res := i.run(ctx, request{Op: "create", Label: label})
		if res.resp != nil && res.resp.Error == nil {
			var err error
			k, v, err = createdKey(res.resp, label)
			if err == nil {
				err = i.checkForm(v)
			}
			if err == nil {
				return nil
			}
			var fe formError
			misfit = errors.As(err, &fe)
			// Created, but the answer is unusable: the value is lost.
			res = result{err: secret.Scrub(err, v), ambiguous: true}
			v = secret.Value{}
		}
		unknown := res.resp != nil && res.resp.Error != nil && res.resp.Error.Code == CodeUnknownOutcome
		if !res.ambiguous && !unknown {
			return i.fail(op, res) // nothing was created
		}
		// A key may exist: clean up, then try again, whatever went wrong
		// (an unusable answer may be a passing fault of the API's).
		res.permanent = false
		err := i.fail(op, res)
		if res.inFlight || unknown {
			inFlight = true
		}
		if err, cleanupFailed = issuers.AfterUnknownCreate(ctx, err, label, i.revokeOrphans); cleanupFailed {
			return err
		}
		if misfit {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil {
		return issuers.Key{}, secret.Value{}, issuers.MaybeCreated(err, inFlight)
	}
	return k, v, nil
}

// formError: a created value is not of the form the config declares.
type formError struct{ msg string }

func (e formError) Error() string { return e.msg }

// checkForm checks that v has exactly the configured fields, or is a single
// value if none are configured.
func (i *Issuer) checkForm(v secret.Value) error {
	switch got := v.FieldNames(); {
	case len(i.fields) == 0 && v.IsFields():
		return formError{fmt.Sprintf("the command answered fields %s, but the config declares none (set fields:)", strings.Join(got, ", "))}
	case len(i.fields) > 0 && !v.IsFields():
		return formError{fmt.Sprintf("the command answered one value, but the config declares fields %s", strings.Join(i.fields, ", "))}
	case !slices.Equal(got, i.fields):
		return formError{fmt.Sprintf("the command answered fields %s, but the config declares %s", strings.Join(got, ", "), strings.Join(i.fields, ", "))}
	}
	return nil
}

// createdKey checks a create response: an active key labelled label and a
// value (or fields) that the key's public parts do not give away.
func createdKey(r *response, label string) (issuers.Key, secret.Value, error) {
	var v secret.Value
	switch {
	case r.Value != nil && r.Fields != nil:
		return issuers.Key{}, secret.Value{}, errors.New("the create response has both value and fields")
	case r.Value != nil:
		v = secret.New(*r.Value)
	case r.Fields != nil:
		for name := range r.Fields {
			if name == "" {
				return issuers.Key{}, secret.Value{}, errors.New("the create response has a field without a name")
			}
		}
		v = secret.NewFields(r.Fields)
	}
	if v.IsZero() {
		return issuers.Key{}, secret.Value{}, errors.New("the create response carries no key value")
	}
	if r.Key == nil {
		return issuers.Key{}, v, errors.New("the create response has no key")
	}
	k, err := r.Key.key()
	if err != nil {
		return issuers.Key{}, v, err
	}
	if k.Label != label || k.Status != issuers.Active {
		return issuers.Key{}, v, fmt.Errorf("the created key %s has label %q and status %q, want %q and active", k.ID, k.Label, k.Status, label)
	}
	if !v.IsFields() {
		s := v.Reveal()
		if strings.Contains(k.ID, s) || strings.Contains(k.Label, s) || strings.Contains(k.Prefix, s) {
			return issuers.Key{}, v, errors.New("the created key's id, label or prefix holds its value")
		}
		if k.Prefix != "" && !strings.HasPrefix(s, k.Prefix) {
			return issuers.Key{}, v, fmt.Errorf("the created key %s's value does not start with its prefix", k.ID)
		}
	}
	return k, v, nil
}

// revokeOrphans revokes every active key labelled label.
func (i *Issuer) revokeOrphans(ctx context.Context, label string) error {
	keys, err := i.Find(ctx, label)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Status != issuers.Active {
			continue
		}
		if err := i.Revoke(ctx, k.ID); err != nil {
			return err
		}
		i.log.Warn("exec: revoked a key whose create answer was lost", zap.String("key_id", k.ID), zap.String("label", label))
	}
	return nil
}

// Find returns every key labelled exactly label, active or revoked, newest
// first; none is an empty slice, not an error. Keys of another label in
// the command's answer are dropped.
func (i *Issuer) Find(ctx context.Context, label string) ([]issuers.Key, error) {
	if label == "" {
		return nil, backoff.Permanent(fmt.Errorf("exec: find: empty label: %w", issuers.ErrInvalidLabel))
	}
	keys, err := i.list(ctx, "find "+label, request{Op: "find", Label: label})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k issuers.Key) bool { return k.Label != label }), nil
}

// List returns the active keys, newest first; revoked keys in the
// command's answer are dropped.
func (i *Issuer) List(ctx context.Context) ([]issuers.Key, error) {
	keys, err := i.list(ctx, "list", request{Op: "list"})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k issuers.Key) bool { return k.Status != issuers.Active }), nil
}

func (i *Issuer) list(ctx context.Context, op string, req request) ([]issuers.Key, error) {
	var keys []issuers.Key
	err := i.retry(ctx, op, func(ctx context.Context) error {
		res := i.run(ctx, req)
		if res.resp != nil && res.resp.Error == nil {
			if res.resp.Keys == nil {
				return i.fail(op, result{err: errors.New(`the response has no "keys"`), permanent: true})
			}
			keys = make([]issuers.Key, 0, len(*res.resp.Keys))
			for _, wk := range *res.resp.Keys {
				k, err := wk.key()
				if err != nil {
					return i.fail(op, result{err: err, permanent: true})
				}
				keys = append(keys, k)
			}
			return nil
		}
		return i.fail(op, res)
	})
	sort.SliceStable(keys, func(a, b int) bool { return keys[a].CreatedAt.After(keys[b].CreatedAt) })
	return keys, err
}

// Get returns one key; an error wrapping issuers.ErrNotFound (permanent) if
// the command answers not_found.
func (i *Issuer) Get(ctx context.Context, id string) (issuers.Key, error) {
	var k issuers.Key
	err := i.keyCall(ctx, "get", id, func(r *response) error {
		if r.Key == nil {
			return errors.New(`the response has no "key"`)
		}
		var err error
		if k, err = r.Key.key(); err == nil && k.ID != id {
			err = fmt.Errorf("the response is key %s, not %s", k.ID, id)
		}
		return err
	})
	return k, err
}

// Revoke revokes a key; the command must answer success for a key already
// revoked, and not_found (an error wrapping issuers.ErrNotFound, permanent)
// for an unknown one.
func (i *Issuer) Revoke(ctx context.Context, id string) error {
	return i.keyCall(ctx, "revoke", id, func(*response) error { return nil })
}

// lastUsedAt is LastUsed, for the issuers that declare it.
func (i *Issuer) lastUsedAt(ctx context.Context, id string) (time.Time, error) {
	var at time.Time
	err := i.keyCall(ctx, "last_used", id, func(r *response) error {
		raw := bytes.TrimSpace(r.LastUsedAt)
		if len(raw) == 0 {
			return errors.New(`the response has no "last_used_at" (null if never used)`)
		}
		at = time.Time{}
		if string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, &at); err != nil {
			return errors.New(`"last_used_at" is not an RFC 3339 time or null`)
		}
		return nil
	})
	return at, err
}

// keyCall runs an op on one key ID, retrying temporary failures, and
// checks a successful response with check.
func (i *Issuer) keyCall(ctx context.Context, opName, id string, check func(*response) error) error {
	op := opName + " " + safeID(id)
	if id == "" || safeID(id) != id {
		return backoff.Permanent(fmt.Errorf("exec: %s: malformed key id: %w", opName, issuers.ErrNotFound))
	}
	return i.retry(ctx, op, func(ctx context.Context) error {
		res := i.run(ctx, request{Op: opName, ID: id})
		if res.resp != nil && res.resp.Error == nil {
			if err := check(res.resp); err != nil {
				return i.fail(op, result{err: err, permanent: true})
			}
			return nil
		}
		return i.fail(op, res)
	})
}

// Verify asks the command whether value authenticates; the value is on its
// stdin only. A refusal (unauthorized) is an error wrapping
// issuers.ErrUnauthorized; it is not permanent, because a new key may take
// a moment to start working, and it is not retried here: the caller
// decides how long to wait for a new key.
func (i *Issuer) Verify(ctx context.Context, value secret.Value) error {
	if value.IsZero() {
		return backoff.Permanent(fmt.Errorf("exec: verify: empty key: %w", issuers.ErrUnauthorized))
	}
	req := withValue(request{Op: "verify"}, value)
	return i.retry(ctx, "verify", func(ctx context.Context) error {
		res := i.run(ctx, req, value)
		if res.resp != nil && res.resp.Error == nil {
			return nil
		}
		if res.resp != nil && res.resp.Error.Code == CodeUnauthorized {
			return fmt.Errorf("exec: verify: key refused: %w%s", issuers.ErrUnauthorized, i.said(res.resp.Error, value))
		}
		return i.fail("verify", res, value)
	})
}

// identifyKey asks the command which active key value is; the value is on
// its stdin only. No such key (not_found) is an error wrapping
// issuers.ErrNotFound, permanent, as is an answer naming a revoked key.
func (i *Issuer) identifyKey(ctx context.Context, value secret.Value) (issuers.Key, error) {
	if value.IsZero() {
		return issuers.Key{}, backoff.Permanent(fmt.Errorf("exec: identify: empty key: %w", issuers.ErrNotFound))
	}
	req := withValue(request{Op: "identify"}, value)
	var k issuers.Key
	err := i.retry(ctx, "identify", func(ctx context.Context) error {
		res := i.run(ctx, req, value)
		if res.resp != nil && res.resp.Error == nil {
			if res.resp.Key == nil {
				return i.fail("identify", result{err: errors.New(`the response has no "key"`), permanent: true}, value)
			}
			var err error
			if k, err = res.resp.Key.key(); err != nil {
				return i.fail("identify", result{err: err, permanent: true}, value)
			}
			if k.Status != issuers.Active {
				return backoff.Permanent(fmt.Errorf("exec: identify: the value is key %s, which is %s: %w", k.ID, k.Status, issuers.ErrNotFound))
			}
			return nil
		}
		return i.fail("identify", res, value)
	})
	return k, err
}

// withValue puts value into req: a multi-field value as fields.
func withValue(req request, value secret.Value) request {
	if fs, ok := value.Fields(); ok {
		req.Fields = make(map[string]string, len(fs))
		for name, f := range fs {
			req.Fields[name] = f.Reveal()
		}
		return req
	}
	req.Value = value.Reveal()
	return req
}

// key turns a key record of the protocol into an issuers.Key.
func (w wireKey) key() (issuers.Key, error) {
	switch {
	case w.ID == "" || safeID(w.ID) != w.ID:
		return issuers.Key{}, fmt.Errorf("a key has a malformed id %s (1-%d printable characters)", safeID(w.ID), maxField)
	case len(w.Label) > maxField || strings.ContainsFunc(w.Label, isControl):
		return issuers.Key{}, fmt.Errorf("key %s has a malformed label", w.ID)
	case len(w.Prefix) > maxField || strings.ContainsFunc(w.Prefix, isControl):
		return issuers.Key{}, fmt.Errorf("key %s has a malformed prefix", w.ID)
	case w.Status != string(issuers.Active) && w.Status != string(issuers.Revoked):
		return issuers.Key{}, fmt.Errorf("key %s has status %q, want active or revoked", w.ID, clip(w.Status, 32))
	case w.CreatedAt.IsZero():
		return issuers.Key{}, fmt.Errorf("key %s has no created_at", w.ID)
	}
	k := issuers.Key{ID: w.ID, Label: w.Label, Prefix: w.Prefix, Status: issuers.Status(w.Status), CreatedAt: w.CreatedAt}
	if w.LastUsedAt != nil {
		k.LastUsedAt = *w.LastUsedAt
	}
	if w.RevokedAt != nil {
		k.RevokedAt = *w.RevokedAt
	}
	return k, nil
}

// result is the outcome of one run of the command.
type result struct {
	resp *response // the decoded response; nil if there is none
	err  error     // why there is no usable response; redacted
	// ambiguous: the command may have acted but its answer is lost or
	// unusable.
	ambiguous bool
	// inFlight: the command was stopped or crashed, so a request it made
	// may still land.
	inFlight  bool
	permanent bool // retrying cannot help
}

// run runs the command once with req on its stdin. known are the values
// the request carries; they and every secret of the config are redacted
// from what the command printed.
func (i *Issuer) run(ctx context.Context, req request, known ...secret.Value) result {
	req.Protocol = Protocol
	body, err := json.Marshal(req)
	if err != nil {
		return result{err: fmt.Errorf("encode request: %w", err), permanent: true}
	}
	rctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, i.argv[0], i.argv[1:]...)
	cmd.Env = i.childEnv()
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	stdout := &capped{max: MaxStdout, over: cancel}
	stderr := &capped{max: stderrCapture}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, killed whole on timeout: a script's children
	// (curl, say) must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the group had gone: Wait reports its exit
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		// Nothing ran: a missing or non-executable program.
		return result{err: fmt.Errorf("start %s: %w", i.argv[0], err), permanent: true}
	}
	err = cmd.Wait()
	redact := append(i.secrets(), known...)
	switch {
	case stdout.overflow:
		return result{err: fmt.Errorf("%s wrote more than %d bytes to stdout and was killed", i.argv[0], MaxStdout), ambiguous: true, permanent: true}
	case ctx.Err() != nil:
		return result{err: fmt.Errorf("%s was killed: %w", i.argv[0], context.Cause(ctx)), ambiguous: true, inFlight: true}
	case rctx.Err() != nil:
		return result{err: fmt.Errorf("%s gave no answer within %s and was killed: %w%s", i.argv[0], i.timeout, context.DeadlineExceeded, showStderr(stderr, redact)),
			ambiguous: true, inFlight: true}
	}
	resp, derr := decode(stdout.Bytes())
	if resp != nil && resp.Error != nil {
		return result{resp: resp} // an error response, whatever the exit status
	}
	if resp != nil && resp.Value != nil {
		redact = append(redact, secret.New(*resp.Value))
	}
	if resp != nil && resp.Fields != nil {
		redact = append(redact, secret.NewFields(resp.Fields))
	}
	if err != nil {
		return result{err: secret.Scrub(fmt.Errorf("%s %v without an error response%s", i.argv[0], exitText(err), showStderr(stderr, redact)), redact...),
			ambiguous: true, inFlight: true}
	}
	if derr != nil {
		return result{err: errors.New(redactText(fmt.Sprintf("%s exited 0 but its stdout (%d bytes) is not a protocol %d response: %v", i.argv[0], stdout.Len(), Protocol, derr), redact)),
			ambiguous: true, permanent: true}
	}
	return result{resp: resp}
}

// decode reads exactly one response object from out.
func decode(out []byte) (*response, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, errors.New("it is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	var r response
	if err := dec.Decode(&r); err != nil {
		return nil, jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	if r.Protocol != nil && *r.Protocol != Protocol {
		return nil, fmt.Errorf("it speaks protocol %d", *r.Protocol)
	}
	if r.Error != nil && r.Error.Code == "" {
		return nil, errors.New(`"error" has no "code"`)
	}
	if r.Error == nil && r.OK != nil && !*r.OK {
		return nil, errors.New(`"ok" is false, but there is no "error"`)
	}
	return &r, nil
}

var memberName = regexp.MustCompile(`^"[a-z_]{1,24}"$`)

// jsonProblem words a decoding error without quoting the output.
func jsonProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("%q must be a JSON %s", clip(typ.Field, 64), typ.Type.Kind())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Quoted only if it looks like a misspelt member, never like a
		// value.
		if name := strings.TrimPrefix(err.Error(), "json: unknown field "); memberName.MatchString(name) {
			return fmt.Errorf("unknown member %s", name)
		}
		return errors.New("an unknown member")
	}
	return errors.New("not a JSON object")
}

// fail turns a failed result into the error for op: the command's error
// response mapped to the issuers sentinels (temporary and unknown_outcome
// retryable, the others permanent), or the local failure (retryable unless
// marked permanent). known are redacted from the message.
func (i *Issuer) fail(op string, res result, known ...secret.Value) error {
	if res.resp == nil || res.resp.Error == nil {
		if res.err == nil {
			res.err = errors.New("no response")
		}
		err := fmt.Errorf("exec: %s: %w", op, res.err)
		if res.permanent {
			return backoff.Permanent(err)
		}
		return err
	}
	e := res.resp.Error
	said := i.said(e, known...)
	switch e.Code {
	case CodeUnauthorized:
		return backoff.Permanent(fmt.Errorf("exec: %s: the command's credentials were refused: %w%s", op, issuers.ErrUnauthorized, said))
	case CodeNotFound:
		return backoff.Permanent(fmt.Errorf("exec: %s: %w%s", op, issuers.ErrNotFound, said))
	case CodeKeyLimit:
		return backoff.Permanent(fmt.Errorf("exec: %s: %w%s", op, issuers.ErrKeyLimit, said))
	case CodeInvalidLabel:
		return backoff.Permanent(fmt.Errorf("exec: %s: %w%s", op, issuers.ErrInvalidLabel, said))
	case CodeTemporary:
		return fmt.Errorf("exec: %s: temporary failure%s", op, said)
	case CodeUnknownOutcome:
		return fmt.Errorf("exec: %s: outcome unknown%s", op, said)
	}
	return backoff.Permanent(fmt.Errorf("exec: %s: error code %q%s", op, clip(e.Code, 32), said))
}

// said quotes the message of an error response, redacted and cut short.
func (i *Issuer) said(e *wireError, known ...secret.Value) string {
	m := strings.TrimSpace(e.Message)
	if m == "" {
		return ""
	}
	return fmt.Sprintf(" (the command said: %q)", clip(redactText(m, append(i.secrets(), known...)), messageShown))
}

// retry runs an idempotent call until it succeeds, fails permanently, runs
// out of tries or time, or ctx ends, with exponential backoff and jitter
// on the clock. A refused key (issuers.ErrUnauthorized) is returned at
// once: the caller decides.
func (i *Issuer) retry(ctx context.Context, op string, call func(context.Context) error) error {
	p := i.policy(i.maxTries, func(err error) bool { return isPermanent(err) || errors.Is(err, issuers.ErrUnauthorized) })
	p.OnRetry = func(try int, wait time.Duration, err error) {
		i.log.Debug("exec: retrying", zap.String("call", op), zap.Int("attempt", try), zap.Duration("wait", wait), zap.Error(err))
	}
	return i.try(ctx, p, call)
}

func (i *Issuer) policy(tries int, stop func(error) bool) retry.Policy {
	return retry.Policy{
		Initial: i.initialBackoff, Max: i.maxBackoff, Jitter: 0.5,
		Tries: tries, For: i.maxElapsed, Clock: i.clock, Permanent: stop,
	}
}

// try runs call under p and words its last error, as apexverify does.
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

// childEnv is rekey's environment without the hidden variables, plus the
// config's variables.
func (i *Issuer) childEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		_, secretVar := i.env[name]
		_, plainVar := i.vars[name]
		if !slices.Contains(i.hideEnv, name) && !secretVar && !plainVar {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(i.vars)) {
		env = append(env, name+"="+i.vars[name])
	}
	for _, name := range slices.Sorted(maps.Keys(i.env)) {
		env = append(env, name+"="+i.env[name].Reveal())
	}
	return env
}

// secrets are the config's secret variables, redacted from what the
// command prints.
func (i *Issuer) secrets() []secret.Value {
	out := make([]secret.Value, 0, len(i.env))
	for _, v := range i.env {
		out = append(out, v)
	}
	return out
}

// redactText replaces every value (each field of a multi-field value, and
// the whole) in s with secret.Redacted.
func redactText(s string, values []secret.Value) string {
	for _, v := range values {
		parts := []string{v.Reveal()}
		if fs, ok := v.Fields(); ok {
			for _, f := range fs {
				parts = append(parts, f.Reveal())
			}
		}
		for _, p := range parts {
			if p != "" {
				s = strings.ReplaceAll(s, p, secret.Redacted)
			}
		}
	}
	return s
}

// showStderr is "; stderr: …" with the command's stderr redacted and cut
// to stderrShown bytes, or "" when it wrote none.
func showStderr(c *capped, values []secret.Value) string {
	s := redactText(strings.TrimSpace(c.String()), values)
	if s == "" {
		return ""
	}
	return fmt.Sprintf("; stderr: %q", clip(s, stderrShown))
}

// exitText words a Wait error: "exited with status 3", "was killed by
// signal 9".
func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("was killed by signal %d", ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return "failed: " + err.Error()
}

// safeID returns id if it is 1 to maxField printable characters, else a
// short, quoted, printable form of it, so that a malformed ID cannot
// forge or flood an error message.
func safeID(id string) string {
	if id != "" && len(id) <= maxField && !strings.ContainsFunc(id, isControl) && !strings.ContainsAny(id, " \"") {
		return id
	}
	return fmt.Sprintf("%q", clip(id, 32))
}

// clip cuts s to n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}

// capped is an io.Writer that keeps the first max bytes written to it;
// past them it calls over (if set) once and refuses the rest. It has no
// ReadFrom, so io.Copy goes through Write and the cap holds.
type capped struct {
	buf      bytes.Buffer
	max      int
	over     func()
	overflow bool
}

func (c *capped) Bytes() []byte  { return c.buf.Bytes() }
func (c *capped) String() string { return c.buf.String() }
func (c *capped) Len() int       { return c.buf.Len() }

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		if c.over != nil {
			if !c.overflow {
				c.overflow = true
				c.over()
			}
			return 0, errors.New("output too large")
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

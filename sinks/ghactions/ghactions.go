// Package ghactions is the `type: github-actions` sink: it writes the key as
// a GitHub Actions secret of a repository, an environment or an
// organization (or as a Dependabot secret), through go-github.
//
// GitHub secrets are write-only. Put seals the value for the scope's
// public key (a libsodium sealed box) and PUTs it; GitHub never returns it.
// The sink is therefore not a Reader: Confirm proves a write landed by the
// secret's updated_at having reached the write's acknowledgement, and the
// engine rolls back by a Put of the old value from the journal's encrypted
// copy. The sink is not a Rollbacker.
package ghactions

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/cenkalti/backoff/v5"
	"github.com/google/go-github/v62/github"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"golang.org/x/crypto/nacl/box"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.Confirmer   = (*Sink)(nil)
	_ sinks.Preflighter = (*Sink)(nil)
)

// Sink writes one GitHub secret. Its methods are safe for concurrent use;
// they run one at a time.
type Sink struct {
	cfg   Config
	name  string
	log   *zap.Logger
	gh    *github.Client
	clock clockwork.Clock

	mu   sync.Mutex
	api  secretsAPI        // built on first use: it may need repository IDs
	key  *github.PublicKey // the scope's public key, refetched when stale
	last putMemo
}

// putMemo remembers the last Put so that its repetition returns the same
// receipt (see Put).
type putMemo struct {
	rotationID  string
	fingerprint string
	receipt     sinks.Receipt
}

// Option adjusts a Sink, mainly for tests.
type Option func(*options)

type options struct {
	clock     clockwork.Clock
	transport http.RoundTripper
}

// WithClock sets the clock used for rate-limit waits and, when GitHub sends
// no Date header, for Receipt.At.
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// WithTransport sets the HTTP transport under authentication and
// rate-limit handling (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// NewWithOptions is New; it remains for callers written before New took
// options.
func NewWithOptions(c Config, log *zap.Logger, opts ...Option) (*Sink, error) {
	return New(c, log, opts...)
}

// New builds a sink from a validated config. It reads the token or the
// App's private key but makes no network call; access problems surface in
// Preflight or Put.
func New(c Config, log *zap.Logger, opts ...Option) (*Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ghactions: invalid config: %w", err)
	}
	c = c.withDefaults()
	o := options{clock: clockwork.NewRealClock(), transport: http.DefaultTransport}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sink{cfg: c, name: "github-actions:" + scopeName(c) + "/" + c.Name, clock: o.clock}
	if c.Fields != nil {
		s.name = "github-actions:" + scopeName(c) + "/" + strings.Join(c.Fields.Places(), ",")
	}
	s.log = log.WithLazy(zap.String("sink", s.name))

	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("ghactions: %s: base_url: %w", s.name, err)
	}
	var auth http.RoundTripper
	if c.App != nil {
		pem, err := c.App.PrivateKey.Resolve()
		if err != nil {
			return nil, fmt.Errorf("ghactions: %s: app private key: %w", s.name, err)
		}
		itr, err := ghinstallation.New(o.transport, c.App.AppID, c.App.InstallationID, []byte(pem.Reveal()))
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("ghactions: %s: app private key %s: %w", s.name, c.App.PrivateKey.Ref, secret.Scrub(err, pem)))
		}
		itr.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
		auth = itr
	} else {
		tok, err := c.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("ghactions: %s: token: %w", s.name, err)
		}
		auth = &tokenTransport{token: tok, next: o.transport}
	}
	hc := &http.Client{Transport: &rateLimitTransport{next: auth, clock: o.clock, log: s.log}}
	s.gh = github.NewClient(hc)
	s.gh.BaseURL = base
	s.gh.UserAgent = "rekey"
	return s, nil
}

// scopeName names the secret's scope the way the API paths do.
func scopeName(c Config) string {
	var s string
	switch {
	case c.Organization != "":
		s = "orgs/" + c.Organization
	case c.Environment != "":
		return "repos/" + c.Repository + "/environments/" + c.Environment
	default:
		s = "repos/" + c.Repository
	}
	if c.Dependabot {
		s += "/dependabot"
	}
	return s
}

// Name is "github-actions:" + scope + "/" + secret name, e.g.
// "github-actions:repos/acme/crm/environments/production/APEXVERIFY_API_KEY".
func (s *Sink) Name() string { return s.name }

// String prints the sink's name; a Sink holds no key value.
func (s *Sink) String() string { return s.name }

// GoString prints the sink's name, so %#v shows no token.
func (s *Sink) GoString() string { return "ghactions.Sink(" + s.name + ")" }

// Put seals value for the scope's current public key and writes it,
// refetching the key once if GitHub answers that it is stale, and waiting
// out primary and secondary rate limits.
//
// The receipt has no Version or Previous: GitHub keeps no versions, and
// updated_at changes on every write, so it cannot identify what a Put wrote.
// Created reports a 201 (the secret did not exist); At is GitHub's Date of
// the acknowledgement, which Confirm compares with updated_at.
//
// Put is idempotent per rotation: repeating it with the same value and
// rotation ID writes the value again (harmless) and returns the first
// receipt, which this Sink remembers. After a restart the memory is gone and
// a repetition reports Created false; nothing depends on Created for a
// write-only sink, since rollback writes the journaled old value.
func (s *Sink) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	if value.IsZero() {
		return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("ghactions: put %s: empty value", s.name))
	}
	items, err := s.items(value)
	if err != nil {
		return sinks.Receipt{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	api, err := s.scope(ctx)
	if err != nil {
		return sinks.Receipt{}, err
	}
	var previous []string
	var resp *github.Response
	created := true
	for i, it := range items {
		// The updated_at before the write lets Confirm tell a write that
		// landed from one that was acknowledged and lost: it must move
		// strictly past it.
		prev := ""
		if sec, _, err := api.get(ctx, it.name); err == nil {
			prev = sec.UpdatedAt.Time.UTC().Format(time.RFC3339)
		} else if statusOf(err) != http.StatusNotFound {
			return sinks.Receipt{}, s.partial(items[:i], it, s.classify("put", err, value))
		}
		if resp, err = s.write(ctx, api, it.name, it.value); err != nil {
			return sinks.Receipt{}, s.partial(items[:i], it, s.classify("put", err, value))
		}
		created = created && resp.StatusCode == http.StatusCreated
		if s.cfg.Fields != nil {
			prev = it.name + "=" + prev
		}
		previous = append(previous, prev)
	}
	fp := value.Fingerprint()
	if s.last.rotationID == rotationID && s.last.fingerprint == fp {
		return s.last.receipt, nil
	}
	r := sinks.Receipt{
		Sink:       s.name,
		RotationID: rotationID,
		Previous:   strings.Join(previous, ","),
		Created:    created,
		At:         s.ackTime(resp),
	}
	s.last = putMemo{rotationID: rotationID, fingerprint: fp, receipt: r}
	return r, nil
}

// item is one secret a Put writes and the value it gets.
type item struct {
	name  string
	value secret.Value
}

// items returns what a Put of value writes: the one secret, or with
// fields one secret per field, in the order of the field names. A value
// whose shape does not match the sink is a permanent error.
func (s *Sink) items(value secret.Value) ([]item, error) {
	if s.cfg.Fields == nil {
		if value.IsFields() {
			return nil, backoff.Permanent(fmt.Errorf("ghactions: put %s: the value has fields %s but the sink holds a single value: map them with fields", s.name, strings.Join(value.FieldNames(), ", ")))
		}
		return []item{{s.cfg.Name, value}}, nil
	}
	parts, err := s.cfg.Fields.Split(value)
	if err != nil {
		return nil, fmt.Errorf("ghactions: put %s: %w", s.name, err)
	}
	var out []item
	for _, pl := range s.cfg.Fields.Places() {
		out = append(out, item{pl, parts[pl]})
	}
	return out, nil
}

// partial is the error of a Put whose write of failed came after the
// secrets in done were written. GitHub cannot write several secrets at
// once, nor show what a secret held: the sink cannot restore the earlier
// secrets itself. So once any secret was written the error is never
// permanent (a permanent error means Put changed nothing), and the engine
// rolls the sink back with a Put of the journaled old value, which
// rewrites every secret of the pair: a partial pair is never left.
func (s *Sink) partial(done []item, failed item, err error) error {
	if len(done) == 0 {
		return err
	}
	var pe *backoff.PermanentError
	if errors.As(err, &pe) {
		err = pe.Unwrap()
	}
	names := make([]string, len(done))
	for i, d := range done {
		names[i] = d.name
	}
	return fmt.Errorf("ghactions: put %s: wrote %s but not %s, so the pair is split until it is written again: %w",
		s.name, strings.Join(names, ", "), failed.name, err)
}

// write PUTs value sealed for the cached public key, fetching it first when
// none is cached and refetching it once when GitHub rejects it (422).
func (s *Sink) write(ctx context.Context, api secretsAPI, name string, value secret.Value) (*github.Response, error) {
	fresh := false
	if s.key == nil {
		if err := s.fetchKey(ctx, api); err != nil {
			return nil, err
		}
		fresh = true
	}
	for {
		sealed, err := seal(s.key, value)
		if err != nil {
			return nil, err
		}
		resp, err := api.put(ctx, name, s.key.GetKeyID(), sealed)
		if err == nil {
			return resp, nil
		}
		if fresh || statusOf(err) != http.StatusUnprocessableEntity {
			return resp, err
		}
		// A cached key GitHub has since rotated: fetch the current one and
		// try once more.
		s.log.Info("github rejected the cached public key; refetching it")
		if err := s.fetchKey(ctx, api); err != nil {
			return nil, err
		}
		fresh = true
	}
}

func (s *Sink) fetchKey(ctx context.Context, api secretsAPI) error {
	k, _, err := api.publicKey(ctx)
	if err != nil {
		return err
	}
	if k.GetKeyID() == "" || k.GetKey() == "" {
		return errors.New("public key response without key_id or key")
	}
	s.key = k
	return nil
}

// seal encrypts value with a libsodium sealed box for the scope's key.
func seal(k *github.PublicKey, value secret.Value) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(k.GetKey())
	if err != nil || len(raw) != 32 {
		return "", backoff.Permanent(fmt.Errorf("public key %s is not a base64 Curve25519 key", k.GetKeyID()))
	}
	var pub [32]byte
	copy(pub[:], raw)
	out, err := box.SealAnonymous(nil, []byte(value.Reveal()), &pub, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// ackTime is GitHub's Date of the response, so that Confirm compares
// GitHub's clock with GitHub's clock; the local clock when it is missing.
func (s *Sink) ackTime(resp *github.Response) time.Time {
	if resp != nil && resp.Response != nil {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t.UTC()
		}
	}
	return s.clock.Now().UTC()
}

// granularity is the precision of GitHub's timestamps: updated_at and Date
// are whole seconds, so a write acknowledged at 12:00:01 may carry
// updated_at 12:00:00.
const granularity = time.Second

// Confirm checks that the secret exists and its updated_at is not older than
// the write r acknowledged (within GitHub's one-second granularity). GitHub
// cannot show the value itself. Errors are retryable: GitHub may still be
// propagating the write.
func (s *Sink) Confirm(ctx context.Context, r sinks.Receipt) error {
	if r.Sink != s.name {
		return backoff.Permanent(fmt.Errorf("ghactions: confirm %s: receipt is for sink %q", s.name, r.Sink))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	api, err := s.scope(ctx)
	if err != nil {
		return err
	}
	if s.cfg.Fields == nil {
		return s.confirmOne(ctx, api, s.cfg.Name, r.Previous, r.At)
	}
	prevs := map[string]string{}
	for _, p := range strings.Split(r.Previous, ",") {
		name, ts, _ := strings.Cut(p, "=")
		prevs[name] = ts
	}
	for _, name := range s.cfg.Fields.Places() {
		if err := s.confirmOne(ctx, api, name, prevs[name], r.At); err != nil {
			return err
		}
	}
	return nil
}

// confirmOne is Confirm for the secret name, whose updated_at was previous
// (RFC 3339, or empty) before the write acknowledged at at.
func (s *Sink) confirmOne(ctx context.Context, api secretsAPI, name, previous string, at time.Time) error {
	what := s.name
	if s.cfg.Fields != nil {
		what += " (secret " + name + ")"
	}
	sec, _, err := api.get(ctx, name)
	if statusOf(err) == http.StatusNotFound {
		return fmt.Errorf("ghactions: confirm %s: the secret does not exist after the write acknowledged at %s",
			what, at.Format(time.RFC3339))
	}
	if err != nil {
		return s.classify("confirm", err, secret.Value{})
	}
	updated := sec.UpdatedAt.Time
	if prev, err := time.Parse(time.RFC3339, previous); err == nil && !updated.After(prev) {
		// GitHub's timestamps have whole seconds: a write in the same second
		// as the one before it cannot be told apart. Retrying the put a second
		// later settles it.
		return fmt.Errorf("ghactions: confirm %s: updated_at %s has not moved past %s: the write has not landed (yet)",
			what, updated.UTC().Format(time.RFC3339), previous)
	}
	if updated.Before(at.Truncate(granularity).Add(-granularity)) {
		return fmt.Errorf("ghactions: confirm %s: updated_at %s is older than the write acknowledged at %s: the write has not landed",
			what, updated.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return nil
}

// Preflight checks, without writing, that the scope exists and the
// credentials may read its public key and the secret's metadata. GitHub
// offers no dry-run write, so a token that may read but not write secrets
// passes here and fails at Put.
func (s *Sink) Preflight(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	api, err := s.scope(ctx)
	if err != nil {
		return err
	}
	if err := s.fetchKey(ctx, api); err != nil {
		return s.classify("preflight", err, secret.Value{})
	}
	for _, name := range s.secretNames() {
		if _, _, err := api.get(ctx, name); err != nil && statusOf(err) != http.StatusNotFound {
			return s.classify("preflight", err, secret.Value{})
		}
	}
	return nil
}

// secretNames returns the secrets the sink writes, in write order.
func (s *Sink) secretNames() []string {
	if s.cfg.Fields != nil {
		return s.cfg.Fields.Places()
	}
	return []string{s.cfg.Name}
}

// scope returns the API for the secret's scope, looking up the repository
// IDs that environment secrets and selected visibility need on first use.
func (s *Sink) scope(ctx context.Context) (secretsAPI, error) {
	if s.api != nil {
		return s.api, nil
	}
	c := s.cfg
	switch {
	case c.Organization != "":
		api := &orgSecrets{c: s.gh, org: c.Organization, visibility: c.Visibility, dependabot: c.Dependabot}
		for _, name := range c.SelectedRepositories {
			r, _, err := s.gh.Repositories.Get(ctx, c.Organization, name)
			if err != nil {
				return nil, s.classifyLookup(c.Organization+"/"+name, "selected repository", err)
			}
			api.ids = append(api.ids, r.GetID())
		}
		s.api = api
	case c.Environment != "":
		owner, repo, _ := strings.Cut(c.Repository, "/")
		r, _, err := s.gh.Repositories.Get(ctx, owner, repo)
		if err != nil {
			return nil, s.classifyLookup(c.Repository, "repository", err)
		}
		s.api = &envSecrets{c: s.gh, repoID: int(r.GetID()), env: c.Environment}
	default:
		owner, repo, _ := strings.Cut(c.Repository, "/")
		s.api = &repoSecrets{c: s.gh, owner: owner, repo: repo, dependabot: c.Dependabot}
	}
	return s.api, nil
}

// tokenTransport authenticates every request with a static token.
type tokenTransport struct {
	token secret.Value
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token.Reveal())
	return t.next.RoundTrip(r)
}

// Package notify tells people about rotations: each back-end (notify/slack,
// notify/webhook) implements the one-method Notifier, and a Dispatcher
// sends every event to the targets that asked for it, retrying with
// backoff off the caller's path. Events never carry a key value, and
// webhook URLs (which embed tokens) appear in no error or log line.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/neterr"
	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
)

// Kind is what happened; notifiers subscribe to kinds.
type Kind string

const (
	Success  Kind = rotation.OutcomeSuccess  // a rotation finished: new key live, old key revoked
	Rollback Kind = rotation.OutcomeRollback // a rotation failed and every sink was restored
	Failure  Kind = rotation.OutcomeFailure  // a rotation failed and needs a person
	Overdue  Kind = "overdue"                // a key is older than rotate_every plus the grace period
)

// Event is one notification. It holds key IDs, never key values.
type Event struct {
	Kind       Kind
	Credential string
	RotationID string
	Phase      string
	Error      string
	Time       time.Time
	OldKeyID   string
	NewKeyID   string
}

// EventFor is the notification of a durable phase change that ends a
// rotation, of the kind its outcome names (rotation.Phase.Outcome); ok is
// false for a phase that does not end one. A rotation that did not succeed
// is reported in the phase where it went wrong.
func EventFor(tr rotation.TransitionEvent) (ev Event, ok bool) {
	kind := tr.Transition.Phase.Outcome()
	if kind == "" {
		return Event{}, false
	}
	phase := tr.Transition.Phase
	if tr.Prev != nil && phase != rotation.Done {
		phase = tr.Prev.Phase
	}
	return Event{Kind: Kind(kind), Credential: tr.Credential, RotationID: tr.RotationID, Phase: string(phase),
		Error: tr.Error, Time: tr.Transition.At, OldKeyID: tr.OldKeyID, NewKeyID: tr.NewKeyID}, true
}

// Summary is a one-line human description of ev.
func (ev Event) Summary() string {
	var s string
	switch ev.Kind {
	case Success:
		s = fmt.Sprintf("rekey: %s rotated (rotation %s): new key %s live, old key %s revoked", ev.Credential, ev.RotationID, dash(ev.NewKeyID), dash(ev.OldKeyID))
	case Rollback:
		s = fmt.Sprintf("rekey: %s rotation %s rolled back; the old key %s is still in use", ev.Credential, ev.RotationID, dash(ev.OldKeyID))
	case Failure:
		s = fmt.Sprintf("rekey: %s rotation %s FAILED in %s and needs attention", ev.Credential, ev.RotationID, ev.Phase)
	case Overdue:
		s = fmt.Sprintf("rekey: %s is overdue for rotation", ev.Credential)
	default:
		s = fmt.Sprintf("rekey: %s: %s", ev.Credential, ev.Kind)
	}
	if ev.Error != "" {
		s += ": " + ev.Error
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Notifier delivers one event, once. Errors not worth retrying (a 4xx
// from the receiver) are wrapped with backoff.Permanent. Errors never
// contain the notifier's URL.
type Notifier interface {
	Notify(ctx context.Context, ev Event) error
}

// Target is one configured notifier and the kinds it wants.
type Target struct {
	// Name identifies the target in logs, e.g. "notify[0] (slack)".
	Name     string
	Notifier Notifier
	On       []Kind
}

// Retry bounds how a Dispatcher retries one delivery.
type Retry struct {
	Attempts int           // default 5
	Initial  time.Duration // default 2s, doubling
	Max      time.Duration // default 1m
}

// Dispatcher delivers events to targets in the background, so a slow
// receiver never holds up a rotation. It is safe for concurrent use.
type Dispatcher struct {
	log   *zap.Logger
	clock clockwork.Clock
	retry Retry

	mu      sync.Mutex
	targets []Target
	queue   chan Event
	closed  bool
	done    chan struct{}
	stop    context.CancelFunc
	ctx     context.Context
}

// queueSize bounds the events waiting for delivery; beyond it events are
// dropped (and logged) rather than blocking the engine.
const queueSize = 256

// NewDispatcher starts a dispatcher; Close stops it.
func NewDispatcher(targets []Target, retry Retry, clock clockwork.Clock, log *zap.Logger) *Dispatcher {
	if retry.Attempts <= 0 {
		retry.Attempts = 5
	}
	if retry.Initial <= 0 {
		retry.Initial = 2 * time.Second
	}
	if retry.Max <= 0 {
		retry.Max = time.Minute
	}
	ctx, stop := context.WithCancel(context.Background())
	d := &Dispatcher{log: log, clock: clock, retry: retry, targets: targets,
		queue: make(chan Event, queueSize), done: make(chan struct{}), ctx: ctx, stop: stop}
	go d.loop()
	return d
}

// SetTargets replaces the targets (a config reload); queued events go to
// the new ones.
func (d *Dispatcher) SetTargets(targets []Target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets = targets
}

// Notify queues ev for every target subscribed to its kind. It never
// blocks; after Close it drops ev.
func (d *Dispatcher) Notify(ev Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || !d.wanted(ev.Kind) {
		return
	}
	select {
	case d.queue <- ev:
	default:
		d.log.Error("notification queue full: event dropped", zap.String("credential", ev.Credential), zap.String("event", string(ev.Kind)))
	}
}

func (d *Dispatcher) wanted(k Kind) bool {
	for _, t := range d.targets {
		if slices.Contains(t.On, k) {
			return true
		}
	}
	return false
}

// Close stops accepting events and waits until the queued ones are
// delivered or given up, or ctx ends (then pending retries are abandoned).
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.queue)
	}
	d.mu.Unlock()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.stop()
		<-d.done
		return fmt.Errorf("notify: pending notifications abandoned: %w", ctx.Err())
	}
}

func (d *Dispatcher) loop() {
	defer close(d.done)
	for ev := range d.queue {
		d.mu.Lock()
		targets := slices.Clone(d.targets)
		d.mu.Unlock()
		for _, t := range targets {
			if !slices.Contains(t.On, ev.Kind) {
				continue
			}
			if err := d.deliver(d.ctx, t.Notifier, ev); err != nil {
				// The decision is made here: the event is lost for this target.
				d.log.Error("notification not delivered", zap.String("notifier", t.Name), zap.String("credential", ev.Credential),
					zap.String("event", string(ev.Kind)), zap.Error(err))
			}
		}
	}
}

// deliver tries n up to Attempts times with exponential backoff, stopping
// early on a permanent error: one marked backoff.Permanent, or a local one
// no retry fixes (neterr.Permanent: an untrusted certificate, say).
func (d *Dispatcher) deliver(ctx context.Context, n Notifier, ev Event) error {
	attempts, err := retry.Policy{Initial: d.retry.Initial, Max: d.retry.Max, Tries: d.retry.Attempts, Clock: d.clock}.
		Do(ctx, func(ctx context.Context) error { return n.Notify(ctx, ev) })
	if err != nil {
		return fmt.Errorf("after %d attempts: %w", attempts, err)
	}
	return nil
}

// JSONPoster is a Notifier that posts the JSON encoding of Body(ev) to one
// URL with Post; Name prefixes its errors. Each integration (slack,
// webhook) is one of these with its own body.
type JSONPoster struct {
	Name   string
	URL    secret.Value // a secret: webhook URLs often embed a token
	Client *http.Client // nil: a 10s timeout
	Body   func(Event) any
}

var _ Notifier = (*JSONPoster)(nil)

// Notify implements Notifier.
func (p *JSONPoster) Notify(ctx context.Context, ev Event) error {
	body, err := json.Marshal(p.Body(ev))
	if err != nil {
		return fmt.Errorf("%s: encode: %w", p.Name, err)
	}
	if err := Post(ctx, p.Client, p.URL, body); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// Post sends body as JSON to u, once. A 2xx answer is success; 408, 429
// and 5xx answers and transport errors may be retried, except local ones
// no retry fixes (neterr.Permanent); other answers are permanent. Errors
// name the URL's host at most, never the URL.
func Post(ctx context.Context, client *http.Client, u secret.Value, body []byte) error {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.Reveal(), bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(errors.New("invalid webhook URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rekey")
	resp, err := client.Do(req)
	if err != nil {
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err // url.Error's message holds the whole URL: keep only the cause
		}
		err = fmt.Errorf("post to %s: %w", req.URL.Host, secret.Scrub(cause, u))
		if neterr.Permanent(err) {
			return backoff.Permanent(err)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("post to %s: status %d", req.URL.Host, resp.StatusCode)
	}
	return backoff.Permanent(fmt.Errorf("post to %s: status %d", req.URL.Host, resp.StatusCode))
}

// Package kubernetes is the `type: kubernetes-secret` sink: it keeps a key
// in one data key of a Kubernetes Secret (or, for a multi-field credential,
// in one data key per field), keeping the Secret's other keys, and can
// restart the workloads that read the Secret (rollout_restart) as `kubectl
// rollout restart` does, waiting for their rollouts as `kubectl rollout
// status` does, before the rotation's monitoring window starts.
//
// Writes use optimistic concurrency: each update carries the
// resourceVersion the sink read, and a conflict (another writer changed the
// Secret in between) reads again and retries, so another writer's keys are
// never overwritten. Receipts carry resourceVersions, never values. The
// sink is a Reader and not a Rollbacker: a Secret keeps no history, so a
// rollback is a Put of the old value the journal keeps encrypted.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// ErrConflict is returned (wrapped, retryable) when other writers kept
// changing the Secret between the sink's read and its update.
var ErrConflict = errors.New("kubernetes: the Secret kept changing under optimistic concurrency")

// LastPutAnnotation is the annotation on the Secret that records the last
// Put: its rotation ID, the resourceVersion it replaced and whether the
// sink's keys were new, so that a Put repeated after a crash returns the
// first one's receipt. It never holds a value.
const LastPutAnnotation = "rekey.dev/last-put"

// conflictAttempts bounds the read → update loop.
const conflictAttempts = 5

// requestTimeout bounds one request to the apiserver.
const requestTimeout = 30 * time.Second

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.Reader      = (*Sink)(nil)
	_ sinks.Preflighter = (*Sink)(nil)
	_ sinks.Settler     = (*Sink)(nil)
)

// Sink is a key in a Kubernetes Secret.
type Sink struct {
	cfg    Config
	log    *zap.Logger
	client k8s.Interface
	clock  clockwork.Clock
	name   string
}

// Option changes how New builds the sink.
type Option func(*options)

type options struct {
	rest  *rest.Config
	clock clockwork.Clock
}

// WithRESTConfig makes the sink talk to the apiserver rc describes instead
// of the one its config's auth fields name (tests).
func WithRESTConfig(rc *rest.Config) Option { return func(o *options) { o.rest = rc } }

// WithClock sets the clock that bounds the rollout wait (tests); default
// the real clock.
func WithClock(c clockwork.Clock) Option { return func(o *options) { o.clock = c } }

// New checks c and builds the client from the in-cluster service account,
// the kubeconfig and context c names, or client-go's default loading
// rules. It reads the kubeconfig but does not contact the apiserver.
func New(c Config, log *zap.Logger, opts ...Option) (*Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if o.clock == nil {
		o.clock = clockwork.NewRealClock()
	}
	name := Type + ":" + c.Namespace + "/" + c.Name + "#" + strings.Join(c.places(), ",")
	rc := o.rest
	if rc == nil {
		var err error
		if rc, err = c.restConfig(); err != nil {
			return nil, fmt.Errorf("kubernetes: %s: %w", name, err)
		}
	}
	rc = rest.CopyConfig(rc)
	rc.Timeout = requestTimeout
	rc.UserAgent = "rekey"
	client, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %s: %w", name, err)
	}
	return &Sink{cfg: c, log: log.WithLazy(zap.String("sink", name)), client: client, clock: o.clock, name: name}, nil
}

// restConfig finds the apiserver and credentials as the config says.
func (c Config) restConfig() (*rest.Config, error) {
	if c.InCluster {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in_cluster: %w", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
	// With no kubeconfig found and no context asked for, this falls back
	// to the in-cluster service account.
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// Name is "kubernetes-secret:NAMESPACE/NAME#KEY".
func (s *Sink) Name() string { return s.name }

func (s *Sink) String() string   { return s.name }
func (s *Sink) GoString() string { return "kubernetes(" + s.name + ")" }

func (s *Sink) secrets() interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
	Update(context.Context, *corev1.Secret, metav1.UpdateOptions) (*corev1.Secret, error)
	Create(context.Context, *corev1.Secret, metav1.CreateOptions) (*corev1.Secret, error)
} {
	return s.client.CoreV1().Secrets(s.cfg.Namespace)
}

func (s *Sink) where() string { return "secret " + s.cfg.Namespace + "/" + s.cfg.Name }

// lastPut is what LastPutAnnotation holds.
type lastPut struct {
	RotationID string `json:"rotation_id"`
	Previous   string `json:"previous,omitempty"`
	Created    bool   `json:"created,omitempty"`
}

// Put sets the sink's keys to value in one update that carries the
// resourceVersion it read, keeping the Secret's other keys; a conflict
// reads again and retries a few times, then fails with ErrConflict
// (retryable). A missing Secret is created when create_if_missing is set,
// and is a permanent error otherwise. When the Secret already holds value
// (a repeat after a crash) Put writes nothing and returns the receipt the
// first Put returned, rebuilt from LastPutAnnotation. Receipt.Version is
// the Secret's resourceVersion after the write, Previous the one before
// ("" when the Secret did not exist).
func (s *Sink) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	parts, err := s.split(value)
	if err != nil {
		return sinks.Receipt{}, err
	}
	for attempt := 0; attempt < conflictAttempts; attempt++ {
		r := sinks.Receipt{Sink: s.name, RotationID: rotationID}
		cur, err := s.secrets().Get(ctx, s.cfg.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if !s.cfg.CreateIfMissing {
				return r, s.permanent(err, "put: the Secret does not exist (create it, or set create_if_missing)")
			}
			created, err := s.create(ctx, parts, rotationID)
			if apierrors.IsAlreadyExists(err) {
				continue // another writer created it first: update that one
			}
			if err != nil {
				return r, secret.Scrub(s.classify("create", err), value)
			}
			r.Created, r.Version, r.At = true, created.ResourceVersion, s.clock.Now().UTC()
			return r, nil
		case err != nil:
			return r, s.classify("read", err)
		}
		if s.holds(cur, parts) {
			return s.repeatReceipt(cur, r), nil
		}
		next := cur.DeepCopy()
		if next.Data == nil {
			next.Data = map[string][]byte{}
		}
		r.Created = !s.hadAny(cur)
		r.Previous = cur.ResourceVersion
		for k, v := range parts {
			next.Data[k] = []byte(v.Reveal())
		}
		setLastPut(&next.ObjectMeta, lastPut{RotationID: rotationID, Previous: r.Previous, Created: r.Created})
		updated, err := s.secrets().Update(ctx, next, metav1.UpdateOptions{FieldManager: "rekey"})
		if apierrors.IsConflict(err) {
			s.log.Debug("the Secret changed since it was read; reading again", zap.Int("attempt", attempt+1))
			continue
		}
		if err != nil {
			return sinks.Receipt{}, secret.Scrub(s.classify("update", err), value)
		}
		r.Version, r.At = updated.ResourceVersion, s.clock.Now().UTC()
		return r, nil
	}
	return sinks.Receipt{}, fmt.Errorf("kubernetes: put %s: %d updates lost to concurrent writers: %w", s.where(), conflictAttempts, ErrConflict)
}

func (s *Sink) create(ctx context.Context, parts map[string]secret.Value, rotationID string) (*corev1.Secret, error) {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.cfg.Name, Namespace: s.cfg.Namespace,
			Labels: maps.Clone(s.cfg.Labels), Annotations: maps.Clone(s.cfg.Annotations),
		},
		Type: corev1.SecretTypeOpaque,
		Data: make(map[string][]byte, len(parts)),
	}
	for k, v := range parts {
		sec.Data[k] = []byte(v.Reveal())
	}
	setLastPut(&sec.ObjectMeta, lastPut{RotationID: rotationID, Created: true})
	return s.secrets().Create(ctx, sec, metav1.CreateOptions{FieldManager: "rekey"})
}

func setLastPut(m *metav1.ObjectMeta, lp lastPut) {
	b, _ := json.Marshal(lp)
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[LastPutAnnotation] = string(b)
}

// repeatReceipt describes a Secret that already holds the value as the Put
// that wrote it did, when LastPutAnnotation names r's rotation.
func (s *Sink) repeatReceipt(cur *corev1.Secret, r sinks.Receipt) sinks.Receipt {
	r.Version = cur.ResourceVersion
	r.Previous = cur.ResourceVersion
	var lp lastPut
	if err := json.Unmarshal([]byte(cur.Annotations[LastPutAnnotation]), &lp); err == nil && lp.RotationID == r.RotationID {
		r.Previous, r.Created = lp.Previous, lp.Created
	}
	r.At = s.clock.Now().UTC()
	return r
}

// split maps value onto the Secret's data keys, refusing (permanently) a
// value whose shape the sink cannot hold.
func (s *Sink) split(value secret.Value) (map[string]secret.Value, error) {
	if s.cfg.Fields != nil {
		parts, err := s.cfg.Fields.Split(value)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: put %s: %w", s.where(), err)
		}
		return parts, nil
	}
	if value.IsFields() {
		return nil, backoff.Permanent(fmt.Errorf("kubernetes: put %s: the value has fields %s but the sink holds a single value: map them with fields", s.where(), strings.Join(value.FieldNames(), ", ")))
	}
	if value.IsZero() {
		return nil, backoff.Permanent(fmt.Errorf("kubernetes: put %s: empty value", s.where()))
	}
	return map[string]secret.Value{s.cfg.Key: value}, nil
}

func (s *Sink) holds(sec *corev1.Secret, parts map[string]secret.Value) bool {
	for k, v := range parts {
		got, ok := sec.Data[k]
		if !ok || !secret.New(string(got)).Equal(v) {
			return false
		}
	}
	return true
}

func (s *Sink) hadAny(sec *corev1.Secret) bool {
	for _, k := range s.cfg.places() {
		if _, ok := sec.Data[k]; ok {
			return true
		}
	}
	return false
}

// Get returns the sink's keys, or sinks.ErrNotFound when the Secret or
// every one of its keys is missing (sinks.ErrPartial when only some are).
func (s *Sink) Get(ctx context.Context) (secret.Value, error) {
	cur, err := s.secrets().Get(ctx, s.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return secret.Value{}, sinks.ErrNotFound
	}
	if err != nil {
		return secret.Value{}, s.classify("read", err)
	}
	if s.cfg.Fields == nil {
		b, ok := cur.Data[s.cfg.Key]
		if !ok || len(b) == 0 {
			return secret.Value{}, sinks.ErrNotFound
		}
		return secret.New(string(b)), nil
	}
	held := map[string]secret.Value{}
	for _, pl := range s.cfg.Fields.Places() {
		if b, ok := cur.Data[pl]; ok {
			held[pl] = secret.New(string(b))
		}
	}
	v, err := s.cfg.Fields.Join(held)
	if err != nil && !errors.Is(err, sinks.ErrNotFound) {
		return secret.Value{}, fmt.Errorf("kubernetes: read %s: %w", s.where(), err)
	}
	return v, err
}

// Preflight checks, with SelfSubjectAccessReviews and without writing,
// that the sink's identity may get and update the Secret (and create it,
// when it is missing and create_if_missing is set), and may get, patch
// and watch every workload rollout_restart names.
func (s *Sink) Preflight(ctx context.Context) error {
	_, err := s.secrets().Get(ctx, s.cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && !s.cfg.CreateIfMissing:
		return s.permanent(err, "preflight: the Secret does not exist (create it, or set create_if_missing)")
	case apierrors.IsNotFound(err):
		if err := s.mayDo(ctx, "create", "", "secrets", ""); err != nil {
			return err
		}
	case err != nil && !apierrors.IsForbidden(err):
		return s.classify("read", err)
	}
	for _, verb := range []string{"get", "update"} {
		if err := s.mayDo(ctx, verb, "", "secrets", s.cfg.Name); err != nil {
			return err
		}
	}
	for _, w := range s.workloads() {
		for _, verb := range []string{"get", "patch", "list", "watch"} {
			if err := s.mayDo(ctx, verb, "apps", w.resource, w.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// mayDo asks the apiserver whether the sink's identity may do verb on the
// resource (named name, "" for any) in the Secret's namespace.
func (s *Sink) mayDo(ctx context.Context, verb, group, resource, name string) error {
	review, err := s.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: s.cfg.Namespace, Verb: verb, Group: group, Resource: resource, Name: name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return s.classify("check access", err)
	}
	if !review.Status.Allowed {
		what := resource
		if name != "" {
			what += "/" + name
		}
		why := ""
		if r := review.Status.Reason; r != "" {
			why = " (" + r + ")"
		}
		return backoff.Permanent(fmt.Errorf("kubernetes: %s: preflight: may not %s %s in namespace %s%s: see the Role in deploy/kubernetes/components/secret-sink", s.name, verb, what, s.cfg.Namespace, why))
	}
	return nil
}

// permanent builds a permanent error naming the sink.
func (s *Sink) permanent(cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cause != nil {
		return backoff.Permanent(fmt.Errorf("kubernetes: %s: %s: %w", s.where(), msg, cause))
	}
	return backoff.Permanent(fmt.Errorf("kubernetes: %s: %s", s.where(), msg))
}

// classify wraps an apiserver error of op on the Secret: permanent for
// what retrying cannot fix (forbidden, unauthorized, invalid, not found),
// plain otherwise.
func (s *Sink) classify(op string, err error) error { return s.classifyOn(s.where(), op, err) }

// classifyOn is classify for op on the object what ("secret crm/x",
// "deployment/api").
func (s *Sink) classifyOn(what, op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kubernetes: %s %s: %w", op, what, err)
	}
	hint := ""
	switch {
	case apierrors.IsForbidden(err):
		hint = "forbidden: check the Role bound to rekey's service account: "
	case apierrors.IsUnauthorized(err):
		hint = "unauthorized: check the kubeconfig or service account token: "
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err):
	default:
		return fmt.Errorf("kubernetes: %s: %s %s: %w", s.name, op, what, err)
	}
	return backoff.Permanent(fmt.Errorf("kubernetes: %s: %s %s: %s%w", s.name, op, what, hint, err))
}

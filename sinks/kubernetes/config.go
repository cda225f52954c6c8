package kubernetes

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

// Type is the sink's type in configuration.
const Type = "kubernetes-secret"

// DefaultRolloutTimeout bounds the wait for the restarted workloads when
// rollout_restart.timeout is not set.
const DefaultRolloutTimeout = 5 * time.Minute

// Config is one `type: kubernetes-secret` sink entry.
type Config struct {
	// Namespace is the Secret's namespace (and that of the workloads
	// restarted).
	Namespace string `yaml:"namespace"`
	// Name is the Secret's name.
	Name string `yaml:"name"`
	// Key is the Secret data key that holds the key; the Secret's other
	// keys are kept.
	Key string `yaml:"key"`
	// Fields maps a multi-field credential's fields to Secret data keys,
	// e.g. {id: AWS_ACCESS_KEY_ID, secret: AWS_SECRET_ACCESS_KEY}; instead
	// of Key. Every field is written in one update.
	Fields sinks.Fields `yaml:"fields"`
	// CreateIfMissing lets Put create the Secret (type Opaque) when it
	// does not exist; otherwise a missing Secret is an error.
	CreateIfMissing bool `yaml:"create_if_missing"`
	// Labels and Annotations are set on a Secret that Put creates; an
	// existing Secret's metadata is left alone.
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`

	// InCluster uses the pod's service account (the token and CA that
	// Kubernetes mounts into every pod).
	InCluster bool `yaml:"in_cluster"`
	// Kubeconfig is a kubeconfig file to use; Context a context in it (or
	// in the default kubeconfig). With none of the three, client-go's
	// default loading rules apply: $KUBECONFIG, then ~/.kube/config, then
	// the in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`

	// RolloutRestart names the workloads that read the Secret and must be
	// restarted to pick up a new value.
	RolloutRestart *RolloutRestart `yaml:"rollout_restart"`
}

// RolloutRestart is the `rollout_restart` entry of a sink: the workloads,
// in the Secret's namespace, that rekey restarts as `kubectl rollout
// restart` does after each write (and after a rollback's restore), and
// waits for as `kubectl rollout status` does.
type RolloutRestart struct {
	Deployments  []string `yaml:"deployments"`
	StatefulSets []string `yaml:"statefulsets"`
	DaemonSets   []string `yaml:"daemonsets"`
	// Timeout bounds the wait for every rollout to complete; default 5m.
	// A rollout that does not complete in time fails the deploy.
	Timeout config.Duration `yaml:"timeout"`
}

func (r *RolloutRestart) timeout() time.Duration {
	if r == nil || r.Timeout <= 0 {
		return DefaultRolloutTimeout
	}
	return r.Timeout.Std()
}

// places returns the Secret's data keys the sink owns.
func (c Config) places() []string {
	if c.Fields != nil {
		return c.Fields.Places()
	}
	return []string{c.Key}
}

// MappedFields implements config.FieldMapper: the credential fields the
// sink maps, sorted; nil when it holds a single value.
func (c Config) MappedFields() []string { return c.Fields.MappedFields() }

// Validate checks the entry without touching the network or the
// environment. Field paths are relative to the entry.
func (c Config) Validate() error {
	var errs config.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...).(*config.Error))
	}
	dns := func(field, v, what string, check func(string) []string) {
		if v == "" {
			add(field, "required (%s)", what)
			return
		}
		if msgs := check(v); len(msgs) > 0 {
			add(field, "%q is not a valid Kubernetes name: %s", v, strings.Join(msgs, "; "))
		}
	}
	dns("namespace", c.Namespace, "the Secret's namespace", validation.IsDNS1123Label)
	dns("name", c.Name, "the Secret's name", validation.IsDNS1123Subdomain)
	secretKey := func(p string) error {
		if msgs := validation.IsConfigMapKey(p); len(msgs) > 0 {
			return fmt.Errorf("%q is not a valid Secret data key: %s", p, strings.Join(msgs, "; "))
		}
		return nil
	}
	switch {
	case c.Fields != nil && c.Key != "":
		add("fields", "key and fields are mutually exclusive: key holds a single value, fields map a multi-field one")
	case c.Fields != nil:
		for _, e := range flattenJoin(c.Fields.Validate(secretKey)) {
			if ce, ok := e.(*config.Error); ok {
				errs = append(errs, ce)
			}
		}
	case c.Key == "":
		add("key", "required (the Secret data key that holds the key)")
	default:
		if err := secretKey(c.Key); err != nil {
			add("key", "%v", err)
		}
	}
	if !c.CreateIfMissing {
		if c.Labels != nil {
			add("labels", "only used with create_if_missing: rekey sets labels on a Secret it creates, never on an existing one")
		}
		if c.Annotations != nil {
			add("annotations", "only used with create_if_missing: rekey sets annotations on a Secret it creates, never on an existing one")
		}
	}
	for _, k := range sortedKeys(c.Labels) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			add("labels."+k, "not a valid label key: %s", strings.Join(msgs, "; "))
		} else if msgs := validation.IsValidLabelValue(c.Labels[k]); len(msgs) > 0 {
			add("labels."+k, "not a valid label value: %s", strings.Join(msgs, "; "))
		}
	}
	for _, k := range sortedKeys(c.Annotations) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			add("annotations."+k, "not a valid annotation key: %s", strings.Join(msgs, "; "))
		}
	}
	if c.InCluster && c.Kubeconfig != "" {
		add("kubeconfig", "in_cluster and kubeconfig are mutually exclusive")
	}
	if c.InCluster && c.Context != "" {
		add("context", "in_cluster uses the pod's service account: there is no context to choose")
	}
	if r := c.RolloutRestart; r != nil {
		if len(r.Deployments)+len(r.StatefulSets)+len(r.DaemonSets) == 0 {
			add("rollout_restart", "name at least one of deployments, statefulsets, daemonsets")
		}
		for _, l := range []struct {
			field string
			names []string
		}{{"deployments", r.Deployments}, {"statefulsets", r.StatefulSets}, {"daemonsets", r.DaemonSets}} {
			for i, n := range l.names {
				f := "rollout_restart." + l.field + "[" + strconv.Itoa(i) + "]"
				if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
					add(f, "%q is not a valid Kubernetes name: %s", n, strings.Join(msgs, "; "))
				} else if slices.Index(l.names, n) < i {
					add(f, "%q is listed twice", n)
				}
			}
		}
		if r.Timeout < 0 {
			add("rollout_restart.timeout", "must not be negative")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// flattenJoin returns the errors an errors.Join holds, or err alone.
func flattenJoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

package kubernetes

// rollout_restart: restarting the workloads that read the Secret, and
// waiting for their rollouts.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/rekeyhq/rekey/config"
)

// RestartedAtAnnotation is the pod-template annotation `kubectl rollout
// restart` sets; changing it makes the controller roll every pod.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// RestartedForAnnotation is the pod-template annotation that records the
// rotation (or rollback, "ID.rollback") a restart was for, so that a
// Settle repeated after a crash waits for that restart instead of
// starting another.
const RestartedForAnnotation = "rekey.dev/restarted-for"

// workload is one Deployment, StatefulSet or DaemonSet to restart.
type workload struct {
	kind     string // "deployment", for messages
	resource string // "deployments", for RBAC
	name     string
	// template returns the pod template's annotations and the object's
	// generation.
	get   func(ctx context.Context) (annotations map[string]string, generation int64, err error)
	patch func(ctx context.Context, body []byte) (generation int64, err error)
	lw    cache.ListerWatcher
	obj   runtime.Object
	// status applies `kubectl rollout status`'s rule to an object of obj's
	// type: done, or what it waits for.
	status func(obj runtime.Object) (done bool, waiting string, err error)
}

func (w workload) String() string { return w.kind + "/" + w.name }

// workloads returns what rollout_restart names, Deployments first.
func (s *Sink) workloads() []workload {
	r := s.cfg.RolloutRestart
	if r == nil {
		return nil
	}
	ns := s.cfg.Namespace
	apps := s.client.AppsV1()
	var out []workload
	for _, n := range r.Deployments {
		out = append(out, newWorkload(apps.RESTClient(), ns, "deployment", "deployments", n, apps.Deployments(ns), &appsv1.Deployment{},
			func(o *appsv1.Deployment) map[string]string { return o.Spec.Template.Annotations }, DeploymentComplete))
	}
	for _, n := range r.StatefulSets {
		out = append(out, newWorkload(apps.RESTClient(), ns, "statefulset", "statefulsets", n, apps.StatefulSets(ns), &appsv1.StatefulSet{},
			func(o *appsv1.StatefulSet) map[string]string { return o.Spec.Template.Annotations }, StatefulSetComplete))
	}
	for _, n := range r.DaemonSets {
		out = append(out, newWorkload(apps.RESTClient(), ns, "daemonset", "daemonsets", n, apps.DaemonSets(ns), &appsv1.DaemonSet{},
			func(o *appsv1.DaemonSet) map[string]string { return o.Spec.Template.Annotations }, DaemonSetComplete))
	}
	return out
}

// typedClient is what the typed clients of Deployments, StatefulSets and
// DaemonSets have in common.
type typedClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// newWorkload is the workload of the object name of one kind, through its
// typed client c; obj is an empty object of the kind, for the watch;
// annotations reads its pod template's annotations, and
// complete is kubectl's rollout-status rule for it.
func newWorkload[T interface {
	runtime.Object
	GetGeneration() int64
}](rest cache.Getter, ns, kind, resource, name string, c typedClient[T], obj T, annotations func(T) map[string]string, complete func(T) (bool, string, error)) workload {
	return workload{kind: kind, resource: resource, name: name,
		get: func(ctx context.Context) (map[string]string, int64, error) {
			o, err := c.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, 0, err
			}
			return annotations(o), o.GetGeneration(), nil
		},
		patch: func(ctx context.Context, body []byte) (int64, error) {
			o, err := c.Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: "rekey"})
			if err != nil {
				return 0, err
			}
			return o.GetGeneration(), nil
		},
		lw:     cache.NewListWatchFromClient(rest, resource, ns, fields.OneTermEqualSelector("metadata.name", name)),
		obj:    obj,
		status: func(o runtime.Object) (bool, string, error) { return complete(o.(T)) },
	}
}

// Settle implements sinks.Settler: it restarts every workload
// rollout_restart names, as `kubectl rollout restart` does (a patch of the
// pod template's RestartedAtAnnotation), then waits, watching each object,
// until every rollout is complete by `kubectl rollout status`'s rule, or
// fails when rollout_restart.timeout passes first. A workload whose
// template already records rotationID (RestartedForAnnotation) is not
// restarted again, only waited for. Without rollout_restart it does
// nothing.
func (s *Sink) Settle(ctx context.Context, rotationID string) error {
	ws := s.workloads()
	if len(ws) == 0 {
		return nil
	}
	now := s.clock.Now().UTC().Format(time.RFC3339)
	body := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q,%q:%q}}}}}`,
		RestartedAtAnnotation, now, RestartedForAnnotation, rotationID)
	for _, w := range ws {
		ann, _, err := w.get(ctx)
		if err != nil {
			return s.classifyWorkload("get", w, err)
		}
		if ann[RestartedForAnnotation] == rotationID {
			s.log.Info("already restarted for this rotation; waiting for its rollout", zap.String("workload", w.String()))
			continue
		}
		if _, err := w.patch(ctx, body); err != nil {
			return s.classifyWorkload("restart", w, err)
		}
		s.log.Info("restarted", zap.String("workload", w.String()))
	}
	timeout := s.cfg.RolloutRestart.timeout()
	wctx, cancel := clockwork.WithTimeout(ctx, s.clock, timeout)
	defer cancel()
	for _, w := range ws {
		if err := s.wait(wctx, w); err != nil {
			if ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("kubernetes: %s: rollout of %s did not complete within %s: %w", s.name, w, config.Duration(timeout), err)
			}
			return err
		}
		s.log.Info("rollout complete", zap.String("workload", w.String()))
	}
	return nil
}

// wait watches w (a list and watch of that one object, by field selector)
// until its rollout is complete. The error on timeout says what the
// rollout last waited for.
func (s *Sink) wait(ctx context.Context, w workload) error {
	last := "no status yet"
	check := func(o runtime.Object) (bool, error) {
		done, waiting, err := w.status(o)
		if err != nil {
			return false, err
		}
		if !done {
			last = waiting
		}
		return done, nil
	}
	_, err := watchtools.UntilWithSync(ctx, w.lw, w.obj,
		func(store cache.Store) (bool, error) {
			items := store.List()
			if len(items) == 0 {
				return false, nil
			}
			return check(items[0].(runtime.Object))
		},
		func(ev watch.Event) (bool, error) {
			switch ev.Type {
			case watch.Deleted:
				return false, fmt.Errorf("%s was deleted during its rollout", w)
			case watch.Added, watch.Modified:
				return check(ev.Object)
			}
			return false, nil
		})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s", w, last)
	}
	return fmt.Errorf("kubernetes: %s: wait for the rollout of %s: %w", s.name, w, err)
}

func (s *Sink) classifyWorkload(op string, w workload, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kubernetes: %s %s: %w", op, w, err)
	}
	return s.classifyOn(w.String(), op, err)
}

// DeploymentComplete applies `kubectl rollout status`'s rule to d: the
// controller has observed the latest generation, every desired replica is
// updated, no old replica is left and every updated replica is available.
// A Progressing condition with reason ProgressDeadlineExceeded is an error:
// the rollout is stuck.
func DeploymentComplete(d *appsv1.Deployment) (done bool, waiting string, err error) {
	if d.Generation > d.Status.ObservedGeneration {
		return false, "waiting for the deployment spec update to be observed", nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, "", fmt.Errorf("deployment %q exceeded its progress deadline", d.Name)
		}
	}
	st := d.Status
	switch {
	case d.Spec.Replicas != nil && st.UpdatedReplicas < *d.Spec.Replicas:
		return false, fmt.Sprintf("%d out of %d new replicas have been updated", st.UpdatedReplicas, *d.Spec.Replicas), nil
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas are pending termination", st.Replicas-st.UpdatedReplicas), nil
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, fmt.Sprintf("%d of %d updated replicas are available", st.AvailableReplicas, st.UpdatedReplicas), nil
	}
	return true, "", nil
}

// StatefulSetComplete applies `kubectl rollout status`'s rule to s: the
// latest generation observed, every desired replica ready, the partition's
// replicas updated, and (without a partition) the current revision equal
// to the update revision. Only the RollingUpdate strategy can be waited
// for: with OnDelete, a restart rolls no pod.
func StatefulSetComplete(s *appsv1.StatefulSet) (done bool, waiting string, err error) {
	if s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType && s.Spec.UpdateStrategy.Type != "" {
		return false, "", fmt.Errorf("statefulset %q uses update strategy %s: rollout_restart needs RollingUpdate", s.Name, s.Spec.UpdateStrategy.Type)
	}
	st := s.Status
	if st.ObservedGeneration == 0 || s.Generation > st.ObservedGeneration {
		return false, "waiting for the statefulset spec update to be observed", nil
	}
	if s.Spec.Replicas != nil && st.ReadyReplicas < *s.Spec.Replicas {
		return false, fmt.Sprintf("%d of %d pods are ready", st.ReadyReplicas, *s.Spec.Replicas), nil
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 && s.Spec.Replicas != nil {
		if want := *s.Spec.Replicas - *ru.Partition; st.UpdatedReplicas < want {
			return false, fmt.Sprintf("%d of %d pods of the partition have been updated", st.UpdatedReplicas, want), nil
		}
		return true, "", nil
	}
	if st.UpdateRevision != st.CurrentRevision {
		return false, fmt.Sprintf("%d pods at revision %s", st.UpdatedReplicas, st.UpdateRevision), nil
	}
	return true, "", nil
}

// DaemonSetComplete applies `kubectl rollout status`'s rule to d: the
// latest generation observed and every scheduled pod updated and
// available. Only the RollingUpdate strategy can be waited for.
func DaemonSetComplete(d *appsv1.DaemonSet) (done bool, waiting string, err error) {
	if d.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType && d.Spec.UpdateStrategy.Type != "" {
		return false, "", fmt.Errorf("daemonset %q uses update strategy %s: rollout_restart needs RollingUpdate", d.Name, d.Spec.UpdateStrategy.Type)
	}
	if d.Generation > d.Status.ObservedGeneration {
		return false, "waiting for the daemonset spec update to be observed", nil
	}
	st := d.Status
	switch {
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		return false, fmt.Sprintf("%d out of %d new pods have been updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled), nil
	case st.NumberAvailable < st.DesiredNumberScheduled:
		return false, fmt.Sprintf("%d of %d updated pods are available", st.NumberAvailable, st.DesiredNumberScheduled), nil
	}
	return true, "", nil
}

package kubetest

import (
	"context"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/rekeyhq/rekey/sinks/kubernetes"
)

// Controller plays the Deployment controller for one Deployment, since no
// controller runs in the test apiserver: each time it sees a generation
// it has not observed (a new pod template), it calls Roll, then writes the
// status Roll returns through the status subresource.
type Controller struct {
	// Rolled receives the pod template's RestartedForAnnotation at each
	// rollout, once its status is written.
	Rolled chan string

	mu   sync.Mutex
	roll func(d *appsv1.Deployment) appsv1.DeploymentStatus
}

// SetRoll replaces what a rollout does.
func (c *Controller) SetRoll(f func(d *appsv1.Deployment) appsv1.DeploymentStatus) {
	c.mu.Lock()
	c.roll = f
	c.mu.Unlock()
}

// Complete is the status of a finished rollout of d: the template
// observed, every replica updated, ready and available.
func Complete(d *appsv1.Deployment) appsv1.DeploymentStatus {
	n := *d.Spec.Replicas
	return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
}

// Stuck is the status of a rollout of d whose new pods never become
// ready: one updated, none available, the old ones still running.
func Stuck(d *appsv1.Deployment) appsv1.DeploymentStatus {
	n := *d.Spec.Replicas
	return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n + 1, UpdatedReplicas: 1, ReadyReplicas: n, AvailableReplicas: n}
}

// Control starts playing the controller of Deployment ns/name until t
// ends; roll decides each rollout's status (Complete, Stuck, or a test's
// own). The Deployment's current generation counts as observed.
func (s *Server) Control(t testing.TB, ns, name string, roll func(d *appsv1.Deployment) appsv1.DeploymentStatus) *Controller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Controller{Rolled: make(chan string, 16), roll: roll}
	deps := s.Client.AppsV1().Deployments(ns)
	cur, err := deps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status = Complete(cur)
	if cur, err = deps.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lw := cache.NewListWatchFromClient(s.Client.AppsV1().RESTClient(), "deployments", ns, fields.OneTermEqualSelector("metadata.name", name))
	w, err := watchtools.NewRetryWatcherWithContext(ctx, cur.ResourceVersion, lw)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || ev.Type == watch.Deleted || d.Generation <= d.Status.ObservedGeneration {
				continue
			}
			c.mu.Lock()
			roll := c.roll
			c.mu.Unlock()
			d.Status = roll(d)
			if _, err := deps.UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
				if ctx.Err() == nil {
					t.Errorf("controller %s/%s: update status: %v", ns, name, err)
				}
				continue
			}
			c.Rolled <- d.Spec.Template.Annotations[kubernetes.RestartedForAnnotation]
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return c
}

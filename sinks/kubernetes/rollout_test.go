package kubernetes_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rekeyhq/rekey/sinks/kubernetes"
)

func ptr[T any](v T) *T { return &v }

// The cases follow kubectl's own tests of `kubectl rollout status`
// (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status_test.go).
func TestDeploymentComplete(t *testing.T) {
	for _, tc := range []struct {
		name       string
		generation int64
		status     appsv1.DeploymentStatus
		done       bool
		waiting    string
		err        string
	}{
		{"not observed", 2, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}, false, "spec update to be observed", ""},
		{"updating", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1}, false, "1 out of 2 new replicas", ""},
		{"old pending termination", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}, false, "1 old replicas are pending termination", ""},
		{"not available", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1}, false, "1 of 2 updated replicas are available", ""},
		{"complete", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, true, "", ""},
		{"deadline exceeded", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"}}}, false, "", "exceeded its progress deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Generation: tc.generation},
				Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2))}, Status: tc.status}
			done, waiting, err := kubernetes.DeploymentComplete(d)
			check(t, done, waiting, err, tc.done, tc.waiting, tc.err)
		})
	}
}

func TestStatefulSetComplete(t *testing.T) {
	rolling := appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}
	for _, tc := range []struct {
		name     string
		strategy appsv1.StatefulSetUpdateStrategy
		status   appsv1.StatefulSetStatus
		done     bool
		waiting  string
		err      string
	}{
		{"on delete", appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}, appsv1.StatefulSetStatus{}, false, "", "needs RollingUpdate"},
		{"not observed", rolling, appsv1.StatefulSetStatus{ObservedGeneration: 1}, false, "spec update to be observed", ""},
		{"not ready", rolling, appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 1}, false, "1 of 3 pods are ready", ""},
		{"partition", appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(1))}},
			appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 3, UpdatedReplicas: 1}, false, "1 of 2 pods of the partition", ""},
		{"revisions differ", rolling, appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 3, UpdatedReplicas: 2, CurrentRevision: "a", UpdateRevision: "b"}, false, "revision b", ""},
		{"complete", rolling, appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 3, UpdatedReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "cache", Generation: 2},
				Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), UpdateStrategy: tc.strategy}, Status: tc.status}
			done, waiting, err := kubernetes.StatefulSetComplete(s)
			check(t, done, waiting, err, tc.done, tc.waiting, tc.err)
		})
	}
}

func TestDaemonSetComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  appsv1.DaemonSetStatus
		done    bool
		waiting string
	}{
		{"not observed", appsv1.DaemonSetStatus{ObservedGeneration: 1}, false, "spec update to be observed"},
		{"updating", appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 2}, false, "2 out of 3 new pods"},
		{"not available", appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 2}, false, "2 of 3 updated pods"},
		{"complete", appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: 2},
				Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}}, Status: tc.status}
			done, waiting, err := kubernetes.DaemonSetComplete(d)
			check(t, done, waiting, err, tc.done, tc.waiting, "")
		})
	}
	_, _, err := kubernetes.DaemonSetComplete(&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}}})
	if err == nil {
		t.Error("an OnDelete DaemonSet is waited for; want an error")
	}
}

func check(t *testing.T, done bool, waiting string, err error, wantDone bool, wantWaiting, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if done != wantDone || !strings.Contains(waiting, wantWaiting) {
		t.Errorf("done %v waiting %q, want done %v waiting %q", done, waiting, wantDone, wantWaiting)
	}
}

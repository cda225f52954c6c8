package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/kubernetes"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

// roleFile is the shipped Role, tested as it is written.
const roleFile = "../../../deploy/kubernetes/components/secret-sink/role.yaml"

func TestMain(m *testing.M) {
	// The apiserver logs a great deal through klog; REKEY_KUBE_LOG=1 shows it.
	if os.Getenv("REKEY_KUBE_LOG") == "" {
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	os.Exit(e2etest.Main(m)) // builds the rekey binary for TestKubernetes/E2E
}

// TestKubernetes starts one apiserver (about 4 s) and runs every test of
// the sink against it, each in a namespace of its own.
func TestKubernetes(t *testing.T) {
	s := Start(t)
	t.Run("Contract", func(t *testing.T) { sinktest.Run(t, s.fixture) })
	t.Run("FieldsContract", func(t *testing.T) { sinktest.RunFields(t, s.fieldsFixture) })
	t.Run("PutKeepsOtherKeysAndReportsResourceVersions", s.testPutKeepsOtherKeys)
	t.Run("MissingSecretWithoutCreateIfMissing", s.testMissingSecret)
	t.Run("CreateSetsLabelsAndAnnotations", s.testCreateMetadata)
	t.Run("ConflictIsReadAgainAndRetried", s.testConflictRetried)
	t.Run("ConflictGivesUpClearly", s.testConflictGivesUp)
	t.Run("RolloutRestartWaitsForTheRollout", s.testRolloutComplete)
	t.Run("StuckRolloutTimesOut", s.testRolloutStuck)
	t.Run("RBACRoleAllowsExactlyItsSecretAndDeployment", s.testRBAC)
	t.Run("E2E", s.testE2E)
	t.Run("E2EStuckRolloutRollsBack", s.testE2EStuck)
}

var seq atomic.Int64

func newSink(t *testing.T, rc *rest.Config, c kubernetes.Config, opts ...kubernetes.Option) *kubernetes.Sink {
	t.Helper()
	sk, err := kubernetes.New(c, zap.NewNop(), append([]kubernetes.Option{kubernetes.WithRESTConfig(rc)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func (s *Server) secret(t *testing.T, ns, name string) (*corev1.Secret, bool) {
	t.Helper()
	sec, err := s.Client.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return sec, true
}

func (s *Server) seedSecret(t *testing.T, ns, name string, data map[string]string) *corev1.Secret {
	t.Helper()
	s.Namespace(t, ns)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{}}
	for k, v := range data {
		sec.Data[k] = []byte(v)
	}
	out, err := s.Client.CoreV1().Secrets(ns).Create(context.Background(), sec, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const contractNS = "contract"

func (s *Server) fixture(t *testing.T) sinktest.Fixture {
	name := fmt.Sprintf("s-%d", seq.Add(1))
	s.Namespace(t, contractNS)
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: contractNS, Name: name, Key: "api_key", CreateIfMissing: true})
	return sinktest.Fixture{
		Sink: sk,
		Peek: func(t *testing.T) (string, bool) {
			sec, ok := s.secret(t, contractNS, name)
			if !ok {
				return "", false
			}
			if string(sec.Data["other"]) != "keep-me" && sec.Data["other"] != nil {
				t.Errorf("the Secret's other key was changed")
			}
			v, ok := sec.Data["api_key"]
			return string(v), ok
		},
		Seed: func(t *testing.T, v string) {
			s.seedSecret(t, contractNS, name, map[string]string{"api_key": v, "other": "keep-me"})
		},
	}
}

func (s *Server) fieldsFixture(t *testing.T) sinktest.FieldsFixture {
	name := fmt.Sprintf("f-%d", seq.Add(1))
	s.Namespace(t, contractNS)
	places := sinks.Fields{sinktest.FieldID: "AWS_ACCESS_KEY_ID", sinktest.FieldSecret: "AWS_SECRET_ACCESS_KEY"}
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: contractNS, Name: name, Fields: places, CreateIfMissing: true})
	return sinktest.FieldsFixture{
		Sink: sk,
		Peek: func(t *testing.T) map[string]string {
			out := map[string]string{}
			sec, ok := s.secret(t, contractNS, name)
			if !ok {
				return out
			}
			for f, pl := range places {
				if v, ok := sec.Data[pl]; ok {
					out[f] = string(v)
				}
			}
			return out
		},
		Seed: func(t *testing.T, fields map[string]string) {
			data := map[string]string{"other": "keep-me"}
			for f, v := range fields {
				data[places[f]] = v
			}
			s.seedSecret(t, contractNS, name, data)
		},
	}
}

func (s *Server) testPutKeepsOtherKeys(t *testing.T) {
	ctx := context.Background()
	const ns, name = "keep", "crm"
	seeded := s.seedSecret(t, ns, name, map[string]string{"API_KEY": "avk_live_seeded0000000000000000000000000000000", "DB_PASSWORD": "keep-me"})
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: ns, Name: name, Key: "API_KEY"})
	v := sinktest.Value(t, "v1")
	r, err := sk.Put(ctx, v, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := s.secret(t, ns, name)
	if string(sec.Data["DB_PASSWORD"]) != "keep-me" || string(sec.Data["API_KEY"]) != v.Reveal() {
		t.Errorf("after Put the Secret holds keys %v, DB_PASSWORD kept %v", slices.Sorted(maps.Keys(sec.Data)), string(sec.Data["DB_PASSWORD"]) == "keep-me")
	}
	if r.Previous != seeded.ResourceVersion || r.Version != sec.ResourceVersion || r.Created {
		t.Errorf("receipt %+v, want previous %s version %s created false", r, seeded.ResourceVersion, sec.ResourceVersion)
	}
	sinktest.AssertNoLeak(t, fmt.Sprintf("%+v %s", r, sec.Annotations[kubernetes.LastPutAnnotation]), v)
	if !strings.Contains(sec.Annotations[kubernetes.LastPutAnnotation], "rot-1") {
		t.Errorf("annotation %s = %q, want the rotation ID", kubernetes.LastPutAnnotation, sec.Annotations[kubernetes.LastPutAnnotation])
	}
	if sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %s", sec.Type)
	}
}

func (s *Server) testMissingSecret(t *testing.T) {
	ctx := context.Background()
	s.Namespace(t, "missing")
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: "missing", Name: "absent", Key: "API_KEY"})
	v := sinktest.Value(t, "v1")
	_, err := sk.Put(ctx, v, "rot-1")
	var perm *backoff.PermanentError
	if err == nil || !errors.As(err, &perm) || !strings.Contains(err.Error(), "create_if_missing") || !strings.Contains(err.Error(), "missing/absent") {
		t.Fatalf("Put to a missing Secret: %v, want a permanent error naming it and create_if_missing", err)
	}
	if err := sk.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Preflight of a missing Secret: %v", err)
	}
	if _, ok := s.secret(t, "missing", "absent"); ok {
		t.Errorf("the Secret was created without create_if_missing")
	}
}

func (s *Server) testCreateMetadata(t *testing.T) {
	ctx := context.Background()
	s.Namespace(t, "create")
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: "create", Name: "made", Key: "API_KEY", CreateIfMissing: true,
		Labels: map[string]string{"app.kubernetes.io/name": "crm"}, Annotations: map[string]string{"owner": "platform"}})
	if err := sk.Preflight(ctx); err != nil {
		t.Fatalf("Preflight (admin, Secret missing, create_if_missing): %v", err)
	}
	r, err := sk.Put(ctx, sinktest.Value(t, "v1"), "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	sec, ok := s.secret(t, "create", "made")
	if !ok || sec.Labels["app.kubernetes.io/name"] != "crm" || sec.Annotations["owner"] != "platform" || sec.Type != corev1.SecretTypeOpaque {
		t.Fatalf("created Secret: %+v", sec.ObjectMeta)
	}
	if !r.Created || r.Previous != "" || r.Version != sec.ResourceVersion {
		t.Errorf("receipt %+v, want created with version %s", r, sec.ResourceVersion)
	}
}

// interfere is a transport that, before each of the first n PUTs of the
// Secret, lets another writer change the Secret's key "other", so that the
// sink's update carries a stale resourceVersion.
type interfere struct {
	next   http.RoundTripper
	s      *Server
	ns     string
	name   string
	n      int32
	puts   atomic.Int32
	writes atomic.Int32
}

func (in *interfere) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/secrets/"+in.name) && in.puts.Add(1) <= in.n {
		ctx := context.Background()
		sec, err := in.s.Client.CoreV1().Secrets(in.ns).Get(ctx, in.name, metav1.GetOptions{})
		if err == nil {
			n := in.writes.Add(1)
			sec.Data["other"] = fmt.Appendf(nil, "written-by-another-writer-%d", n)
			_, err = in.s.Client.CoreV1().Secrets(in.ns).Update(ctx, sec, metav1.UpdateOptions{})
		}
		if err != nil {
			return nil, err
		}
	}
	return in.next.RoundTrip(req)
}

func (s *Server) interfering(ns, name string, n int32) (*rest.Config, *interfere) {
	in := &interfere{s: s, ns: ns, name: name, n: n}
	rc := rest.CopyConfig(s.Admin)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { in.next = rt; return in }
	return rc, in
}

func (s *Server) testConflictRetried(t *testing.T) {
	const ns, name = "conflict", "crm"
	s.seedSecret(t, ns, name, map[string]string{"API_KEY": "avk_live_old00000000000000000000000000000000000", "other": "first"})
	rc, in := s.interfering(ns, name, 2)
	sk := newSink(t, rc, kubernetes.Config{Namespace: ns, Name: name, Key: "API_KEY"})
	v := sinktest.Value(t, "v1")
	if _, err := sk.Put(context.Background(), v, "rot-1"); err != nil {
		t.Fatalf("Put with two lost races: %v", err)
	}
	sec, _ := s.secret(t, ns, name)
	if string(sec.Data["API_KEY"]) != v.Reveal() {
		t.Errorf("the Secret does not hold the new key")
	}
	if got := string(sec.Data["other"]); got != "written-by-another-writer-2" {
		t.Errorf("the other writer's key is %q, want its last write kept", got)
	}
	if in.puts.Load() != 3 {
		t.Errorf("%d updates sent, want 3 (two conflicts, then the write)", in.puts.Load())
	}
}

func (s *Server) testConflictGivesUp(t *testing.T) {
	const ns, name = "conflict", "busy"
	s.seedSecret(t, ns, name, map[string]string{"API_KEY": "avk_live_old00000000000000000000000000000000000"})
	rc, _ := s.interfering(ns, name, 1000)
	sk := newSink(t, rc, kubernetes.Config{Namespace: ns, Name: name, Key: "API_KEY"})
	v := sinktest.Value(t, "v1")
	_, err := sk.Put(context.Background(), v, "rot-1")
	var perm *backoff.PermanentError
	if !errors.Is(err, kubernetes.ErrConflict) || errors.As(err, &perm) {
		t.Fatalf("Put against a writer that always wins: %v, want a retryable ErrConflict", err)
	}
	sinktest.AssertNoLeak(t, err.Error(), v)
	if sec, _ := s.secret(t, ns, name); string(sec.Data["API_KEY"]) == v.Reveal() {
		t.Errorf("the new key landed although every update conflicted")
	}
}

// restarting waits until the controller rolls the deployment, and returns
// the rotation the restart was for.
func rolled(t *testing.T, c *Controller) string {
	t.Helper()
	select {
	case id := <-c.Rolled:
		return id
	case <-time.After(waitTimeout):
		t.Fatal("the deployment was not restarted")
		return ""
	}
}

func settleAsync(sk *kubernetes.Sink, id string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- sk.Settle(context.Background(), id) }()
	return ch
}

func (s *Server) testRolloutComplete(t *testing.T) {
	const ns = "rollout"
	s.Namespace(t, ns)
	s.seedSecret(t, ns, "crm", map[string]string{"API_KEY": "avk_live_old00000000000000000000000000000000000"})
	s.Deployment(t, ns, "api", 2)
	// The order of events: the test releases the rollout, Settle returns.
	var order atomic.Int64
	var releasedAt, returnedAt atomic.Int64
	release, rolling := make(chan struct{}), make(chan struct{}, 1)
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { releasedAt.Store(order.Add(1)); close(release) }) }
	ctl := s.Control(t, ns, "api", func(d *appsv1.Deployment) appsv1.DeploymentStatus {
		rolling <- struct{}{}
		<-release // the new pods come up only when the test says so
		return Complete(d)
	})
	t.Cleanup(let) // runs before the controller's cleanup, which waits for it
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: ns, Name: "crm", Key: "API_KEY",
		RolloutRestart: &kubernetes.RolloutRestart{Deployments: []string{"api"}}})
	before, _ := s.Client.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
	res := make(chan error, 1)
	go func() {
		err := sk.Settle(context.Background(), "rot-1")
		returnedAt.Store(order.Add(1))
		res <- err
	}()

	// The restart lands on the pod template, as kubectl rollout restart's.
	d := waitDeployment(t, s, ns, "api", func(d *appsv1.Deployment) bool { return d.Generation > before.Generation })
	ann := d.Spec.Template.Annotations
	if ann[kubernetes.RestartedForAnnotation] != "rot-1" || ann[kubernetes.RestartedAtAnnotation] == "" {
		t.Errorf("template annotations %v, want %s and %s", ann, kubernetes.RestartedForAnnotation, kubernetes.RestartedAtAnnotation)
	}
	select {
	case <-rolling: // the controller has the new template and holds its pods back
	case <-time.After(waitTimeout):
		t.Fatal("the controller never saw the restart")
	}
	let()
	if id := rolled(t, ctl); id != "rot-1" {
		t.Errorf("the controller rolled out for %q", id)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Settle after a complete rollout: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Settle did not return after the rollout completed")
	}
	if returnedAt.Load() < releasedAt.Load() {
		t.Errorf("Settle returned before the rollout was complete: it did not wait")
	}
	// A Settle repeated after a crash does not restart again.
	if err := sk.Settle(context.Background(), "rot-1"); err != nil {
		t.Fatalf("repeated Settle: %v", err)
	}
	again, _ := s.Client.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
	if again.Generation != d.Generation {
		t.Errorf("a repeated Settle restarted again: generation %d → %d", d.Generation, again.Generation)
	}
}

// waitDeployment watches deployment ns/name until cond holds (or the
// guard timeout passes) and returns it then.
func waitDeployment(t *testing.T, s *Server, ns, name string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	lw := cache.NewListWatchFromClient(s.Client.AppsV1().RESTClient(), "deployments", ns, fields.OneTermEqualSelector("metadata.name", name))
	ev, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(ev watch.Event) (bool, error) {
		d, ok := ev.Object.(*appsv1.Deployment)
		return ok && cond(d), nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s: %v", ns, name, err)
	}
	return ev.Object.(*appsv1.Deployment)
}

func (s *Server) testRolloutStuck(t *testing.T) {
	const ns = "stuck"
	s.Namespace(t, ns)
	s.Deployment(t, ns, "api", 2)
	ctl := s.Control(t, ns, "api", Stuck)
	clock := clockwork.NewFakeClock()
	sk := newSink(t, s.Admin, kubernetes.Config{Namespace: ns, Name: "crm", Key: "API_KEY",
		RolloutRestart: &kubernetes.RolloutRestart{Deployments: []string{"api"}}}, kubernetes.WithClock(clock))
	res := settleAsync(sk, "rot-1")
	if id := rolled(t, ctl); id != "rot-1" {
		t.Errorf("the controller rolled out for %q", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the rollout timeout's timer
		t.Fatal(err)
	}
	select {
	case err := <-res:
		t.Fatalf("Settle returned %v before its timeout, with the rollout stuck", err)
	default:
	}
	clock.Advance(kubernetes.DefaultRolloutTimeout - time.Second)
	select {
	case err := <-res:
		t.Fatalf("Settle returned %v a second before its timeout", err)
	default:
	}
	clock.Advance(time.Second)
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "rollout of deployment/api did not complete within 5m") {
			t.Fatalf("Settle of a stuck rollout: %v, want the timeout naming the deployment", err)
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			t.Errorf("a rollout timeout is permanent; the engine rolls back either way, but a retry must stay possible")
		}
	case <-time.After(waitTimeout):
		t.Fatal("Settle did not return after its timeout passed")
	}
}

func (s *Server) testRBAC(t *testing.T) {
	ctx := context.Background()
	const ns = "rbac"
	roles, bindings := s.ApplyRBAC(t, roleFile, ns)
	role, sa := roles[0], bindings[0].Subjects[0]
	if len(role.Rules) != 2 || len(role.Rules[0].ResourceNames) != 1 || len(role.Rules[1].ResourceNames) != 1 {
		t.Fatalf("role rules %+v: want one Secret rule and one Deployment rule, each for one name", role.Rules)
	}
	secretName, depName := role.Rules[0].ResourceNames[0], role.Rules[1].ResourceNames[0]
	s.seedSecret(t, ns, secretName, map[string]string{"API_KEY": "avk_live_old00000000000000000000000000000000000", "DB_PASSWORD": "keep-me"})
	s.seedSecret(t, ns, "crm-db", map[string]string{"API_KEY": "avk_live_other0000000000000000000000000000000"})
	s.Deployment(t, ns, depName, 1)
	s.Deployment(t, ns, "crm-worker", 1)
	ctl := s.Control(t, ns, depName, Complete)
	rc := s.ServiceAccount(t, sa.Namespace, sa.Name)

	good := newSink(t, rc, kubernetes.Config{Namespace: ns, Name: secretName, Key: "API_KEY",
		RolloutRestart: &kubernetes.RolloutRestart{Deployments: []string{depName}}})
	if err := good.Preflight(ctx); err != nil {
		t.Fatalf("Preflight with the shipped Role: %v", err)
	}
	v := sinktest.Value(t, "v1")
	if _, err := good.Put(ctx, v, "rot-1"); err != nil {
		t.Fatalf("Put with the shipped Role: %v", err)
	}
	if got, err := good.Get(ctx); err != nil || !got.Equal(v) {
		t.Fatalf("Get with the shipped Role: %v", err)
	}
	if err := good.Settle(ctx, "rot-1"); err != nil {
		t.Fatalf("Settle (restart and watch) with the shipped Role: %v", err)
	}
	if id := rolled(t, ctl); id != "rot-1" {
		t.Errorf("rolled out for %q", id)
	}

	other := newSink(t, rc, kubernetes.Config{Namespace: ns, Name: "crm-db", Key: "API_KEY"})
	if err := other.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "may not get secrets/crm-db") {
		t.Errorf("Preflight of another Secret: %v, want refused", err)
	}
	_, err := other.Put(ctx, v, "rot-1")
	var perm *backoff.PermanentError
	if err == nil || !errors.As(err, &perm) || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("Put to another Secret: %v, want a permanent forbidden error", err)
	}
	if _, err := other.Get(ctx); err == nil || errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get of another Secret: %v, want forbidden", err)
	}
	if sec, _ := s.secret(t, ns, "crm-db"); string(sec.Data["API_KEY"]) == v.Reveal() {
		t.Errorf("the other Secret was written")
	}

	worker := newSink(t, rc, kubernetes.Config{Namespace: ns, Name: secretName, Key: "API_KEY",
		RolloutRestart: &kubernetes.RolloutRestart{Deployments: []string{"crm-worker"}}})
	if err := worker.Preflight(ctx); err == nil || !strings.Contains(err.Error(), "may not get deployments/crm-worker") {
		t.Errorf("Preflight of a restart of another Deployment: %v, want refused", err)
	}
	if err := worker.Settle(ctx, "rot-2"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("Settle of another Deployment: %v, want forbidden", err)
	}
	if d, _ := s.Client.AppsV1().Deployments(ns).Get(ctx, "crm-worker", metav1.GetOptions{}); d.Spec.Template.Annotations[kubernetes.RestartedForAnnotation] != "" {
		t.Errorf("the other Deployment was restarted")
	}
}

// testE2E is issue 16 end to end: the real binary, as the ServiceAccount
// bound to the shipped Role (a token in a kubeconfig), rotates a key held in
// a Secret that a Deployment's pods read at start. The test plays the
// Deployment controller: at each rollout the "pods" read the Secret. The
// app's health check uses the key its pods hold, so monitoring passes only
// if the restart happened before it. Then, with the app unhealthy, the
// rotation rolls back: the Secret is restored, the pods restarted again
// onto the old key, and the new key revoked.
func (s *Server) testE2E(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e"
	w := e2etest.NewWorld(t, nil)
	roles, bindings := s.ApplyRBAC(t, roleFile, ns)
	secretName, depName, sa := roles[0].Rules[0].ResourceNames[0], roles[0].Rules[1].ResourceNames[0], bindings[0].Subjects[0]
	initial := w.InFile()
	s.seedSecret(t, ns, secretName, map[string]string{"API_KEY": initial.Reveal(), "DB_PASSWORD": "keep-me"})
	s.Deployment(t, ns, depName, 2)

	fromSecret := func() (secret.Value, string) {
		sec, ok := s.secret(t, ns, secretName)
		if !ok {
			t.Fatal("the Secret is gone")
		}
		if string(sec.Data["DB_PASSWORD"]) != "keep-me" {
			t.Error("the Secret's DB_PASSWORD was lost")
		}
		v := secret.New(string(sec.Data["API_KEY"]))
		w.Seen.Add(v)
		return v, sec.ResourceVersion
	}
	var mu sync.Mutex
	podKey := initial // what the running pods read at their start
	ctl := s.Control(t, ns, depName, func(d *appsv1.Deployment) appsv1.DeploymentStatus {
		v, _ := fromSecret()
		mu.Lock()
		podKey = v
		mu.Unlock()
		return Complete(d)
	})
	app := e2etest.StartApp(t, func(ctx context.Context) error {
		mu.Lock()
		v := podKey
		mu.Unlock()
		return w.Use(ctx, v)
	})

	rc := s.ServiceAccount(t, sa.Namespace, sa.Name)
	token := secret.New(rc.BearerToken)
	kc := Kubeconfig(t, rc, "test-cluster")
	w.WriteConfig(e2etest.Config{HealthURL: app.HealthURL(), Sinks: []string{fmt.Sprintf(`type: kubernetes-secret
namespace: %s
name: %s
key: API_KEY
kubeconfig: %s
context: test-cluster
rollout_restart: {deployments: [%s], timeout: 1m}`, ns, secretName, kc, depName)}})

	rotate := func() (int, string) {
		t.Helper()
		code, out, errOut := e2etest.Run(t, w.Rekey("rotate", "prod"))
		fromSecret()
		w.InFile()
		text := out + "\n" + errOut
		for _, v := range w.Seen.Leaks(text) {
			t.Fatalf("I4: key value %s appears in rekey's output", v.Fingerprint())
		}
		if strings.Contains(text, token.Reveal()) {
			t.Fatal("the ServiceAccount token appears in rekey's output")
		}
		return code, text
	}

	if code, out, errOut := e2etest.Run(t, w.Rekey("plan")); code != 0 {
		t.Fatalf("plan (preflight with the shipped Role): exit %d\n%s%s", code, out, errOut)
	}

	// 1. A healthy rotation: the Secret is written, the pods restarted onto
	// the new key, monitored, and the old key revoked.
	code, out := rotate()
	if code != 0 {
		t.Fatalf("rotate: exit %d\n%s", code, out)
	}
	hist := w.History()
	rotated, _ := fromSecret()
	if rotated.Equal(initial) || !w.InFile().Equal(rotated) {
		t.Fatalf("the Secret and the file do not both hold a new key")
	}
	if id := rolled(t, ctl); id != hist[0].ID {
		t.Errorf("the restart was for %q, want rotation %s", id, hist[0].ID)
	}
	mu.Lock()
	if !podKey.Equal(rotated) {
		t.Errorf("the pods do not hold the new key after the rotation")
	}
	mu.Unlock()
	if app.Served.Load() == 0 {
		t.Errorf("the app never passed a health check: monitoring proved nothing")
	}
	if k := w.KeyByPrefix(t, initial); k.Status != "revoked" {
		t.Errorf("initial key %s is %s, want revoked", k.ID, k.Status)
	}
	e2etest.OnlyActive(t, w.Sim.Sim, rotated)
	w.Invariants(hist, 2*time.Second)

	// 2. The app turns unhealthy during monitoring: rekey rolls back.
	app.SetHealthy(func() bool { return false })
	code, out = rotate()
	if code != 1 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("rotate with failing health: exit %d, want 1 and rolled_back\n%s", code, out)
	}
	app.SetHealthy(nil)
	hist = w.History()
	if hist[0].Phase != "rolled_back" {
		t.Fatalf("last rotation is %s", hist[0].Phase)
	}
	if a, b := rolled(t, ctl), rolled(t, ctl); a != hist[0].ID || b != hist[0].ID+".rollback" {
		t.Errorf("restarts for %q then %q, want %s then %s.rollback", a, b, hist[0].ID, hist[0].ID)
	}
	back, _ := fromSecret()
	if !back.Equal(rotated) {
		t.Errorf("the Secret does not hold the previous key after the rollback")
	}
	mu.Lock()
	if !podKey.Equal(rotated) {
		t.Errorf("the pods were not restarted onto the previous key")
	}
	mu.Unlock()
	if err := w.Use(ctx, rotated); err != nil {
		t.Errorf("the previous key no longer works: %v", err)
	}
	e2etest.OnlyActive(t, w.Sim.Sim, rotated)
	w.Invariants(hist, 2*time.Second)
}

// testE2EStuck: the new pods never become available, so the rollout after
// the write does not complete within rollout_restart.timeout. That is a
// deploy failure: rekey restores the Secret, restarts the Deployment again
// (that rollout completes, onto the old key), and revokes the new key. No
// health check runs: monitoring never starts.
func (s *Server) testE2EStuck(t *testing.T) {
	const ns = "e2e-stuck"
	w := e2etest.NewWorld(t, nil)
	roles, bindings := s.ApplyRBAC(t, roleFile, ns)
	secretName, depName, sa := roles[0].Rules[0].ResourceNames[0], roles[0].Rules[1].ResourceNames[0], bindings[0].Subjects[0]
	initial := w.InFile()
	s.seedSecret(t, ns, secretName, map[string]string{"API_KEY": initial.Reveal()})
	s.Deployment(t, ns, depName, 2)
	var mu sync.Mutex
	podKey := initial
	ctl := s.Control(t, ns, depName, func(d *appsv1.Deployment) appsv1.DeploymentStatus {
		if !strings.HasSuffix(d.Spec.Template.Annotations[kubernetes.RestartedForAnnotation], ".rollback") {
			return Stuck(d) // the new pods crash-loop: the old ones keep running
		}
		sec, _ := s.secret(t, ns, secretName)
		v := secret.New(string(sec.Data["API_KEY"]))
		w.Seen.Add(v)
		mu.Lock()
		podKey = v
		mu.Unlock()
		return Complete(d)
	})
	var checks atomic.Int64
	app := e2etest.StartApp(t, func(ctx context.Context) error {
		checks.Add(1)
		mu.Lock()
		v := podKey
		mu.Unlock()
		return w.Use(ctx, v)
	})
	rc := s.ServiceAccount(t, sa.Namespace, sa.Name)
	w.WriteConfig(e2etest.Config{HealthURL: app.HealthURL(), Sinks: []string{fmt.Sprintf(`type: kubernetes-secret
namespace: %s
name: %s
key: API_KEY
kubeconfig: %s
rollout_restart: {deployments: [%s], timeout: 1s}`, ns, secretName, Kubeconfig(t, rc, "test-cluster"), depName)}})

	code, out, errOut := e2etest.Run(t, w.Rekey("rotate", "prod"))
	text := out + "\n" + errOut
	for _, v := range w.Seen.Leaks(text) {
		t.Fatalf("I4: key value %s appears in rekey's output", v.Fingerprint())
	}
	if code != 1 || !strings.Contains(text, "rolled_back") || !strings.Contains(text, "did not complete within 1s") {
		t.Fatalf("rotate with a stuck rollout: exit %d, want 1, rolled_back and the rollout timeout\n%s", code, text)
	}
	hist := w.History()
	if a, b := rolled(t, ctl), rolled(t, ctl); a != hist[0].ID || b != hist[0].ID+".rollback" {
		t.Errorf("restarts for %q then %q, want %s then %s.rollback", a, b, hist[0].ID, hist[0].ID)
	}
	sec, _ := s.secret(t, ns, secretName)
	if !secret.New(string(sec.Data["API_KEY"])).Equal(initial) {
		t.Errorf("the Secret does not hold the initial key after the rollback")
	}
	mu.Lock()
	if !podKey.Equal(initial) {
		t.Errorf("the pods were not restarted onto the initial key")
	}
	mu.Unlock()
	if n := checks.Load(); n != 0 {
		t.Errorf("%d health checks ran: monitoring must not start after a failed rollout", n)
	}
	for _, tr := range hist[0].Transitions {
		if tr.Phase == "deployed" || tr.Phase == "monitoring" {
			t.Errorf("the rotation reached %s", tr.Phase)
		}
	}
	e2etest.OnlyActive(t, w.Sim.Sim, initial)
}

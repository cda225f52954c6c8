// Package kubetest runs rekey's kubernetes-secret sink against a real
// kube-apiserver, started in-process from k8s.io/kubernetes with RBAC on
// and Debian's etcd-server (internal/etcdtest) as its storage. It is a
// module of its own because the apiserver's dependency tree is large: CI
// compiles its one test package once (make test-kube).
//
// No controllers run in that apiserver: a test that needs a rollout to
// complete plays the Deployment controller itself (Controller), through
// the status subresource.
package kubetest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"sigs.k8s.io/yaml"

	"github.com/rekeyhq/rekey/internal/etcdtest"
)

// Server is a running kube-apiserver.
type Server struct {
	// Admin is a client config with every right (the apiserver's loopback
	// identity, in system:masters).
	Admin *rest.Config
	// Client is a clientset for Admin.
	Client kubernetes.Interface
}

// Start starts an etcd member and a kube-apiserver with
// --authorization-mode=RBAC on it, and stops both when t ends. A missing
// etcd binary skips t, or fails it when REKEY_REQUIRE_ETCD is set.
func Start(t *testing.T) *Server {
	t.Helper()
	etcd := etcdtest.Start(t)
	storage := storagebackend.NewDefaultConfig("/registry", nil)
	storage.Transport.ServerList = etcd.Endpoints()
	ts := apiservertesting.StartTestServerOrDie(t, &apiservertesting.TestServerInstanceOptions{},
		[]string{"--authorization-mode=RBAC"}, storage)
	t.Cleanup(ts.TearDownFn)
	admin := rest.CopyConfig(ts.ClientConfig)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Admin: admin, Client: cs}
}

// Namespace creates namespace name unless it exists.
func (s *Server) Namespace(t testing.TB, name string) {
	t.Helper()
	_, err := s.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !isAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// ServiceAccount creates the ServiceAccount ns/name (and ns) unless they
// exist, and returns a client config that authenticates as it with a
// bound token from the TokenRequest API, as a pod's projected token does.
func (s *Server) ServiceAccount(t testing.TB, ns, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	s.Namespace(t, ns)
	_, err := s.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !isAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
	exp := int64(3600)
	tr, err := s.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	rc := rest.AnonymousClientConfig(s.Admin)
	rc.BearerToken = tr.Status.Token
	return rc
}

// Kubeconfig writes a kubeconfig file for rc, with one context named
// context, and returns its path.
func Kubeconfig(t testing.TB, rc *rest.Config, context string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData, TLSServerName: rc.ServerName}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: rc.BearerToken}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = context
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ApplyRBAC creates the Roles and RoleBindings of a manifest file (such
// as deploy/kubernetes/components/secret-sink/role.yaml) as they are
// written, but in namespace ns, and returns them.
func (s *Server) ApplyRBAC(t testing.TB, path, ns string) ([]*rbacv1.Role, []*rbacv1.RoleBinding) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var roles []*rbacv1.Role
	var bindings []*rbacv1.RoleBinding
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if err != nil {
			break
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch tm.Kind {
		case "Role":
			var r rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &r); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			r.Namespace = ns
			s.Namespace(t, r.Namespace)
			if _, err := s.Client.RbacV1().Roles(r.Namespace).Create(ctx, &r, metav1.CreateOptions{}); err != nil {
				t.Fatalf("%s: create role: %v", path, err)
			}
			roles = append(roles, &r)
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := yaml.UnmarshalStrict(doc, &b); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			b.Namespace = ns
			s.Namespace(t, b.Namespace)
			if _, err := s.Client.RbacV1().RoleBindings(b.Namespace).Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatalf("%s: create role binding: %v", path, err)
			}
			bindings = append(bindings, &b)
		case "":
		default:
			t.Fatalf("%s: unexpected %s", path, tm.Kind)
		}
	}
	if len(roles) == 0 || len(bindings) == 0 {
		t.Fatalf("%s: want a Role and a RoleBinding, got %d and %d", path, len(roles), len(bindings))
	}
	return roles, bindings
}

// Deployment creates a Deployment ns/name with replicas pods that mount
// nothing and run nothing (no kubelet runs): only its template and status
// matter to a rollout.
func (s *Server) Deployment(t testing.TB, ns, name string, replicas int32) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d, err := s.Client.AppsV1().Deployments(ns).Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// waitTimeout bounds a test's wait for something the apiserver or the
// code under test does promptly; it is a guard against a hang, never a
// window the test relies on.
const waitTimeout = 30 * time.Second

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

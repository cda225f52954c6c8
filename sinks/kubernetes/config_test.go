package kubernetes_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks/kubernetes"
)

func decode(t *testing.T, file string) (kubernetes.Config, error) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var spec config.SinkSpec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if spec.Type != kubernetes.Type {
		t.Fatalf("%s: type %q", file, spec.Type)
	}
	var c kubernetes.Config
	return c, spec.Decode(&c)
}

func TestConfigGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good-*.yaml")
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := decode(t, f)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if c.Namespace != "crm" || c.Name == "" {
				t.Errorf("namespace/name not decoded: %+v", c)
			}
		})
	}
	c, _ := decode(t, "testdata/good-full.yaml")
	r := c.RolloutRestart
	if !c.CreateIfMissing || c.Labels["app.kubernetes.io/name"] != "crm" || c.Annotations["owner"] != "platform" ||
		c.Kubeconfig != "/etc/rekey/kubeconfig" || c.Context != "prod" || r == nil ||
		!slices.Equal(r.Deployments, []string{"crm-api", "crm-worker"}) || !slices.Equal(r.StatefulSets, []string{"crm-cache"}) ||
		!slices.Equal(r.DaemonSets, []string{"crm-agent"}) || r.Timeout.Std() != 10*time.Minute {
		t.Errorf("good-full decoded %+v (rollout %+v)", c, r)
	}
	c, _ = decode(t, "testdata/good-fields.yaml")
	if !c.InCluster || !slices.Equal(c.MappedFields(), []string{"id", "secret"}) {
		t.Errorf("good-fields decoded %+v", c)
	}
}

func TestConfigBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad-*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, _ := os.ReadFile(f)
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("fixture has no # want: line")
			}
			_, err := decode(t, f)
			if err == nil {
				t.Fatalf("no error, want %q", wants)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestNewRefusesABadConfig(t *testing.T) {
	_, err := kubernetes.New(kubernetes.Config{Namespace: "crm"}, nil)
	if err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("New of a config without name: %v", err)
	}
}

func TestNewReadsTheKubeconfigAndContext(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: a
  context: {cluster: a, user: u}
- name: b
  context: {cluster: b, user: u}
current-context: a
`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := kubernetes.Config{Namespace: "crm", Name: "s", Key: "K", Kubeconfig: kc}
	if _, err := kubernetes.New(base, nil); err != nil {
		t.Fatalf("New with kubeconfig: %v", err)
	}
	missing := base
	missing.Context = "nope"
	if _, err := kubernetes.New(missing, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("New with a context the kubeconfig lacks: err %v, want one naming it", err)
	}
	gone := base
	gone.Kubeconfig = filepath.Join(dir, "absent")
	if _, err := kubernetes.New(gone, nil); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("New with a missing kubeconfig: err %v, want one naming the file", err)
	}
	if s, err := kubernetes.New(base, nil); err == nil && s.Name() != "kubernetes-secret:crm/s#K" {
		t.Errorf("Name() = %q", s.Name())
	}
}

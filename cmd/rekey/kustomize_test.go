package main

// Tests of the kustomize layout under deploy/kubernetes: base/ (every
// object but the Secret), components/cron (the CronJob instead of the
// Deployment), overlays/example (a pinned image and the Secret generated
// from a secrets.env the user writes) and overlays/ha-etcd (two replicas on
// an etcd journal).

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks/kubernetes"
)

var k8sDir = filepath.Join(repoRoot, "deploy", "kubernetes")

// kustomization is the part of a kustomization.yaml (or Component) that
// rekey's files use; decoding is strict, so a misspelt field fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Components []string `json:"components"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Patches []struct {
		Patch string `json:"patch"`
		Path  string `json:"path"`
	} `json:"patches"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
	SecretGenerator []struct {
		Name      string   `json:"name"`
		Namespace string   `json:"namespace"`
		Envs      []string `json:"envs"`
	} `json:"secretGenerator"`
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// readEnvFile reads a kustomize env file: KEY=value lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Fatalf("%s: %q is not KEY=value", path, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

// kustomizeSources returns the manifests as written: the base's resources,
// the cron component's, and a file holding the Secret the example overlay
// would generate from secrets.env.example.
func kustomizeSources(t *testing.T) []string {
	t.Helper()
	var paths []string
	base := filepath.Join(k8sDir, "base")
	for _, r := range readKustomization(t, base).Resources {
		paths = append(paths, filepath.Join(base, r))
	}
	cron := filepath.Join(k8sDir, "components", "cron")
	for _, r := range readKustomization(t, cron).Resources {
		paths = append(paths, filepath.Join(cron, r))
	}
	overlay := filepath.Join(k8sDir, "overlays", "example")
	gen := readKustomization(t, overlay).SecretGenerator
	if len(gen) != 1 || len(gen[0].Envs) != 1 {
		t.Fatalf("overlays/example: want one secretGenerator with one env file, got %+v", gen)
	}
	sec := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: gen[0].Name, Namespace: gen[0].Namespace},
		StringData: readEnvFile(t, filepath.Join(overlay, gen[0].Envs[0]+".example")),
	}
	b, err := yaml.Marshal(sec)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "generated-secret.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return append(paths, p)
}

// secret returns the data of the one Secret, rekey-secrets, or the same
// with kustomize's hash suffix.
func (m *manifests) secret(t *testing.T) map[string]string {
	t.Helper()
	var found []*corev1.Secret
	for name, s := range m.secrets {
		if name == "rekey-secrets" || strings.HasPrefix(name, "rekey-secrets-") {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one Secret rekey-secrets, got %d", len(found))
	}
	data := map[string]string{}
	for k, v := range found[0].Data {
		data[k] = string(v)
	}
	for k, v := range found[0].StringData {
		data[k] = v
	}
	return data
}

func TestKustomizeLayout(t *testing.T) {
	// Every file in base/ is a resource of its kustomization, and every
	// resource exists: none is forgotten or stale.
	base := filepath.Join(k8sDir, "base")
	bk := readKustomization(t, base)
	if bk.Kind != "Kustomization" || bk.Namespace != "rekey" {
		t.Errorf("base: kind %q namespace %q, want Kustomization in rekey", bk.Kind, bk.Namespace)
	}
	files, err := filepath.Glob(filepath.Join(base, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			names = append(names, filepath.Base(f))
		}
	}
	listed := slices.Sorted(slices.Values(bk.Resources))
	if !slices.Equal(names, listed) {
		t.Errorf("base/kustomization.yaml lists %v; the directory holds %v", listed, names)
	}

	// The other kustomizations name only what exists.
	for _, dir := range []string{"components/cron", "components/secret-sink", "overlays/example", "overlays/ha-etcd"} {
		d := filepath.Join(k8sDir, dir)
		k := readKustomization(t, d)
		names := append(slices.Clone(k.Resources), k.Components...)
		for _, p := range k.Patches {
			if p.Path != "" {
				names = append(names, p.Path)
			}
		}
		for _, r := range names {
			if _, err := os.Stat(filepath.Join(d, r)); err != nil {
				t.Errorf("%s/kustomization.yaml names %s: %v", dir, r, err)
			}
		}
	}
	if k := readKustomization(t, filepath.Join(k8sDir, "components", "cron")); k.Kind != "Component" || len(k.Patches) != 2 {
		t.Errorf("components/cron: kind %q with %d patches, want a Component deleting the Deployment and the Service", k.Kind, len(k.Patches))
	}

	// No Secret is in a directory kubectl apply -k applies: the overlay
	// generates it from secrets.env, which git ignores.
	err = filepath.WalkDir(k8sDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, doc := range splitYAML(data) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if tm.Kind == "Secret" {
				t.Errorf("%s holds a Secret; generate it in an overlay instead", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(k8sDir, "overlays", "example")
	ok := readKustomization(t, overlay)
	if len(ok.SecretGenerator) != 1 || ok.SecretGenerator[0].Name != "rekey-secrets" || !slices.Equal(ok.SecretGenerator[0].Envs, []string{"secrets.env"}) {
		t.Fatalf("overlays/example: want secretGenerator rekey-secrets from secrets.env, got %+v", ok.SecretGenerator)
	}
	gitignore, err := os.ReadFile(filepath.Join(repoRoot, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(gitignore, []byte("\ndeploy/kubernetes/overlays/*/secrets.env\n")) {
		t.Error(".gitignore does not keep the overlays' secrets.env out of git")
	}
	for k, v := range readEnvFile(t, filepath.Join(overlay, "secrets.env.example")) {
		if !strings.Contains(v, "REPLACE") {
			t.Errorf("secrets.env.example: %s does not look like a placeholder", k)
		}
	}

	// The image is pinned: a version tag or a digest, never latest.
	if len(ok.Images) != 1 || ok.Images[0].Name != "ghcr.io/rekeyhq/rekey" {
		t.Fatalf("overlays/example: want one images entry for ghcr.io/rekeyhq/rekey, got %+v", ok.Images)
	}
	if img := ok.Images[0]; img.Digest == "" && (img.NewTag == "" || img.NewTag == "latest") {
		t.Errorf("overlays/example pins image tag %q: want a version or a digest", img.NewTag)
	}
	m := loadManifests(t, kustomizeSources(t)...)
	for what, spec := range map[string]corev1.PodSpec{"Deployment": m.deployments["rekey"].Spec.Template.Spec, "CronJob": m.cronJobs["rekey-run"].Spec.JobTemplate.Spec.Template.Spec} {
		if img := spec.Containers[0].Image; !strings.HasPrefix(img, "ghcr.io/rekeyhq/rekey:") || strings.HasSuffix(img, ":latest") {
			t.Errorf("%s image %q: want ghcr.io/rekeyhq/rekey with a pinned tag", what, img)
		}
	}
}

// TestKustomizeBuild builds the example overlay, and the same with the cron
// component as its comment says to add it, with kubectl's kustomize, and
// checks the result as TestKubernetesManifests checks the files.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; TestKustomizeLayout checked the files only")
	}
	// A copy, so that the secrets.env written here is never in the tree.
	tmp := t.TempDir()
	if err := os.CopyFS(tmp, os.DirFS(k8sDir)); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(tmp, "overlays", "example")
	example := readEnvFile(t, filepath.Join(overlay, "secrets.env.example"))
	var env strings.Builder
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range example {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&env, "%s=test-value-of-%s\n", k, k)
	}
	if err := os.WriteFile(filepath.Join(overlay, "secrets.env"), []byte(env.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tag := readKustomization(t, overlay).Images[0].NewTag

	build := func(t *testing.T, dir string) *manifests {
		t.Helper()
		out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
		}
		p := filepath.Join(t.TempDir(), "built.yaml")
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		m := loadManifests(t, p)
		for name := range m.secrets {
			if name == "rekey-secrets" {
				t.Error("the generated Secret has no content hash in its name: a changed secret would not roll the pods")
			}
		}
		return m
	}

	t.Run("daemon", func(t *testing.T) {
		m := build(t, overlay)
		checkManifests(t, m, "test-value-of-", true, false)
		if img := m.deployments["rekey"].Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/rekeyhq/rekey:"+tag {
			t.Errorf("built image %q, want the overlay's tag %s", img, tag)
		}
	})
	t.Run("ha-etcd", func(t *testing.T) {
		ha := filepath.Join(tmp, "overlays", "ha-etcd")
		var env strings.Builder
		for k := range readEnvFile(t, filepath.Join(ha, "secrets.env.example")) {
			fmt.Fprintf(&env, "%s=test-value-of-%s\n", k, k)
		}
		if err := os.WriteFile(filepath.Join(ha, "secrets.env"), []byte(env.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		m := build(t, ha)
		checkHAManifests(t, m)
	})
	t.Run("cron", func(t *testing.T) {
		k, err := os.ReadFile(filepath.Join(overlay, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		const commented = "# components:\n#   - ../../components/cron\n"
		if !bytes.Contains(k, []byte(commented)) {
			t.Fatalf("overlays/example/kustomization.yaml no longer shows how to add the cron component (%q)", commented)
		}
		k = bytes.Replace(k, []byte(commented), []byte("components:\n  - ../../components/cron\n"), 1)
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), k, 0o644); err != nil {
			t.Fatal(err)
		}
		m := build(t, overlay)
		checkManifests(t, m, "test-value-of-", false, true)
		if img := m.cronJobs["rekey-run"].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/rekeyhq/rekey:"+tag {
			t.Errorf("built image %q, want the overlay's tag %s", img, tag)
		}
	})
}

// checkHAManifests checks the built ha-etcd overlay: two replicas rolling
// on an etcd journal, no volume claim tying them to a node, every secret
// the Deployment names in the Secret, and a config that validates.
func checkHAManifests(t *testing.T, m *manifests) {
	t.Helper()
	dep := m.deployments["rekey"]
	if dep == nil || dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Fatalf("ha-etcd: want Deployment rekey with replicas: 2, got %+v", dep)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("ha-etcd: strategy %q, want RollingUpdate (a new pod stands by)", dep.Spec.Strategy.Type)
	}
	if len(m.pvcs) != 0 {
		t.Errorf("ha-etcd: %d PersistentVolumeClaims, want none (each pod's audit log is local)", len(m.pvcs))
	}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("ha-etcd: volume %s is a claim", v.Name)
		}
		if v.Name == "state" && v.EmptyDir == nil {
			t.Error("ha-etcd: volume state is no emptyDir")
		}
	}
	sec := m.secret(t)
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
			if _, ok := sec[r.SecretKeyRef.Key]; !ok {
				t.Errorf("ha-etcd: env %s names secret key %s, which the Secret lacks", e.Name, r.SecretKeyRef.Key)
			}
		}
	}
	cm := m.configMaps["rekey-config"]
	if cm == nil {
		t.Fatal("ha-etcd: no ConfigMap rekey-config")
	}
	cfgPath := filepath.Join(t.TempDir(), "rekey.yaml")
	if err := os.WriteFile(cfgPath, []byte(cm.Data["rekey.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	validateFile(t, cfgPath)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Backend != config.BackendEtcd || cfg.State.Etcd == nil || len(cfg.State.Etcd.Endpoints) < 3 {
		t.Errorf("ha-etcd: state %+v, want backend etcd on a three-member cluster", cfg.State)
	}
}

// TestSecretSinkRole checks components/secret-sink: a Component whose
// role.yaml grants rekey's ServiceAccount exactly what the kubernetes-secret
// sink uses, on named objects only, and names what
// examples/kubernetes-secret.yaml writes and restarts. (The kubetest module
// proves the same file against a real apiserver.)
func TestSecretSinkRole(t *testing.T) {
	dir := filepath.Join(k8sDir, "components", "secret-sink")
	if k := readKustomization(t, dir); k.Kind != "Component" || !slices.Equal(k.Resources, []string{"role.yaml"}) {
		t.Fatalf("components/secret-sink: kind %q resources %v, want a Component of role.yaml", k.Kind, k.Resources)
	}
	data, err := os.ReadFile(filepath.Join(dir, "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var roles []rbacv1.Role
	var bindings []rbacv1.RoleBinding
	for _, doc := range splitYAML(data) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		if tm.APIVersion != "rbac.authorization.k8s.io/v1" {
			t.Errorf("%s has apiVersion %q", tm.Kind, tm.APIVersion)
		}
		switch tm.Kind {
		case "Role":
			var r rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &r); err != nil {
				t.Fatal(err)
			}
			roles = append(roles, r)
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := yaml.UnmarshalStrict(doc, &b); err != nil {
				t.Fatal(err)
			}
			bindings = append(bindings, b)
		default:
			t.Errorf("role.yaml holds a %s", tm.Kind)
		}
	}
	if len(roles) != 1 || len(bindings) != 1 {
		t.Fatalf("role.yaml: %d Roles and %d RoleBindings, want one of each", len(roles), len(bindings))
	}
	role, b := roles[0], bindings[0]
	type rule struct{ group, resource, verbs string }
	want := map[rule]bool{{"", "secrets", "get,update,patch"}: true, {"apps", "deployments", "get,list,watch,patch"}: true}
	names := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.APIGroups) != 1 || len(r.Resources) != 1 || len(r.ResourceNames) == 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %+v: want one group, one resource and named objects only", r)
			continue
		}
		k := rule{r.APIGroups[0], r.Resources[0], strings.Join(r.Verbs, ",")}
		if !want[k] {
			t.Errorf("rule %+v grants more or other than the sink uses", r)
		}
		delete(want, k)
		names[r.Resources[0]] = r.ResourceNames
	}
	for k := range want {
		t.Errorf("no rule grants %s on %s", k.verbs, k.resource)
	}
	sa := loadManifests(t, filepath.Join(k8sDir, "base", "serviceaccount.yaml")).serviceAccounts
	if b.Namespace != role.Namespace || b.RoleRef.Kind != "Role" || b.RoleRef.Name != role.Name ||
		len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || sa[b.Subjects[0].Name] == nil || b.Subjects[0].Namespace != "rekey" {
		t.Errorf("RoleBinding %+v: want the Role %s/%s bound to ServiceAccount rekey/rekey", b, role.Namespace, role.Name)
	}
	if role.Namespace == "" || role.Namespace == "rekey" {
		t.Errorf("the Role is in namespace %q: it belongs in the app's namespace, where its Secret is", role.Namespace)
	}

	cfg, err := config.Load(filepath.Join(repoRoot, "examples", "kubernetes-secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cfg.Credentials {
		for i := range c.Sinks {
			if c.Sinks[i].Type != kubernetes.Type {
				continue
			}
			var kc kubernetes.Config
			if err := c.Sinks[i].Decode(&kc); err != nil {
				t.Fatal(err)
			}
			found = true
			if kc.Namespace != role.Namespace || !slices.Contains(names["secrets"], kc.Name) {
				t.Errorf("the example writes Secret %s/%s, which the Role does not name", kc.Namespace, kc.Name)
			}
			if kc.RolloutRestart != nil {
				for _, d := range kc.RolloutRestart.Deployments {
					if !slices.Contains(names["deployments"], d) {
						t.Errorf("the example restarts Deployment %s, which the Role does not name", d)
					}
				}
			}
		}
	}
	if !found {
		t.Error("examples/kubernetes-secret.yaml has no kubernetes-secret sink")
	}
}

package main

// Tests that keep the shipped examples and deployment files working: every
// example config validates, the Kubernetes manifests decode strictly into
// the real API types and fit together, the systemd units pass
// systemd-analyze verify, and the deploy hook script stages, deploys and
// finishes in that order (and does not finish after a failed deploy).

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/ghactions"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// validateFile runs `rekey -c path validate --offline` in-process and fails
// the test unless it exits 0: the file itself, not the environment it
// expects (its env: variables and secret files are the deployment's).
func validateFile(t *testing.T, path string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(context.Background(), []string{"-c", path, "validate", "--offline"}, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	if code != exitOK {
		t.Fatalf("rekey -c %s validate --offline: exit %d, want 0\nstdout: %s\nstderr: %s", path, code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), ": valid (") {
		t.Fatalf("rekey -c %s validate: stdout %q does not report the file valid", path, out.String())
	}
}

func TestExamplesValidate(t *testing.T) {
	dir := filepath.Join(repoRoot, "examples")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for _, e := range entries {
		if e.IsDir() || e.Name() == "README.md" {
			continue
		}
		configs = append(configs, e.Name())
		t.Run(e.Name(), func(t *testing.T) { validateFile(t, filepath.Join(dir, e.Name())) })
	}
	// One per sink (file dotenv and json, AWS, Vault, GitHub, Kubernetes),
	// per mode (daemon, cron, deploy hook, drain), per http preset and the
	// etcd journal: losing one is a regression.
	want := []string{"aws-iam.yaml", "aws-secretsmanager.yaml", "cron.yaml", "daemon.yaml", "deploy-hook.yaml", "drain.yaml", "etcd.yaml", "exec.yaml",
		"file-dotenv.yaml", "file-json.yaml", "github-actions.yaml", "kubernetes-secret.yaml", "vault-kv.yaml",
		"http-openai-admin.yaml", "http-cloudflare.yaml", "http-datadog.yaml", "http-sendgrid.yaml", "http-twilio.yaml"}
	for _, w := range want {
		if !slices.Contains(configs, w) {
			t.Errorf("examples/%s is missing", w)
		}
	}
}

// TestExamplesCoverEverySink checks that the examples together show every
// sink type, the file formats, Vault KV v2 and every GitHub secret scope.
func TestExamplesCoverEverySink(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		cfg, err := config.Load(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, c := range cfg.Credentials {
			if c.Drain != nil {
				seen["drain"] = true
			}
			if c.Window != "" && c.Timezone != "" {
				seen["window with timezone"] = true
			}
			for i := range c.Sinks {
				spec := &c.Sinks[i]
				seen[spec.Type] = true
				switch spec.Type {
				case "file":
					var fc file.Config
					if err := spec.Decode(&fc); err != nil {
						t.Fatal(err)
					}
					seen["file "+cmp.Or(fc.Format, file.FormatDotenv)] = true
				case "vault-kv":
					var vc vaultkv.Config
					if err := spec.Decode(&vc); err != nil {
						t.Fatal(err)
					}
					if vc.KVVersion == 0 || vc.KVVersion == 2 {
						seen["vault-kv kv2"] = true
					}
				case "github-actions":
					var gc ghactions.Config
					if err := spec.Decode(&gc); err != nil {
						t.Fatal(err)
					}
					switch {
					case gc.Organization != "":
						seen["github-actions organization"] = true
					case gc.Environment != "":
						seen["github-actions environment"] = true
					default:
						seen["github-actions repository"] = true
					}
				}
			}
		}
	}
	for _, want := range []string{"file dotenv", "file json", "aws-secretsmanager", "vault-kv kv2", "kubernetes-secret",
		"github-actions repository", "github-actions environment", "github-actions organization",
		"drain", "window with timezone"} {
		if !seen[want] {
			t.Errorf("no example shows %s", want)
		}
	}
}

// TestExamplesIndexed keeps examples/README.md in step with the directory.
func TestExamplesIndexed(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, p := range paths {
		if !bytes.Contains(readme, []byte("("+filepath.Base(p)+")")) {
			t.Errorf("examples/README.md does not link %s", filepath.Base(p))
		}
	}
	for _, m := range regexp.MustCompile(`\]\(([^)/]+\.yaml)\)`).FindAllSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(repoRoot, "examples", string(m[1]))); err != nil {
			t.Errorf("examples/README.md links %s, which does not exist", m[1])
		}
	}
}

// manifests is every object of a set of Kubernetes manifests (the files of
// deploy/kubernetes, or what kustomize builds from them), decoded strictly
// into its API type, by kind and name.
type manifests struct {
	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	pvcs            map[string]*corev1.PersistentVolumeClaim
	services        map[string]*corev1.Service
	deployments     map[string]*appsv1.Deployment
	cronJobs        map[string]*batchv1.CronJob
}

// newObject returns an empty object of the API type for kind, and the
// apiVersion that kind must have here.
func newObject(kind string) (metav1.Object, string) {
	switch kind {
	case "Namespace":
		return &corev1.Namespace{}, "v1"
	case "ServiceAccount":
		return &corev1.ServiceAccount{}, "v1"
	case "ConfigMap":
		return &corev1.ConfigMap{}, "v1"
	case "Secret":
		return &corev1.Secret{}, "v1"
	case "PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, "v1"
	case "Service":
		return &corev1.Service{}, "v1"
	case "Deployment":
		return &appsv1.Deployment{}, "apps/v1"
	case "CronJob":
		return &batchv1.CronJob{}, "batch/v1"
	}
	return nil, ""
}

// loadManifests decodes every YAML document in paths strictly into its API
// type. An unknown kind or field, a wrong apiVersion, a missing name or a
// namespace other than rekey fails the test.
func loadManifests(t *testing.T, paths ...string) *manifests {
	t.Helper()
	m := &manifests{
		namespaces: map[string]*corev1.Namespace{}, serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, cronJobs: map[string]*batchv1.CronJob{},
	}
	if len(paths) == 0 {
		t.Fatal("no manifests")
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(data) {
			where := fmt.Sprintf("%s (document %d)", p, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			obj, apiVersion := newObject(tm.Kind)
			switch {
			case obj == nil:
				t.Fatalf("%s: unexpected kind %q", where, tm.Kind)
			case tm.APIVersion != apiVersion:
				t.Fatalf("%s: %s has apiVersion %q, want %q", where, tm.Kind, tm.APIVersion, apiVersion)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %s: %v", where, tm.Kind, err)
			}
			if obj.GetName() == "" {
				t.Fatalf("%s: %s has no metadata.name", where, tm.Kind)
			}
			if tm.Kind != "Namespace" && obj.GetNamespace() != "rekey" {
				t.Errorf("%s: %s %s is in namespace %q, want rekey", where, tm.Kind, obj.GetName(), obj.GetNamespace())
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespaces[o.Name] = o
			case *corev1.ServiceAccount:
				m.serviceAccounts[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.PersistentVolumeClaim:
				m.pvcs[o.Name] = o
			case *corev1.Service:
				m.services[o.Name] = o
			case *appsv1.Deployment:
				m.deployments[o.Name] = o
			case *batchv1.CronJob:
				m.cronJobs[o.Name] = o
			}
		}
	}
	return m
}

// splitYAML splits a multi-document stream at "---" lines, dropping
// documents that hold only comments.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, []byte(d))
				break
			}
		}
	}
	return docs
}

func TestKubernetesManifests(t *testing.T) {
	// The files as written: the base's resources, the cron component's
	// CronJob, and the Secret the example overlay generates from its
	// secrets.env (here from secrets.env.example, its placeholders).
	m := loadManifests(t, kustomizeSources(t)...)
	checkManifests(t, m, "REPLACE", true, true)
}

// checkManifests checks that the objects of a rekey install fit together;
// every value in the Secret must contain secretMark. daemon and cron say
// which mode's objects are there (both for the files as written); the other
// mode's must be absent.
func checkManifests(t *testing.T, m *manifests, secretMark string, daemon, cron bool) {
	t.Helper()

	if m.namespaces["rekey"] == nil || m.serviceAccounts["rekey"] == nil || m.pvcs["rekey-state"] == nil {
		t.Fatal("want Namespace rekey, ServiceAccount rekey and PersistentVolumeClaim rekey-state")
	}

	// The ConfigMap's rekey.yaml must validate like any config.
	cm := m.configMaps["rekey-config"]
	if cm == nil || cm.Data["rekey.yaml"] == "" {
		t.Fatal("want ConfigMap rekey-config with data rekey.yaml")
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
	if !strings.HasSuffix(cfg.Daemon.Listen, ":9464") || strings.HasPrefix(cfg.Daemon.Listen, "127.") {
		t.Errorf("ConfigMap daemon.listen = %q: probes and the Service need a non-loopback :9464", cfg.Daemon.Listen)
	}
	if !strings.HasPrefix(cfg.State.Path, "/var/lib/rekey/") {
		t.Errorf("ConfigMap state.path = %q: want it on the volume at /var/lib/rekey", cfg.State.Path)
	}

	// The Secret holds placeholders only (or, built, the test's values).
	sec := m.secret(t)
	if len(sec) == 0 {
		t.Fatal("want a Secret rekey-secrets with data")
	}
	for k, v := range sec {
		if !strings.Contains(v, secretMark) {
			t.Errorf("Secret key %s does not hold what the overlay's env file says", k)
		}
	}
	if _, ok := sec["state-key"]; !ok {
		t.Error("Secret has no state-key")
	}

	if !daemon && (len(m.deployments) > 0 || len(m.services) > 0) {
		t.Error("cron mode still has a Deployment or a Service: both modes would mount the same volume")
	}
	if !cron && len(m.cronJobs) > 0 {
		t.Error("daemon mode also has a CronJob: both modes would mount the same volume")
	}
	if daemon {
		m.checkDaemon(t)
	}
	if cron {
		m.checkCron(t)
	}
}

// checkDaemon checks the Deployment and its Service.
func (m *manifests) checkDaemon(t *testing.T) {
	t.Helper()
	// The daemon: one replica, Recreate, probes, the metrics port.
	dep := m.deployments["rekey"]
	if dep == nil {
		t.Fatal("want Deployment rekey")
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Error("Deployment: want replicas: 1 (single writer)")
	}
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Deployment: strategy %q, want Recreate", dep.Spec.Strategy.Type)
	}
	sel, err := metav1.LabelSelectorAsMap(dep.Spec.Selector)
	if err != nil || len(sel) == 0 {
		t.Fatalf("Deployment selector: %v", err)
	}
	for k, v := range sel {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod template", k, v)
		}
	}
	c := m.checkPod(t, "Deployment rekey", dep.Spec.Template.Spec, []string{"daemon"})
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	for name, want := range map[string]string{"liveness": "/healthz", "readiness": "/readyz"} {
		p := probes[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want {
			t.Errorf("Deployment: want a %s probe on %s", name, want)
			continue
		}
		if port := p.HTTPGet.Port.String(); port != "metrics" && port != "9464" {
			t.Errorf("Deployment: %s probe port %s is not the metrics port", name, port)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" && p.ContainerPort == 9464 }) {
		t.Error("Deployment: want container port metrics 9464")
	}

	// The Service selects the daemon's pods on the metrics port.
	svc := m.services["rekey"]
	if svc == nil {
		t.Fatal("want Service rekey")
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the Deployment's pods", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9464 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service ports = %+v, want 9464 -> metrics", svc.Spec.Ports)
	}
}

// checkCron checks the CronJob.
func (m *manifests) checkCron(t *testing.T) {
	t.Helper()
	// Cron mode: one run at a time.
	cj := m.cronJobs["rekey-run"]
	if cj == nil {
		t.Fatal("want CronJob rekey-run")
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob: concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if len(strings.Fields(cj.Spec.Schedule)) != 5 {
		t.Errorf("CronJob: schedule %q is not a 5-field cron expression", cj.Spec.Schedule)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("CronJob: restartPolicy %q is not allowed for a Job", pod.RestartPolicy)
	}
	m.checkPod(t, "CronJob rekey-run", pod, []string{"run"})
}

// checkPod checks a pod spec running rekey with args: one hardened
// container, and every ServiceAccount, ConfigMap, Secret (and key) and
// claim it names defined among the manifests. It returns the container.
func (m *manifests) checkPod(t *testing.T, what string, spec corev1.PodSpec, args []string) corev1.Container {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image == "" || !slices.Equal(c.Args, args) {
		t.Errorf("%s: image %q args %q, want an image and args %q", what, c.Image, c.Args, args)
	}
	if m.serviceAccounts[spec.ServiceAccountName] == nil {
		t.Errorf("%s: serviceAccountName %q is not defined", what, spec.ServiceAccountName)
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Errorf("%s: pod must run as a non-root user", what)
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: container needs readOnlyRootFilesystem: true", what)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: container needs allowPrivilegeEscalation: false", what)
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Errorf("%s: container must drop ALL capabilities", what)
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] == nil:
			t.Errorf("%s: volume %s names ConfigMap %q, which is not defined", what, v.Name, v.ConfigMap.Name)
		case v.Secret != nil:
			m.checkSecretKeys(t, what, v.Secret.SecretName, v.Secret.Items)
		case v.PersistentVolumeClaim != nil && m.pvcs[v.PersistentVolumeClaim.ClaimName] == nil:
			t.Errorf("%s: volume %s names claim %q, which is not defined", what, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("%s: mount %s has no volume", what, vm.Name)
		}
		mounts[vm.MountPath] = vm.Name
	}
	if v, ok := volumes[mounts["/var/lib/rekey"]]; !ok || v.PersistentVolumeClaim == nil {
		t.Errorf("%s: /var/lib/rekey must be the persistent volume", what)
	}

	var cfgPath string
	for _, e := range c.Env {
		if e.Name == "REKEY_CONFIG" {
			cfgPath = e.Value
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			m.checkSecretKeys(t, what, ref.Name, []corev1.KeyToPath{{Key: ref.Key}})
		}
	}
	if v, ok := volumes[mounts[filepath.Dir(cfgPath)]]; !ok || v.ConfigMap == nil {
		t.Errorf("%s: REKEY_CONFIG %q is not in a mounted ConfigMap", what, cfgPath)
	}
	return c
}

func (m *manifests) checkSecretKeys(t *testing.T, what, name string, items []corev1.KeyToPath) {
	t.Helper()
	s := m.secrets[name]
	if s == nil {
		t.Errorf("%s: Secret %q is not defined", what, name)
		return
	}
	for _, it := range items {
		_, inString := s.StringData[it.Key]
		if _, inData := s.Data[it.Key]; !inString && !inData {
			t.Errorf("%s: Secret %s has no key %q", what, name, it.Key)
		}
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units, with the
// binary path pointed at an executable that exists here (verify checks
// ExecStart), and requires it to print nothing: it exits 0 on unknown keys
// and bad values, printing only a warning.
func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy", "systemd")
	units := []string{"rekey.service", "rekey-run.service", "rekey-run.timer"}
	texts := map[string]string{}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join(dir, u))
		if err != nil {
			t.Fatal(err)
		}
		texts[u] = string(b)
	}

	// What the units promise, checked without systemd.
	for u, want := range map[string][]string{
		"rekey.service": {"ExecStart=/usr/local/bin/rekey daemon", "ExecReload=/bin/kill -HUP $MAINPID",
			"KillSignal=SIGTERM", "Restart=on-failure", "StateDirectory=rekey"},
		"rekey-run.service": {"Type=oneshot", "ExecStart=/usr/local/bin/rekey run", "StateDirectory=rekey"},
		"rekey-run.timer":   {"Persistent=true", "RandomizedDelaySec=", "OnCalendar="},
	} {
		for _, w := range want {
			if !strings.Contains(texts[u], "\n"+w) {
				t.Errorf("%s lacks %q", u, w)
			}
		}
	}
	for _, u := range []string{"rekey.service", "rekey-run.service"} {
		for _, w := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
			"CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
			"ReadWritePaths=/var/lib/rekey", "User=rekey"} {
			if !strings.Contains(texts[u], "\n"+w) {
				t.Errorf("%s lacks %q", u, strings.TrimSpace(w))
			}
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not installed: .ci/run installs Debian's systemd package so that CI verifies the units")
		}
		t.Skip("systemd-analyze not installed (apt-get install systemd); the units were checked only for their settings")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var paths []string
	for _, u := range units {
		p := filepath.Join(tmp, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(texts[u], "/usr/local/bin/rekey", self)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check itself catches a broken unit.
	bad := filepath.Join(tmp, "broken.service")
	if err := os.WriteFile(bad, []byte(strings.Replace(texts["rekey.service"], "Type=exec", "Type=exex", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", "--man=no", bad).CombinedOutput(); len(bytes.TrimSpace(out)) == 0 {
		t.Error("systemd-analyze verify printed nothing for a bad Type=; the check above proves nothing")
	}
}

// TestDeployHookScript runs deploy/ci/deploy-hook.sh with a fake rekey that
// logs its arguments.
func TestDeployHookScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, "deploy", "ci", "deploy-hook.sh"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, failOn string, deploy ...string) (log string, code int) {
		t.Helper()
		dir := t.TempDir()
		logPath := filepath.Join(dir, "log")
		fake := filepath.Join(dir, "rekey")
		body := "#!/bin/sh\necho \"rekey $*\" >> " + logPath + "\n"
		if failOn != "" {
			body += "case \"$*\" in *" + failOn + "*) exit 1;; esac\n"
		}
		if err := os.WriteFile(fake, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bash, append([]string{script, "shop-api"}, deploy...)...)
		cmd.Env = append(os.Environ(), "REKEY="+fake, "LOG="+logPath)
		out, err := cmd.CombinedOutput()
		code = 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		b, _ := os.ReadFile(logPath)
		t.Logf("output: %s", out)
		return string(b), code
	}
	deployOK := []string{"sh", "-c", `echo deploy >> "$LOG"`}
	deployFails := []string{"sh", "-c", `echo deploy >> "$LOG"; exit 3`}

	t.Run("success", func(t *testing.T) {
		log, code := run(t, "", deployOK...)
		if want := "rekey rotate shop-api --stage\ndeploy\nrekey rotate shop-api --finish\n"; code != 0 || log != want {
			t.Fatalf("exit %d, log %q; want 0, %q", code, log, want)
		}
	})
	t.Run("deploy fails", func(t *testing.T) {
		log, code := run(t, "", deployFails...)
		if want := "rekey rotate shop-api --stage\ndeploy\n"; code != 3 || log != want {
			t.Fatalf("exit %d, log %q; want 3 and no --finish, %q", code, log, want)
		}
	})
	t.Run("stage fails", func(t *testing.T) {
		log, code := run(t, "--stage", deployOK...)
		if want := "rekey rotate shop-api --stage\n"; code == 0 || log != want {
			t.Fatalf("exit %d, log %q; want non-zero and no deploy, %q", code, log, want)
		}
	})
	t.Run("finish fails", func(t *testing.T) {
		_, code := run(t, "--finish", deployOK...)
		if code == 0 {
			t.Fatal("exit 0 after a failed --finish")
		}
	})
	t.Run("usage", func(t *testing.T) {
		if _, code := run(t, "" /* no deploy command */); code != 2 {
			t.Fatalf("exit %d without a deploy command, want 2", code)
		}
	})
}

// TestGitHubWorkflow checks the sample workflow's hook steps: --stage
// before the deploy, --finish only on success, and a failure step that
// does not finish.
func TestGitHubWorkflow(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "ci", "github-actions-deploy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Name string `json:"name"`
				If   string `json:"if"`
				Run  string `json:"run"`
				Uses string `json:"uses"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	job, ok := wf.Jobs["deploy"]
	if !ok {
		t.Fatal("no deploy job")
	}
	stage, deploy, finish, onFailure := -1, -1, -1, -1
	for i, s := range job.Steps {
		switch {
		case strings.Contains(s.Run, "--stage"):
			stage = i
		case strings.Contains(s.Run, "--finish"):
			finish = i
			if s.If != "success()" {
				t.Errorf("the --finish step runs if %q, want success()", s.If)
			}
		case s.If == "failure()":
			onFailure = i
		case s.Name == "Deploy":
			deploy = i
		}
	}
	if stage < 0 || deploy <= stage || finish <= deploy || onFailure <= deploy {
		t.Fatalf("step order: stage %d, deploy %d, finish %d, failure %d; want stage < deploy < finish and a failure() step after the deploy", stage, deploy, finish, onFailure)
	}
}

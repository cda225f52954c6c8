package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/etcdtest"
	"github.com/rekeyhq/rekey/internal/secret"
)

// etcdState returns the state lines of a config on c under prefix.
func etcdState(c *etcdtest.Cluster, prefix string) []string {
	return []string{"backend: etcd", "etcd: {endpoints: [" + strings.Join(c.Endpoints(), ", ") + "], prefix: " + prefix + ", lock_ttl: 5s}"}
}

// variant writes a copy of e's config named name, with every old string
// replaced by its new one (pairs), and returns its path.
func variant(t *testing.T, e *env, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.NewReplacer(pairs...).Replace(string(b))
	p := filepath.Join(e.Dir, name)
	writeFile(t, p, body)
	return p
}

// Every command works with the journal in etcd, and nothing but the audit
// log is written where state.path points.
func TestCommandsOnEtcd(t *testing.T) {
	c := etcdtest.Start(t)
	e := newEnv(t, envOptions{state: etcdState(c, "/cli/")})
	for _, args := range [][]string{
		{"validate"},
		{"rotate", "prod", "--force"},
		{"run"},
		{"status"},
		{"status", "-o", "json"},
		{"history", "prod"},
		{"plan"},
		{"resolve", "prod", "--accept-setup"},
		{"rotate", "prod", "--stage"},
		{"rotate", "prod", "--finish"},
	} {
		if code, _, errOut := e.cli(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	e.invariants()
	if h := e.history(); len(h) != 2 || h[0].Phase != "done" || h[1].Phase != "done" {
		t.Errorf("history = %+v, want two done rotations (forced, then staged and finished)", h)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("a SQLite journal was made with backend etcd: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "state.db.audit.jsonl")); err != nil {
		t.Errorf("no audit log beside state.path: %v", err)
	}
	// The journal is in etcd, under the prefix.
	resp, err := c.Client(t).Get(t.Context(), "/cli/rotations/prod/", clientPrefix())
	if err != nil || resp.Count != 2 {
		t.Errorf("etcd holds %v rotations of prod under /cli/, %v; want 2", resp, err)
	}
}

// state.etcd's TLS files and username/password (file: secrets) reach
// etcd: a rotation runs against a member that requires a client
// certificate and a login allowed only the journal's prefix.
func TestEtcdTLSAndAuthConfig(t *testing.T) {
	c, files := etcdtest.StartTLS(t)
	c.EnableAuth(t, "rekey", "pw_CLIETCDPASSWORD_0b9d", "/secure/")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etcd-user"), "rekey")
	writeFile(t, filepath.Join(dir, "etcd-password"), "pw_CLIETCDPASSWORD_0b9d")
	rememberValue(secret.New("pw_CLIETCDPASSWORD_0b9d")) // never in any output (the transcript check)
	e := newEnv(t, envOptions{state: []string{"backend: etcd", "etcd:",
		"  endpoints: [" + c.Endpoints()[0] + "]",
		"  prefix: /secure/",
		"  ca_cert: " + files.CA, "  cert: " + files.Cert, "  key: " + files.Key,
		"  username: file:" + filepath.Join(dir, "etcd-user"),
		"  password: file:" + filepath.Join(dir, "etcd-password"),
	}})
	if code, _, errOut := e.cli("rotate", "prod", "--force"); code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errOut)
	}
	e.invariants()
}

// A journal migrates SQLite → etcd and back, re-encrypted under the
// target's key; a target that already holds a credential's history is
// refused, naming it; rekey goes on from the migrated journal.
func TestStateMigrate(t *testing.T) {
	c := etcdtest.Start(t)
	e := newEnv(t, envOptions{})
	if code, _, errOut := e.cli("rotate", "prod", "--force"); code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errOut)
	}
	e2etest.WriteStateKey(t, filepath.Join(e.Dir, "etcd.key"))
	e2etest.WriteStateKey(t, filepath.Join(e.Dir, "back.key"))
	stateLine := "  path: " + e.Dir + "/state.db\n"
	etcdCfg := variant(t, e, "etcd.yaml", e.Dir+"/state.key", e.Dir+"/etcd.key",
		stateLine, stateLine+"  "+strings.Join(etcdState(c, "/migrated/"), "\n  ")+"\n")
	backCfg := variant(t, e, "back.yaml", e.Dir+"/state.db", e.Dir+"/back.db", e.Dir+"/state.key", e.Dir+"/back.key")

	code, out, errOut := e.cli("state", "migrate", "--to", etcdCfg)
	if code != 0 || !strings.Contains(out, "copied 1 rotations of 1 credentials from sqlite "+e.Dir+"/state.db to etcd ") {
		t.Fatalf("migrate to etcd: exit %d: %s%s", code, out, errOut)
	}
	code, _, errOut = e.cli("state", "migrate", "--to", etcdCfg)
	if code != 1 || !strings.Contains(errOut, "nothing copied: the target already holds 1 rotations of prod") {
		t.Errorf("second migrate: exit %d: %s; want a refusal naming prod", code, errOut)
	}
	if code, _, errOut := e.cli("state", "migrate", "--to", e.Config); code != 2 || !strings.Contains(errOut, "the same journal") {
		t.Errorf("migrate onto itself: exit %d: %s", code, errOut)
	}

	// rekey goes on from the etcd journal: the next rotation revokes the
	// key the first one made, whose value only the migrated journal holds.
	etcdEnv := e.withConfig(etcdCfg)
	if code, _, errOut := etcdEnv.cli("rotate", "prod", "--force"); code != 0 {
		t.Fatalf("rotate on the migrated journal: exit %d: %s", code, errOut)
	}
	etcdEnv.invariants()

	code, out, errOut = e.cli("state", "migrate", "--from", etcdCfg, "--to", backCfg)
	if code != 0 || !strings.Contains(out, "copied 2 rotations of 1 credentials") {
		t.Fatalf("migrate back to SQLite: exit %d: %s%s", code, out, errOut)
	}
	backEnv := e.withConfig(backCfg)
	if h := backEnv.history(); len(h) != 2 || h[0].Phase != "done" || h[1].Phase != "done" {
		t.Errorf("history after migrating back = %+v, want the two done rotations", h)
	}
	if code, _, errOut := backEnv.cli("rotate", "prod", "--force"); code != 0 {
		t.Fatalf("rotate on the journal migrated back: exit %d: %s", code, errOut)
	}
	backEnv.invariants()
}

// withConfig returns e running with another config file.
func (e *env) withConfig(path string) *env {
	w := *e.World
	w.Config = path
	return &env{World: &w, t: e.t, app: e.app, window: e.window}
}

func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/sinktest"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

const key = "api_key"

var policyKV2, policyKV1 = "../../../deploy/vault/rekey-kv2.hcl", "../../../deploy/vault/rekey-kv1.hcl"

// The policy files name this path; tests point them at their own.
const policyDataPathKV2, policyDataPathKV1 = "secret/data/crm/apexverify", "secret/crm/apexverify"

var pathSeq atomic.Int64

func newPath(prefix string) string { return fmt.Sprintf("%s/%d", prefix, pathSeq.Add(1)) }

func tokenAuth(t *testing.T, token string) vaultkv.Auth {
	return vaultkv.Auth{Method: vaultkv.MethodToken, Token: config.Secret{Ref: SecretFile(t, token)}}
}

func newSink(t *testing.T, c vaultkv.Config, log *zap.Logger) sinks.Sink {
	t.Helper()
	s, err := vaultkv.New(c, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.(sinks.Closer).Close() })
	return s
}

func kv2Data(t *testing.T, c *api.Client, p string) map[string]any {
	t.Helper()
	s, err := c.KVv2(KV2Mount).Get(context.Background(), p)
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("read kv/%s: %v", p, err)
	}
	return s.Data
}

func kv2Put(t *testing.T, c *api.Client, p string, data map[string]any) int {
	t.Helper()
	s, err := c.KVv2(KV2Mount).Put(context.Background(), p, data)
	if err != nil {
		t.Fatalf("write kv/%s: %v", p, err)
	}
	return s.VersionMetadata.Version
}

func TestContractKV2(t *testing.T) {
	srv := Start(t)
	sinktest.Run(t, func(t *testing.T) sinktest.Fixture {
		p := newPath("contract")
		return sinktest.Fixture{
			Sink: newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil),
			Peek: func(t *testing.T) (string, bool) {
				v, ok := kv2Data(t, srv.Root, p)[key].(string)
				return v, ok
			},
			Seed: func(t *testing.T, value string) {
				kv2Put(t, srv.Root, p, map[string]any{key: value, "username": "crm"})
			},
		}
	})
}

func TestContractKV1(t *testing.T) {
	srv := Start(t)
	sinktest.Run(t, func(t *testing.T) sinktest.Fixture {
		p := newPath("contract")
		return sinktest.Fixture{
			Sink: newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV1Mount, Path: p, Key: key, KVVersion: 1, Auth: tokenAuth(t, srv.RootToken)}, nil),
			Peek: func(t *testing.T) (string, bool) {
				s, err := srv.Root.Logical().Read(KV1Mount + "/" + p)
				if err != nil {
					t.Fatal(err)
				}
				if s == nil {
					return "", false
				}
				v, ok := s.Data[key].(string)
				return v, ok
			},
			Seed: func(t *testing.T, value string) {
				if _, err := srv.Root.Logical().Write(KV1Mount+"/"+p, map[string]any{key: value, "username": "crm"}); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func TestPutKeepsOtherFieldsAndReportsVersions(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("fields")
	kv2Put(t, srv.Root, p, map[string]any{"username": "crm"})           // v1: no key field
	kv2Put(t, srv.Root, p, map[string]any{"username": "crm", "x": "y"}) // v2
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	v1 := sinktest.Value(t, "v1")
	r, err := s.Put(ctx, v1, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "3" || r.Previous != "2" || !r.Created {
		t.Errorf("receipt = %+v, want version 3, previous 2, created (the field was new)", r)
	}
	got := kv2Data(t, srv.Root, p)
	if got["username"] != "crm" || got["x"] != "y" || got[key] != v1.Reveal() {
		t.Errorf("secret after put has fields %v, want username, x and %s kept/set", keys(got), key)
	}
	again, err := s.Put(ctx, v1, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if again != r {
		t.Errorf("repeated put receipt %+v differs from first %+v", again, r)
	}

	// Rollback restores version 2 whole: no key field, other fields intact.
	if err := s.(sinks.Rollbacker).Rollback(ctx, r); err != nil {
		t.Fatal(err)
	}
	got = kv2Data(t, srv.Root, p)
	if _, has := got[key]; has || got["x"] != "y" {
		t.Errorf("after rollback fields are %v, want version 2's (username, x)", keys(got))
	}
	if _, err := s.(sinks.Reader).Get(ctx); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get after rolling back a created field: %v, want ErrNotFound", err)
	}
}

func TestRollbackOfFirstWriteAndOfOverwrittenValue(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("rollback")
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	rb := s.(sinks.Rollbacker)
	v1, v2 := sinktest.Value(t, "v1"), sinktest.Value(t, "v2")

	r1, err := s.Put(ctx, v1, "rot-1") // creates the secret: nothing to restore but absence
	if err != nil {
		t.Fatal(err)
	}
	if r1.Previous != "" || !r1.Created || r1.Version != "1" {
		t.Fatalf("first receipt %+v, want version 1, no previous, created", r1)
	}
	for i := 0; i < 2; i++ {
		if err := rb.Rollback(ctx, r1); err != nil {
			t.Fatalf("Rollback #%d: %v", i+1, err)
		}
	}
	if _, has := kv2Data(t, srv.Root, p)[key]; has {
		t.Errorf("rollback of the first write left the field in place")
	}

	// A newer value written by someone else after our put is not undone.
	r2, err := s.Put(ctx, v1, "rot-2")
	if err != nil {
		t.Fatal(err)
	}
	kv2Put(t, srv.Root, p, map[string]any{key: v2.Reveal()})
	err = rb.Rollback(ctx, r2)
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), "changed after") {
		t.Fatalf("Rollback over a newer value: err = %v, want a permanent 'changed after' error", err)
	}
	sinktest.AssertNoLeak(t, err.Error(), v1, v2)
	if kv2Data(t, srv.Root, p)[key] != v2.Reveal() {
		t.Errorf("the refused rollback changed the secret")
	}
}

// injector is a proxy in front of Vault that, before forwarding the sink's
// check-and-set write, lets a concurrent writer write first.
type injector struct {
	proxy   http.Handler
	path    string
	inject  func(n int) bool // whether to interfere with write n (1-based)
	writer  func(n int)
	mu      sync.Mutex
	writes  int
	injects int
}

func newInjector(t *testing.T, srv *Server, p string, inject func(int) bool, writer func(int)) (*injector, string) {
	u, err := url.Parse(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	in := &injector{proxy: httputil.NewSingleHostReverseProxy(u), path: "/v1/" + KV2Mount + "/data/" + p, inject: inject, writer: writer}
	ts := httptest.NewServer(in)
	t.Cleanup(ts.Close)
	return in, ts.URL
}

func (in *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == in.path {
		in.mu.Lock()
		in.writes++
		n := in.writes
		if in.inject(n) {
			in.injects++
			in.writer(n)
		}
		in.mu.Unlock()
	}
	in.proxy.ServeHTTP(w, r)
}

func TestCASConflictFromConcurrentWriterIsRetried(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("cas")
	v0, v1 := sinktest.Value(t, "v0"), sinktest.Value(t, "v1")
	kv2Put(t, srv.Root, p, map[string]any{key: v0.Reveal()}) // version 1
	in, addr := newInjector(t, srv, p, func(n int) bool { return n == 1 }, func(int) {
		kv2Put(t, srv.Root, p, map[string]any{key: v0.Reveal(), "added_concurrently": "yes"}) // version 2
	})
	s := newSink(t, vaultkv.Config{Address: addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	r, err := s.Put(ctx, v1, "rot-1")
	if err != nil {
		t.Fatalf("Put with one lost race: %v", err)
	}
	if in.injects != 1 || in.writes != 2 {
		t.Errorf("proxy saw %d writes, %d interfered; want 2 and 1", in.writes, in.injects)
	}
	if r.Previous != "2" || r.Version != "3" {
		t.Errorf("receipt %+v, want previous 2 (the concurrent write) and version 3", r)
	}
	got := kv2Data(t, srv.Root, p)
	if got[key] != v1.Reveal() || got["added_concurrently"] != "yes" {
		t.Errorf("after the retried put fields are %v: want our key and the concurrent writer's field", keys(got))
	}
}

func TestCASConflictGivesUpClearly(t *testing.T) {
	srv := Start(t)
	p := newPath("cas")
	v0, v1 := sinktest.Value(t, "v0"), sinktest.Value(t, "v1")
	kv2Put(t, srv.Root, p, map[string]any{key: v0.Reveal()})
	_, addr := newInjector(t, srv, p, func(int) bool { return true }, func(n int) {
		kv2Put(t, srv.Root, p, map[string]any{key: v0.Reveal(), "n": n})
	})
	s := newSink(t, vaultkv.Config{Address: addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	_, err := s.Put(context.Background(), v1, "rot-1")
	if !errors.Is(err, vaultkv.ErrConflict) {
		t.Fatalf("Put against a writer that always wins: err = %v, want ErrConflict", err)
	}
	if errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("a conflict is marked permanent; a later retry may well succeed")
	}
	sinktest.AssertNoLeak(t, err.Error(), v1)
	if kv2Data(t, srv.Root, p)[key] != v0.Reveal() {
		t.Errorf("the key changed although every write lost")
	}
}

func TestAppRoleLoginWithMinimalPolicy(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("approle")
	srv.Policy(t, "rekey", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+p)
	if err := srv.Root.Sys().EnableAuthWithOptions("approle-rekey", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Root.Logical().Write("auth/approle-rekey/role/rekey", map[string]any{"token_policies": "rekey", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := srv.Root.Logical().Read("auth/approle-rekey/role/rekey/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := srv.Root.Logical().Write("auth/approle-rekey/role/rekey/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretID := sid.Data["secret_id"].(string)
	kv2Put(t, srv.Root, p, map[string]any{key: "old", "username": "crm"})

	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: vaultkv.Auth{
		Method:   vaultkv.MethodAppRole,
		RoleID:   config.Secret{Ref: SecretFile(t, rid.Data["role_id"].(string))},
		SecretID: config.Secret{Ref: SecretFile(t, secretID)},
		Mount:    "approle-rekey",
	}}, nil)
	if err := s.(sinks.Preflighter).Preflight(ctx); err != nil {
		t.Fatalf("Preflight with the minimal policy: %v", err)
	}
	v1, v2 := sinktest.Value(t, "v1"), sinktest.Value(t, "v2")
	if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	r, err := s.Put(ctx, v2, "rot-2")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.(sinks.Rollbacker).Rollback(ctx, r); err != nil {
		t.Fatalf("Rollback with the minimal policy: %v", err)
	}
	got, err := s.(sinks.Reader).Get(ctx)
	if err != nil || !got.Equal(v1) {
		t.Fatalf("Get after rollback = %s, %v; want v1", got.Fingerprint(), err)
	}
	if d := kv2Data(t, srv.Root, p); d["username"] != "crm" {
		t.Errorf("other field lost: %v", keys(d))
	}

	// The AppRole token is held to the policy: another path is refused.
	other := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: newPath("approle"), Key: key, Auth: vaultkv.Auth{
		Method:   vaultkv.MethodAppRole,
		RoleID:   config.Secret{Ref: rid.Data["role_id"].(string)},
		SecretID: config.Secret{Ref: SecretFile(t, secretID)},
		Mount:    "approle-rekey",
	}}, nil)
	if _, err := other.Put(ctx, v1, "rot-1"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Put outside the policy: err = %v, want permission denied", err)
	}
}

func TestBadAppRoleSecretIDIsPermanent(t *testing.T) {
	srv := Start(t)
	if err := srv.Root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Root.Logical().Write("auth/approle/role/rekey", map[string]any{"token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	rid, err := srv.Root.Logical().Read("auth/approle/role/rekey/role-id")
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "00000000-1111-2222-3333-444444444444"
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: newPath("approle"), Key: key, Auth: vaultkv.Auth{
		Method: vaultkv.MethodAppRole, RoleID: config.Secret{Ref: rid.Data["role_id"].(string)}, SecretID: config.Secret{Ref: SecretFile(t, wrong)},
	}}, nil)
	_, err = s.Put(context.Background(), sinktest.Value(t, "v1"), "rot-1")
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) {
		t.Fatalf("Put with a wrong secret_id: err = %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error shows the secret_id: %v", err)
	}
}

func TestTokenThatCannotWrite(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("denied")
	v0, v1 := sinktest.Value(t, "v0"), sinktest.Value(t, "v1")
	kv2Put(t, srv.Root, p, map[string]any{key: v0.Reveal()})
	if err := srv.Root.Sys().PutPolicy("read-only", fmt.Sprintf("path %q { capabilities = [\"read\"] }", KV2Mount+"/data/"+p)); err != nil {
		t.Fatal(err)
	}
	token := srv.Token(t, "", "read-only")
	core, logs := observer.New(zapcore.DebugLevel)
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, token)}, zap.New(core))

	err := s.(sinks.Preflighter).Preflight(ctx)
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), "needs update") {
		t.Errorf("Preflight with a read-only token: err = %v, want a permanent 'needs update' error", err)
	}
	_, err = s.Put(ctx, v1, "rot-1")
	if err == nil {
		t.Fatal("Put with a read-only token succeeded")
	}
	t.Logf("denied: %v", err)
	if !errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("permission denied is not permanent: %v", err)
	}
	for _, want := range []string{"permission denied", srv.Addr, `mount "kv"`, KV2Mount + "/data/" + p} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	sinktest.AssertNoLeak(t, err.Error(), v0, v1)
	for _, e := range logs.All() {
		sinktest.AssertNoLeak(t, fmt.Sprint(e.Message, e.ContextMap()), v0, v1)
	}
	if kv2Data(t, srv.Root, p)[key] != v0.Reveal() {
		t.Fatalf("the denied put changed the key")
	}

	// Resumable: once the policy allows writing, the same put goes through.
	srv.Policy(t, "read-only", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+p)
	if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
		t.Fatalf("Put after the policy was fixed: %v", err)
	}
	if kv2Data(t, srv.Root, p)[key] != v1.Reveal() {
		t.Errorf("resumed put did not land")
	}
}

func TestKV1WithMinimalPolicy(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("v1")
	srv.Policy(t, "rekey-v1", policyKV1, policyDataPathKV1, KV1Mount+"/"+p)
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV1Mount, Path: p, Key: key, KVVersion: 1, Auth: tokenAuth(t, srv.Token(t, "", "rekey-v1"))}, nil)
	if err := s.(sinks.Preflighter).Preflight(ctx); err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	v1 := sinktest.Value(t, "v1")
	if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.(sinks.Reader).Get(ctx); err != nil || !got.Equal(v1) {
		t.Fatalf("Get = %s, %v", got.Fingerprint(), err)
	}
}

// hook returns a logger that sends each entry's message, at every level,
// to the returned channel.
func hook() (*zap.Logger, <-chan string) {
	ch := make(chan string, 1000)
	core := zapcore.RegisterHooks(enabledCore{}, func(e zapcore.Entry) error {
		select {
		case ch <- e.Message:
		default: // a test that stopped reading has what it needs
		}
		return nil
	})
	return zap.New(core), ch
}

// enabledCore enables every level and writes nothing.
type enabledCore struct{}

func (enabledCore) Enabled(zapcore.Level) bool          { return true }
func (c enabledCore) With([]zapcore.Field) zapcore.Core { return c }
func (c enabledCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}
func (enabledCore) Write(zapcore.Entry, []zapcore.Field) error { return nil }
func (enabledCore) Sync() error                                { return nil }

// waitFor waits for n messages containing substr, failing after limit.
func waitFor(t *testing.T, ch <-chan string, substr string, n int, limit time.Duration) {
	t.Helper()
	timeout := time.After(limit)
	for seen := 0; seen < n; {
		select {
		case m := <-ch:
			if strings.Contains(m, substr) {
				seen++
			}
		case <-timeout:
			t.Fatalf("saw %d of %d log entries %q within %s", seen, n, substr, limit)
		}
	}
}

func TestTokenIsRenewed(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("renew")
	srv.Policy(t, "rekey", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+p)
	const ttl = 3 * time.Second
	token := srv.Token(t, "3s", "rekey")
	issued := time.Now()
	log, events := hook()
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, token)}, log)
	v1 := sinktest.Value(t, "v1")
	if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
		t.Fatal(err)
	}
	// The watcher renews at once and then about every 2s; the third renewal
	// lands after the token's first TTL ran out.
	waitFor(t, events, "Vault token renewed", 3, 20*time.Second)
	if time.Since(issued) <= ttl {
		t.Fatalf("three renewals within the first TTL (%s): cannot tell renewal from the first lease", time.Since(issued))
	}
	look, err := srv.Root.Auth().Token().Lookup(token)
	if err != nil {
		t.Fatalf("the sink's token is gone after its first TTL: %v", err)
	}
	if look.Data["last_renewal_time"] == nil {
		t.Errorf("token lookup shows no renewal: %v", look.Data)
	}
	if got, err := s.(sinks.Reader).Get(ctx); err != nil || !got.Equal(v1) {
		t.Fatalf("Get with the renewed token after its first TTL: %s, %v", got.Fingerprint(), err)
	}
}

func TestLogsInAgainWhenRenewalFails(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("relogin")
	srv.Policy(t, "rekey", policyKV2, policyDataPathKV2, KV2Mount+"/data/"+p)
	if err := srv.Root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Root.Logical().Write("auth/approle/role/rekey", map[string]any{"token_policies": "rekey", "token_ttl": "2s", "token_max_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := srv.Root.Logical().Read("auth/approle/role/rekey/role-id")
	sid, err := srv.Root.Logical().Write("auth/approle/role/rekey/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	log, events := hook()
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: vaultkv.Auth{
		Method: vaultkv.MethodAppRole, RoleID: config.Secret{Ref: rid.Data["role_id"].(string)}, SecretID: config.Secret{Ref: SecretFile(t, sid.Data["secret_id"].(string))},
	}}, log)
	v1, v2 := sinktest.Value(t, "v1"), sinktest.Value(t, "v2")
	if _, err := s.Put(ctx, v1, "rot-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, "logged in to Vault", 1, time.Second)
	// Revoke every token the AppRole issued: the next renewal fails.
	if err := srv.Root.Sys().RevokePrefix("auth/approle/"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, "renewal stopped", 1, 20*time.Second)
	if _, err := s.Put(ctx, v2, "rot-2"); err != nil {
		t.Fatalf("Put after the token was revoked: %v", err)
	}
	waitFor(t, events, "logged in to Vault", 1, time.Second)
	if kv2Data(t, srv.Root, p)[key] != v2.Reveal() {
		t.Errorf("put after re-login did not land")
	}
}

func TestWrongKVVersion(t *testing.T) {
	srv := Start(t)
	ctx := context.Background()
	p := newPath("version")
	v1 := sinktest.Value(t, "v1")
	for _, tt := range []struct {
		mount   string
		version int
		want    string
	}{
		{KV2Mount, 1, "is KV version 2 but kv_version is 1"},
		{KV1Mount, 2, "is KV version 1 but kv_version is 2"},
	} {
		s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: tt.mount, Path: p, Key: key, KVVersion: tt.version, Auth: tokenAuth(t, srv.RootToken)}, nil)
		_, err := s.Put(ctx, v1, "rot-1")
		t.Logf("mount %s, kv_version %d: %v", tt.mount, tt.version, err)
		if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("mount %s with kv_version %d: err = %v, want a permanent %q naming the address", tt.mount, tt.version, err, tt.want)
		}
	}
	// Nothing was written anywhere.
	for _, path := range []string{KV2Mount + "/data/" + p, KV1Mount + "/" + p, KV1Mount + "/data/" + p} {
		if s, err := srv.Root.Logical().Read(path); err != nil || s != nil {
			t.Errorf("%s after refused puts: %v, %v; want nothing", path, s, err)
		}
	}
}

func TestMissingMount(t *testing.T) {
	srv := Start(t)
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: "nope", Path: "a/b", Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	_, err := s.Put(context.Background(), sinktest.Value(t, "v1"), "rot-1")
	t.Logf("missing mount: %v", err)
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) || !strings.Contains(err.Error(), `mount "nope"`) || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("Put into a missing mount: err = %v, want a permanent error naming the mount and address", err)
	}
}

func TestSealedVault(t *testing.T) {
	srv := Start(t)
	p := newPath("sealed")
	s := newSink(t, vaultkv.Config{Address: srv.Addr, Mount: KV2Mount, Path: p, Key: key, Auth: tokenAuth(t, srv.RootToken)}, nil)
	v1 := sinktest.Value(t, "v1")
	if _, err := s.Put(context.Background(), v1, "rot-1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Core.Seal(srv.RootToken); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(context.Background(), sinktest.Value(t, "v2"), "rot-2")
	t.Logf("sealed: %v", err)
	if err == nil || !errors.As(err, new(*backoff.PermanentError)) {
		t.Fatalf("Put into a sealed Vault: err = %v, want a permanent error", err)
	}
	for _, want := range []string{"sealed", srv.Addr, `mount "kv"`, p} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	sinktest.AssertNoLeak(t, err.Error(), v1)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

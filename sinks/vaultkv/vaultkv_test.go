package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

func TestValidate(t *testing.T) {
	base := func() Config {
		return Config{Mount: "secret", Path: "crm/apexverify", Key: "api_key"}
	}
	tests := []struct {
		name   string
		mod    func(c *Config)
		fields []string // fields with errors, in order; none means valid
	}{
		{"minimal token", func(c *Config) {}, nil},
		{"approle", func(c *Config) {
			c.Auth = Auth{Method: "approle", RoleID: config.Secret{Ref: "file:/etc/rekey/role_id"}, SecretID: config.Secret{Ref: "env:SECRET_ID"}}
		}, nil},
		{"approle literal role id", func(c *Config) {
			c.Auth = Auth{Method: "approle", RoleID: config.Secret{Ref: "my-role-id"}, SecretID: config.Secret{Ref: "env:SECRET_ID"}}
		}, nil},
		{"kubernetes", func(c *Config) { c.Auth = Auth{Method: "kubernetes", Role: "rekey"} }, nil},
		{"kv1", func(c *Config) { c.KVVersion = 1 }, nil},
		{"missing mount path key", func(c *Config) { c.Mount, c.Path, c.Key = "/", "", "" }, []string{"mount", "path", "key"}},
		{"bad kv version", func(c *Config) { c.KVVersion = 3 }, []string{"kv_version"}},
		{"bad address", func(c *Config) { c.Address = "vault.internal:8200" }, []string{"address"}},
		{"both ca options", func(c *Config) { c.CACert, c.CAPath = "/a.pem", "/certs" }, []string{"ca_path"}},
		{"literal token", func(c *Config) { c.Auth.Token = config.Secret{Ref: "hvs.literal"} }, []string{"auth.token"}},
		{"approle without secret id", func(c *Config) {
			c.Auth = Auth{Method: "approle", RoleID: config.Secret{Ref: "role"}}
		}, []string{"auth.secret_id"}},
		{"approle literal secret id and a token", func(c *Config) {
			c.Auth = Auth{Method: "approle", RoleID: config.Secret{Ref: "role"}, SecretID: config.Secret{Ref: "s3cr3t"}, Token: config.Secret{Ref: "env:T"}}
		}, []string{"auth.secret_id", "auth.token"}},
		{"kubernetes without role", func(c *Config) { c.Auth = Auth{Method: "kubernetes"} }, []string{"auth.role"}},
		{"token with role id", func(c *Config) { c.Auth = Auth{RoleID: config.Secret{Ref: "env:R"}} }, []string{"auth.role_id"}},
		{"unknown method", func(c *Config) { c.Auth.Method = "ldap" }, []string{"auth.method"}},
		{"fields", func(c *Config) {
			c.Key, c.Fields = "", map[string]string{"id": "access_key_id", "secret": "secret_access_key"}
		}, nil},
		{"fields and key", func(c *Config) { c.Fields = map[string]string{"id": "a", "secret": "b"} }, []string{"fields"}},
		{"fields sharing a place", func(c *Config) { c.Key, c.Fields = "", map[string]string{"id": "a", "secret": "a"} }, []string{"fields.secret"}},
		{"empty fields", func(c *Config) { c.Key, c.Fields = "", map[string]string{} }, []string{"fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			var got []string
			var es config.Errors
			if errors.As(err, &es) {
				for _, e := range es {
					got = append(got, e.Field)
				}
			} else if err != nil {
				t.Fatalf("Validate returned %T, want config.Errors: %v", err, err)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("error fields = %v, want %v (err: %v)", got, tt.fields, err)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "hvs.literal")) {
				t.Errorf("validation error shows a literal secret: %v", err)
			}
		})
	}
}

func TestNewPicksTypeByVersionWithoutNetwork(t *testing.T) {
	// Nothing listens on this address: New must not dial it.
	c := Config{Address: "http://127.0.0.1:1", Mount: "/kv/", Path: "app/db/", Key: "api_key"}
	s2, err := New(c, zap.NewNop())
	if err != nil {
		t.Fatalf("New(v2): %v", err)
	}
	defer s2.(sinks.Closer).Close()
	if _, ok := s2.(*Sink); !ok {
		t.Errorf("New with kv_version 2 returned %T, want *Sink", s2)
	}
	if _, ok := s2.(sinks.Rollbacker); !ok {
		t.Errorf("KV v2 sink is not a Rollbacker")
	}
	if got, want := s2.Name(), "vault-kv:kv/app/db#api_key"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}

	c.KVVersion = 1
	s1, err := New(c, zap.NewNop())
	if err != nil {
		t.Fatalf("New(v1): %v", err)
	}
	if _, ok := s1.(sinks.Rollbacker); ok {
		t.Errorf("KV v1 sink %T is a Rollbacker; the engine must roll it back with a put", s1)
	}
	if _, ok := s1.(sinks.Reader); !ok {
		t.Errorf("KV v1 sink is not a Reader")
	}
}

func TestNewNeedsAddress(t *testing.T) {
	_, err := newConn(Config{Mount: "kv", Path: "p", Key: "k"}, nil, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "VAULT_ADDR") {
		t.Fatalf("New without address or VAULT_ADDR: err = %v, want one naming VAULT_ADDR", err)
	}
	cn, err := newConn(Config{Mount: "kv", Path: "p", Key: "k"}, nil, func(k string) string {
		return map[string]string{"VAULT_ADDR": "https://vault.example:8200/"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cn.cfg.Address != "https://vault.example:8200" || cn.cfg.Auth.Token.Ref != "env:VAULT_TOKEN" {
		t.Errorf("defaults: address %q token %q", cn.cfg.Address, cn.cfg.Auth.Token.Ref)
	}
}

func TestTLSSkipVerifyWarns(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	_, err := New(Config{Address: "https://127.0.0.1:1", Mount: "kv", Path: "p", Key: "k", TLSSkipVerify: true}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("verification").Len() != 1 {
		t.Errorf("no warning logged for tls_skip_verify; logs: %v", logs.All())
	}
}

func TestBadCACertFailsInNew(t *testing.T) {
	_, err := New(Config{Address: "https://127.0.0.1:1", Mount: "kv", Path: "p", Key: "k", CACert: filepath.Join(t.TempDir(), "missing.pem")}, nil)
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("New with a missing ca_cert: err = %v, want a tls error", err)
	}
}

// fakeVault answers the few endpoints the sink uses, as Vault does; it
// records the token each request carried.
type fakeVault struct {
	t      *testing.T
	mu     sync.Mutex
	tokens map[string]string // path → X-Vault-Token
	sealed bool
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokens[r.URL.Path] = r.Header.Get("X-Vault-Token")
	sealed := f.sealed
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	reply := func(code int, body any) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	if sealed {
		reply(http.StatusServiceUnavailable, map[string]any{"errors": []string{"Vault is sealed"}})
		return
	}
	switch r.URL.Path {
	case "/v1/auth/k8s-prod/login":
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in["role"] != "rekey" || in["jwt"] != "the-sa-jwt" {
			reply(http.StatusBadRequest, map[string]any{"errors": []string{"invalid role or jwt"}})
			return
		}
		reply(http.StatusOK, map[string]any{"auth": map[string]any{"client_token": "k8s-issued-token", "renewable": false, "lease_duration": 0}})
	case "/v1/sys/internal/ui/mounts/kv/app":
		reply(http.StatusOK, map[string]any{"data": map[string]any{"path": "kv/", "type": "kv", "options": map[string]any{"version": "2"}}})
	case "/v1/kv/data/app":
		reply(http.StatusNotFound, map[string]any{"errors": []string{}})
	case "/v1/sys/capabilities-self":
		reply(http.StatusOK, map[string]any{"capabilities": []string{"create", "read", "update"}, "kv/data/app": []string{"create", "read", "update"}})
	default:
		reply(http.StatusNotFound, map[string]any{"errors": []string{"no handler for route"}})
	}
}

func TestKubernetesLoginUsesTokenFileAndMount(t *testing.T) {
	f := &fakeVault{t: t, tokens: map[string]string{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	jwt := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwt, []byte("the-sa-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Address: srv.URL, Mount: "kv", Path: "app", Key: "k",
		Auth: Auth{Method: "kubernetes", Role: "rekey", TokenPath: jwt, Mount: "k8s-prod"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(sinks.Closer).Close()
	if err := s.(sinks.Preflighter).Preflight(context.Background()); err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	if _, err := s.(sinks.Reader).Get(context.Background()); !errors.Is(err, sinks.ErrNotFound) {
		t.Fatalf("Get: err = %v, want ErrNotFound", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.tokens["/v1/kv/data/app"]; got != "k8s-issued-token" {
		t.Errorf("data read carried token %q, want the one the kubernetes login issued", got)
	}
}

func TestSealedVaultIsAClearPermanentError(t *testing.T) {
	f := &fakeVault{t: t, tokens: map[string]string{}, sealed: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("REKEY_TEST_VAULT_TOKEN", "root")
	s, err := New(Config{Address: srv.URL, Mount: "kv", Path: "app", Key: "k", Auth: Auth{Token: config.Secret{Ref: "env:REKEY_TEST_VAULT_TOKEN"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.(sinks.Reader).Get(context.Background())
	if err == nil {
		t.Fatal("Get on a sealed Vault succeeded")
	}
	if !errors.As(err, new(*backoff.PermanentError)) {
		t.Errorf("sealed Vault error is not permanent: %v", err)
	}
	for _, want := range []string{"sealed", srv.URL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

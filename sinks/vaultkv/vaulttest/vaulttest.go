// Package vaulttest runs a real Vault core in-process for rekey's tests. It
// is a separate module so that Vault's dependency tree stays out of rekey's
// go.mod; its tests check sinks/vaultkv against that core.
package vaulttest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// KV2Mount is where Start mounts a KV version 2 engine. "secret/" is the
// test core's KV version 1 mount.
const (
	KV2Mount = "kv"
	KV1Mount = "secret"
)

// Server is an unsealed Vault core serving its HTTP API on loopback.
type Server struct {
	// Addr is the API address, e.g. http://127.0.0.1:34567.
	Addr string
	// RootToken may do anything.
	RootToken string
	// Core is the Vault core, e.g. to Seal it.
	Core *vault.Core
	// Root is a client logged in with RootToken.
	Root *api.Client
}

// Start starts a Vault core with AppRole auth available and a KV v2 engine
// at KV2Mount, stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	core, _, root := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		CredentialBackends: map[string]logical.Factory{"approle": credAppRole.Factory},
	})
	ln, addr := vaulthttp.TestServer(t, core)
	t.Cleanup(func() { ln.Close() })
	s := &Server{Addr: addr, RootToken: root, Core: core}
	s.Root = s.Client(t, root)
	if err := s.Root.Sys().Mount(KV2Mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("vaulttest: mount KV v2: %v", err)
	}
	// A new KV v2 mount answers once its upgrade check is done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Root.KVv2(KV2Mount).Put(context.Background(), "vaulttest/ready", map[string]any{"ok": "yes"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: KV v2 mount never became writable: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Client returns a client of the server using token (none when "").
func (s *Server) Client(t testing.TB, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vaulttest: client: %v", err)
	}
	c.ClearToken()
	if token != "" {
		c.SetToken(token)
	}
	return c
}

// Policy writes policy name from an HCL file, replacing each old path with
// its new one (pairs of old, new), and returns the text written.
func (s *Server) Policy(t testing.TB, name, file string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	text := strings.NewReplacer(replace...).Replace(string(b))
	if err := s.Root.Sys().PutPolicy(name, text); err != nil {
		t.Fatalf("vaulttest: put policy %s: %v", name, err)
	}
	return text
}

// Token creates a token with the given policies and TTL ("" for the
// default), renewable, and returns it.
func (s *Server) Token(t testing.TB, ttl string, policies ...string) string {
	t.Helper()
	sec, err := s.Root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies:       policies,
		TTL:            ttl,
		ExplicitMaxTTL: "1h",
		Renewable:      boolPtr(true),
	})
	if err != nil {
		t.Fatalf("vaulttest: create token: %v", err)
	}
	return sec.Auth.ClientToken
}

// SecretFile writes value to a new 0600 file and returns "file:PATH", the
// form rekey's config takes a secret in.
func SecretFile(t testing.TB, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func boolPtr(b bool) *bool { return &b }

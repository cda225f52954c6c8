// Package vaultkv is the `type: vault-kv` sink: it keeps a key in one field
// of a secret in HashiCorp Vault's KV secrets engine, version 2 (default) or
// version 1, keeping the secret's other fields.
//
// New builds the client without touching the network; the sink logs in on
// first use (token, AppRole or Kubernetes auth), keeps its token alive with
// Vault's LifetimeWatcher, and logs in again once the token can no longer
// be renewed. Before the first read or write it checks, through Vault's
// sys/internal/ui/mounts endpoint, that the mount exists and runs the
// configured KV version, so a wrong kv_version never writes to a wrong path.
//
// On KV v2 the sink is a Rollbacker (*Sink); on KV v1 it is not (*SinkV1)
// and the rotation engine rolls it back with a Put of the journaled old
// value.
package vaultkv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/sinks"
)

// ErrConflict is returned (wrapped, retryable) when concurrent writers kept
// changing the secret between the sink's read and its check-and-set write.
var ErrConflict = errors.New("vaultkv: the secret kept changing under check-and-set")

// casAttempts bounds the read → check-and-set write loop.
const casAttempts = 5

// requestTimeout bounds one HTTP request to Vault.
const requestTimeout = 30 * time.Second

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.Reader      = (*Sink)(nil)
	_ sinks.Rollbacker  = (*Sink)(nil)
	_ sinks.Preflighter = (*Sink)(nil)
	_ sinks.Closer      = (*Sink)(nil)

	_ sinks.Sink        = (*SinkV1)(nil)
	_ sinks.Reader      = (*SinkV1)(nil)
	_ sinks.Preflighter = (*SinkV1)(nil)
	_ sinks.Closer      = (*SinkV1)(nil)
)

// New returns the sink for c: a *Sink for KV v2, a *SinkV1 for KV v1. Go
// cannot make one type a Rollbacker only sometimes, and the engine finds
// rollback support by type assertion, so the two versions are two types.
// New checks c, reads TLS files and builds the client; it does not contact
// Vault. Close the sink to stop its token renewal.
func New(c Config, log *zap.Logger) (sinks.Sink, error) {
	cn, err := newConn(c, log, os.Getenv)
	if err != nil {
		return nil, err
	}
	if cn.cfg.KVVersion == 1 {
		return &SinkV1{cn}, nil
	}
	return &Sink{cn}, nil
}

// conn is what both versions share: the client, the login state and the
// mount check.
type conn struct {
	cfg    Config
	log    *zap.Logger
	client *api.Client
	name   string

	mu       sync.Mutex
	authed   bool // holds a token that has not stopped renewing
	mountOK  bool // mount exists and runs cfg.KVVersion
	watcher  *api.LifetimeWatcher
	closed   bool
	watchers sync.WaitGroup
}

func newConn(c Config, log *zap.Logger, env func(string) string) (*conn, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("vaultkv: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	c = c.withDefaults(env)
	if c.Address == "" {
		return nil, errors.New("vaultkv: no address: set address or VAULT_ADDR")
	}
	name := "vault-kv:" + c.Mount + "/" + c.Path + "#" + c.placeName()
	log = log.WithLazy(zap.String("sink", name)) // every sink names itself once, encoded on its first line

	// Built by hand rather than from api.DefaultConfig, which reads
	// VAULT_SKIP_VERIFY and friends from the environment: TLS verification
	// is on unless the config itself turns it off.
	tr := cleanhttp.DefaultPooledTransport()
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	vc := &api.Config{
		Address: c.Address,
		HttpClient: &http.Client{
			Transport: tr,
			// The api client handles Vault's redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:    requestTimeout,
		MaxRetries: 0, // the rotation engine retries; a sealed Vault must fail fast
	}
	if err := vc.ConfigureTLS(&api.TLSConfig{
		CACert:        c.CACert,
		CAPath:        c.CAPath,
		TLSServerName: c.TLSServerName,
		Insecure:      c.TLSSkipVerify,
	}); err != nil {
		return nil, fmt.Errorf("vaultkv: %s: tls: %w", name, err)
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vaultkv: %s: %w", name, err)
	}
	// NewClient picks up VAULT_TOKEN and VAULT_NAMESPACE; only the config
	// decides both.
	client.ClearToken()
	client.ClearNamespace()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	if c.TLSSkipVerify {
		log.Warn("TLS certificate verification of Vault is off (tls_skip_verify)", zap.String("address", c.Address))
	}
	return &conn{cfg: c, log: log, client: client, name: name}, nil
}

// Name is "vault-kv:MOUNT/PATH#KEY".
func (c *conn) Name() string { return c.name }

func (c *conn) String() string   { return c.name }
func (c *conn) GoString() string { return "vaultkv(" + c.name + ")" }

// Close stops token renewal. The sink cannot be used afterwards.
func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	w := c.watcher
	c.watcher = nil
	c.authed = false
	c.mu.Unlock()
	if w != nil {
		w.Stop()
	}
	c.watchers.Wait()
	return nil
}

// ready logs in and checks the mount, once; after a token stops renewing it
// logs in again.
func (c *conn) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backoff.Permanent(fmt.Errorf("vaultkv: %s: sink is closed", c.name))
	}
	if !c.authed {
		if err := c.login(ctx); err != nil {
			return err
		}
	}
	if !c.mountOK {
		if err := c.checkMount(ctx); err != nil {
			return err
		}
		c.mountOK = true
	}
	return nil
}

// checkMount asks Vault which mount serves the path and what it runs.
// Vault answers 403 alike for a missing mount and one the token may not see.
func (c *conn) checkMount(ctx context.Context) error {
	p := "sys/internal/ui/mounts/" + c.cfg.Mount + "/" + c.cfg.Path
	sec, err := c.client.Logical().ReadWithContext(ctx, p)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return c.permanent(err, "check mount: mount %q at %s does not exist or the token may not use it", c.cfg.Mount, c.cfg.Address)
		}
		return c.classify("check mount", c.cfg.Mount, err)
	}
	if sec == nil || sec.Data == nil {
		return c.permanent(nil, "check mount: mount %q not found at %s", c.cfg.Mount, c.cfg.Address)
	}
	if got := trimSlashes(fmt.Sprint(sec.Data["path"])); got != c.cfg.Mount {
		return c.permanent(nil, "check mount: %s/%s is served by mount %q at %s, not mount %q", c.cfg.Mount, c.cfg.Path, got, c.cfg.Address, c.cfg.Mount)
	}
	typ, _ := sec.Data["type"].(string)
	if typ != "kv" && typ != "generic" {
		return c.permanent(nil, "check mount: mount %q at %s is a %q engine, not kv", c.cfg.Mount, c.cfg.Address, typ)
	}
	version := 1
	if opts, ok := sec.Data["options"].(map[string]any); ok && fmt.Sprint(opts["version"]) == "2" {
		version = 2
	}
	if version != c.cfg.KVVersion {
		return c.permanent(nil, "check mount: mount %q at %s is KV version %d but kv_version is %d", c.cfg.Mount, c.cfg.Address, version, c.cfg.KVVersion)
	}
	return nil
}

// vaultError carries a short message in front of the SDK's error.
type vaultError struct {
	msg string
	err error
}

func (e *vaultError) Error() string { return e.msg }
func (e *vaultError) Unwrap() error { return e.err }

// permanent builds a permanent error naming the sink, address, mount and path.
func (c *conn) permanent(cause error, format string, args ...any) error {
	msg := "vaultkv: " + c.name + ": " + fmt.Sprintf(format, args...)
	if d := detail(cause); d != "" {
		msg += " (vault: " + d + ")"
	}
	return backoff.Permanent(&vaultError{msg: msg, err: cause})
}

// classify turns an error of a request for op on Vault path p into a clear
// error: permanent for what retrying cannot fix, plain otherwise.
func (c *conn) classify(op, p string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vaultkv: %s %s: %w", op, p, err)
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("vaultkv: %s %s at %s: %w", op, p, c.cfg.Address, err)
	}
	where := fmt.Sprintf("%s (address %s, mount %q)", p, c.cfg.Address, c.cfg.Mount)
	switch {
	case re.StatusCode == http.StatusForbidden:
		return c.permanent(err, "%s %s: permission denied: check the token's policy", op, where)
	case re.StatusCode == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(detail(err)), "sealed"):
		return c.permanent(err, "%s %s: Vault is sealed", op, where)
	case re.StatusCode == http.StatusNotFound && strings.Contains(detail(err), "no handler for route"):
		return c.permanent(err, "%s %s: mount not found", op, where)
	case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
		return &vaultError{msg: fmt.Sprintf("vaultkv: %s %s: HTTP %d (vault: %s)", op, where, re.StatusCode, detail(err)), err: err}
	}
	return c.permanent(err, "%s %s: HTTP %d", op, where, re.StatusCode)
}

// detail is the error list Vault returned, on one line.
func detail(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		var parts []string
		for _, e := range re.Errors {
			for _, line := range strings.Split(e, "\n") {
				if line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*")); line != "" && !strings.HasSuffix(line, "error occurred:") {
					parts = append(parts, line)
				}
			}
		}
		return strings.Join(parts, "; ")
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// isCASMismatch reports Vault refusing a check-and-set write.
func isCASMismatch(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(detail(err), "check-and-set")
}

// field returns data[key] when it is a string.
func copyData(data map[string]any) map[string]any {
	out := make(map[string]any, len(data)+1)
	for k, v := range data {
		out[k] = v
	}
	return out
}

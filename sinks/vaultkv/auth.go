package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"go.uber.org/zap"
)

// login gets a token by the configured method and starts renewing it when
// it is renewable. Credentials are read from their env:/file: references at
// each login, so a rotated secret_id or token file is picked up. c.mu is held.
func (c *conn) login(ctx context.Context) error {
	a := c.cfg.Auth
	var (
		sec *api.Secret
		err error
	)
	switch a.Method {
	case MethodToken:
		sec, err = c.loginToken(ctx)
	case MethodAppRole:
		sec, err = c.loginWith(ctx, func() (api.AuthMethod, error) {
			roleID, err := a.RoleID.Resolve()
			if err != nil {
				return nil, err
			}
			secretID, err := a.SecretID.Resolve()
			if err != nil {
				return nil, err
			}
			return approle.NewAppRoleAuth(roleID.Reveal(), &approle.SecretID{FromString: secretID.Reveal()}, approle.WithMountPath(a.Mount))
		})
	case MethodKubernetes:
		sec, err = c.loginWith(ctx, func() (api.AuthMethod, error) {
			// Read here, trimmed, at each login: the kubelet rotates the file.
			jwt, err := os.ReadFile(a.TokenPath)
			if err != nil {
				return nil, err
			}
			return kubernetes.NewKubernetesAuth(a.Role, kubernetes.WithServiceAccountToken(strings.TrimSpace(string(jwt))), kubernetes.WithMountPath(a.Mount))
		})
	default:
		err = backoff.Permanent(fmt.Errorf("vaultkv: %s: unknown auth method %q", c.name, a.Method))
	}
	if err != nil {
		return err
	}
	c.authed = true
	if sec != nil && sec.Auth != nil && sec.Auth.Renewable && sec.Auth.LeaseDuration > 0 {
		if err := c.watch(sec); err != nil {
			c.log.Warn("cannot renew the Vault token; logging in again when it expires", zap.Error(err))
		}
	}
	c.log.Debug("logged in to Vault", zap.String("method", a.Method), zap.String("address", c.cfg.Address))
	return nil
}

// loginToken sets the configured token and looks it up to learn whether it
// can be renewed. A token that may not look itself up is used as is.
func (c *conn) loginToken(ctx context.Context) (*api.Secret, error) {
	tok, err := c.cfg.Auth.Token.Resolve()
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("vaultkv: %s: auth.token: %w", c.name, err))
	}
	c.client.SetToken(tok.Reveal())
	self, err := c.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			c.log.Debug("Vault token cannot look itself up; not renewing it")
			return nil, nil
		}
		return nil, c.classify("login", "auth/token/lookup-self", err)
	}
	renewable, _ := self.TokenIsRenewable()
	ttl, _ := self.TokenTTL()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   tok.Reveal(),
		Renewable:     renewable,
		LeaseDuration: int(ttl.Seconds()),
	}}, nil
}

// loginWith logs in through an api/auth method; newMethod reads the
// credentials.
func (c *conn) loginWith(ctx context.Context, newMethod func() (api.AuthMethod, error)) (*api.Secret, error) {
	m, err := newMethod()
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("vaultkv: %s: %s login: %w", c.name, c.cfg.Auth.Method, err))
	}
	c.client.ClearToken() // an expired token must not ride along on the login
	sec, err := c.client.Auth().Login(ctx, m)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			return nil, c.classify(c.cfg.Auth.Method+" login", "auth/"+c.cfg.Auth.Mount+"/login", err)
		}
		// The auth modules wrap the response error with %v or read a
		// file; neither holds a credential.
		return nil, fmt.Errorf("vaultkv: %s: %s login at %s: %w", c.name, c.cfg.Auth.Method, c.cfg.Address, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vaultkv: %s: %s login at %s returned no token", c.name, c.cfg.Auth.Method, c.cfg.Address)
	}
	return sec, nil
}

// watch renews the token in sec until it can no longer be renewed, then
// marks the sink logged out so that its next use logs in again. c.mu is held.
func (c *conn) watch(sec *api.Secret) error {
	w, err := c.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{
		Secret:        sec,
		RenewBehavior: api.RenewBehaviorErrorOnErrors,
	})
	if err != nil {
		return err
	}
	if old := c.watcher; old != nil {
		old.Stop()
	}
	c.watcher = w
	c.watchers.Add(2)
	go func() {
		defer c.watchers.Done()
		w.Start()
	}()
	go func() {
		defer c.watchers.Done()
		for {
			select {
			case err := <-w.DoneCh():
				c.mu.Lock()
				current := c.watcher == w
				if current {
					c.watcher = nil
					c.authed = false
				}
				closed := c.closed
				c.mu.Unlock()
				if current && !closed {
					c.log.Info("Vault token renewal stopped; logging in again on next use", zap.Error(err))
				}
				return
			case r := <-w.RenewCh():
				ttl := 0
				if r != nil && r.Secret != nil && r.Secret.Auth != nil {
					ttl = r.Secret.Auth.LeaseDuration
				}
				c.log.Debug("Vault token renewed", zap.Int("ttl_seconds", ttl))
			}
		}
	}()
	return nil
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/etcdstore"
	"github.com/rekeyhq/rekey/rotation/journalcrypto"
	"github.com/rekeyhq/rekey/rotation/sqlite"
)

// journal is what the commands need of a Store: rotation.Store, and a
// count of a credential's history for `history`'s hint.
type journal interface {
	rotation.Store
	Count(ctx context.Context, credential string) (int, error)
}

var (
	_ journal = (*sqlite.Store)(nil)
	_ journal = (*etcdstore.Store)(nil)
)

// stateKey resolves and decodes state.encryption_key; a problem is a usage
// error (exit 2).
func stateKey(cfg *config.Config) ([]byte, error) {
	keyText, err := cfg.State.EncryptionKey.ResolvePrivate()
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("state.encryption_key: %w", err))
	}
	key, err := journalcrypto.DecodeKey(keyText.Reveal())
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("state.encryption_key (%s): %w", cfg.State.EncryptionKey, err))
	}
	return key, nil
}

// openStore opens the journal of cfg's state.backend: the one switch
// that knows every Store.
func (a *app) openStore(ctx context.Context, cfg *config.Config, key []byte) (journal, error) {
	switch cfg.State.Backend {
	case config.BackendEtcd:
		cc, opt, err := etcdConfig(cfg.State.Etcd)
		if err != nil {
			return nil, fail(exitUsage, err)
		}
		s, err := etcdstore.Open(ctx, cc, key, opt, a.log.Named("etcd"))
		if err != nil {
			return nil, fail(exitFailed, err)
		}
		return s, nil
	default:
		s, err := sqlite.Open(ctx, cfg.State.Path, key)
		if err != nil {
			return nil, fail(exitFailed, err)
		}
		return s, nil
	}
}

// etcdConfig turns state.etcd into the store's client config and options,
// reading the username and password.
func etcdConfig(e *config.Etcd) (etcdstore.ClientConfig, etcdstore.Options, error) {
	cc := etcdstore.ClientConfig{Endpoints: e.Endpoints, CACert: e.CACert, Cert: e.Cert, Key: e.Key,
		DialTimeout: time.Duration(e.DialTimeout)}
	if e.Username.IsSet() {
		user, err := e.Username.Resolve()
		if err != nil {
			return cc, etcdstore.Options{}, fmt.Errorf("state.etcd.username: %w", err)
		}
		var pass secret.Value
		if pass, err = e.Password.ResolvePrivate(); err != nil {
			return cc, etcdstore.Options{}, fmt.Errorf("state.etcd.password: %w", err)
		}
		cc.Username, cc.Password = user.Reveal(), pass
	}
	return cc, etcdstore.Options{Prefix: e.Prefix, LockTTL: time.Duration(e.LockTTL), RequestTimeout: time.Duration(e.RequestTimeout)}, nil
}

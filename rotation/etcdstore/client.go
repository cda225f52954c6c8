package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
)

// DefaultDialTimeout bounds how long Open waits for a first connection.
const DefaultDialTimeout = 5 * time.Second

// ClientConfig says how to reach the etcd cluster.
type ClientConfig struct {
	Endpoints []string
	// CACert, Cert and Key are PEM file paths: the CA that signed the
	// servers' certificates, and the client's certificate and key for
	// client-certificate authentication. Any set turns TLS on.
	CACert, Cert, Key string
	// Username and Password log in to etcd's own authentication.
	Username string
	Password secret.Value
	// DialTimeout bounds the first connection (default DefaultDialTimeout).
	DialTimeout time.Duration
}

// Dial returns a client of the cluster cc names. It fails at once on a bad
// TLS file; clientv3 connects in the background, so an unreachable cluster
// shows at the first request (New's key check). Errors never hold the
// password.
func Dial(ctx context.Context, cc ClientConfig, log *zap.Logger) (*clientv3.Client, error) {
	if len(cc.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no endpoints")
	}
	if (cc.Cert == "") != (cc.Key == "") {
		return nil, errors.New("etcdstore: a client certificate needs both cert and key")
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg := clientv3.Config{
		Endpoints:   cc.Endpoints,
		DialTimeout: cc.DialTimeout,
		Username:    cc.Username,
		Password:    cc.Password.Reveal(),
		Context:     context.WithoutCancel(ctx),
		Logger:      log,
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cc.CACert != "" || cc.Cert != "" {
		info := transport.TLSInfo{TrustedCAFile: cc.CACert, CertFile: cc.Cert, KeyFile: cc.Key}
		var tlsCfg *tls.Config
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcdstore: tls: %w", err)
		}
		cfg.TLS = tlsCfg
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connect %v: %w", cc.Endpoints, secret.Scrub(err, cc.Password))
	}
	return cli, nil
}

// Open dials the cluster and returns a Store on it that closes its client
// on Close (see New).
func Open(ctx context.Context, cc ClientConfig, key []byte, opt Options, log *zap.Logger) (*Store, error) {
	cli, err := Dial(ctx, cc, log)
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, cli, key, opt)
	if err != nil {
		cli.Close()
		return nil, err
	}
	s.ownsCli = true
	return s, nil
}

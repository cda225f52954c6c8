// Package config reads rekey's YAML configuration (version 1): strict
// decoding (unknown keys are errors), defaults, validation of every field,
// and env:/file: secret references. Every error names file:line and the
// field path, e.g. "rekey.yaml:14: credentials.production-api.monitor.window: ...".
//
// Issuer and sink entries are decoded by the back-end packages themselves
// through IssuerSpec.Decode and SinkSpec.Decode, so that only cmd/rekey
// knows every issuer and sink type (see Backends).
package config

import (
	"time"
)

// Config is a whole configuration file.
type Config struct {
	Version     int                    `yaml:"version"`
	State       State                  `yaml:"state"`
	Issuers     map[string]*IssuerSpec `yaml:"issuers"`
	Credentials map[string]*Credential `yaml:"credentials"`
	Notify      []*Notifier            `yaml:"notify"`
	Daemon      Daemon                 `yaml:"daemon"`

	// File is the path the config was read from.
	File string `yaml:"-"`

	secretEnv *[]string   // SecretEnv, computed by Load before it drops the entries' YAML
	secrets   []SecretRef // the secret fields outside issuer and sink entries
}

// State is where the journal lives and how its key material is encrypted.
type State struct {
	// Backend is the journal's store: "sqlite" (the default) or "etcd".
	Backend string `yaml:"backend"`
	// Path of the SQLite journal; default /var/lib/rekey/state.db. The
	// local audit log is <Path>.audit.jsonl on either backend: with etcd
	// no journal file is made there, Path only places the audit log.
	Path string `yaml:"path"`
	// EncryptionKey resolves to 32 bytes, base64-encoded (AES-256-GCM).
	EncryptionKey Secret `yaml:"encryption_key"`
	// Etcd is the cluster of backend etcd; only with that backend.
	Etcd *Etcd `yaml:"etcd"`
}

// Backends of state.backend.
const (
	BackendSQLite = "sqlite"
	BackendEtcd   = "etcd"
)

// Etcd is how to reach the etcd cluster holding a shared journal.
type Etcd struct {
	// Endpoints are the members' client URLs (http:// or https://).
	Endpoints []string `yaml:"endpoints"`
	// Prefix is prepended to every key; default /rekey/. Two prefixes are
	// two journals.
	Prefix string `yaml:"prefix"`
	// CACert, Cert and Key are PEM file paths: the CA of the servers'
	// certificates, and a client certificate and its key.
	CACert string `yaml:"ca_cert"`
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
	// Username and Password log in to etcd's authentication (env:/file:).
	Username Secret `yaml:"username"`
	Password Secret `yaml:"password"`
	// DialTimeout bounds the first connection; default 5s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds each request; default 10s.
	RequestTimeout Duration `yaml:"request_timeout"`
	// LockTTL is the lease of a credential's lock: a holder that dies or
	// loses touch with etcd keeps the lock this long, then another rekey
	// may take it and resume. Whole seconds, at least 2s; default 15s.
	LockTTL Duration `yaml:"lock_ttl"`
}

// Credential is one key rekey keeps rotated.
type Credential struct {
	Name   string `yaml:"-"`
	Issuer string `yaml:"issuer"`
	// Label is the new key's label template; {{date}} expands to YYYYMMDD
	// and rekey appends "-" and the short rotation ID.
	Label       string   `yaml:"label"`
	RotateEvery Duration `yaml:"rotate_every"`
	// Window is an optional cron expression (5 fields) of the times a due
	// rotation may start, in Timezone (default UTC).
	Window   string `yaml:"window"`
	Timezone string `yaml:"timezone"`
	// KeyID names the key currently in the sinks at the issuer, for a first
	// rotation whose key cannot be identified by its prefix (I7).
	KeyID string `yaml:"key_id"`
	// StageTimeout bounds how long a --stage'd rotation waits for --finish.
	StageTimeout Duration   `yaml:"stage_timeout"`
	Sinks        []SinkSpec `yaml:"sinks"`
	Verify       Verify     `yaml:"verify"`
	Monitor      Monitor    `yaml:"monitor"`
	Drain        *Drain     `yaml:"drain"`

	loc *time.Location // Timezone, loaded by Load
}

// Verify is how long to keep trying the new key before giving up (new keys
// can take a moment to become valid).
type Verify struct {
	Timeout Duration `yaml:"timeout"` // default 2m
}

// Monitor is the window after deploy during which health checks must pass.
type Monitor struct {
	Window           Duration `yaml:"window"`            // default 10m
	Interval         Duration `yaml:"interval"`          // default 30s
	FailureThreshold int      `yaml:"failure_threshold"` // default 3 consecutive
	Checks           []Check  `yaml:"checks"`
}

// Check is one HTTP health check.
type Check struct {
	Name         string            `yaml:"name"`
	Method       string            `yaml:"method"` // default GET
	URL          string            `yaml:"url"`
	Headers      map[string]Secret `yaml:"headers"`       // literal, env: or file:
	ExpectStatus []int             `yaml:"expect_status"` // default [200]
	BodyContains string            `yaml:"body_contains"`
	BodyRegex    string            `yaml:"body_regex"`
	Timeout      Duration          `yaml:"timeout"` // default 5s
}

// Drain waits, before revoking, until the old key has been unused for
// IdleFor, giving up (and revoking anyway) after MaxWait.
type Drain struct {
	IdleFor Duration `yaml:"idle_for"`
	MaxWait Duration `yaml:"max_wait"`
}

// Notifier sends events to a webhook.
type Notifier struct {
	Type string   `yaml:"type"` // slack | webhook
	URL  Secret   `yaml:"url"`
	On   []string `yaml:"on"` // success | rollback | failure | overdue
}

// Daemon configures `rekey daemon` and the concurrency of `rekey run`.
type Daemon struct {
	Listen      string `yaml:"listen"`      // default 127.0.0.1:9464
	Concurrency int    `yaml:"concurrency"` // default 4
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

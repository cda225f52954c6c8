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
	// Path of the SQLite journal; default /var/lib/rekey/state.db.
	Path string `yaml:"path"`
	// EncryptionKey resolves to 32 bytes, base64-encoded (AES-256-GCM).
	EncryptionKey Secret `yaml:"encryption_key"`
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

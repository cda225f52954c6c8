package vaultkv

import (
	"net/url"
	"strings"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

// Type is the sink's type in configuration.
const Type = "vault-kv"

// Auth methods.
const (
	MethodToken      = "token"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
)

// DefaultKubernetesTokenPath is where a pod finds its service-account token.
const DefaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Config is one `type: vault-kv` sink entry.
type Config struct {
	// Address of Vault, e.g. https://vault.internal:8200; default $VAULT_ADDR.
	Address string `yaml:"address"`
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string `yaml:"namespace"`
	// Mount is the KV engine's mount path, e.g. "secret".
	Mount string `yaml:"mount"`
	// Path is the secret's path inside the mount, e.g. "crm/apexverify".
	Path string `yaml:"path"`
	// Key is the field of the secret that holds the key; other fields are kept.
	Key string `yaml:"key"`
	// Fields maps a multi-field credential's fields to fields of the
	// secret, e.g. {id: access_key_id, secret: secret_access_key}; instead
	// of Key. Every field is written in one KV write.
	Fields sinks.Fields `yaml:"fields"`
	// KVVersion is 2 (default) or 1, and must match the mount.
	KVVersion int `yaml:"kv_version"`

	// CACert is a PEM file of CAs to trust; CAPath a directory of them.
	CACert string `yaml:"ca_cert"`
	CAPath string `yaml:"ca_path"`
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string `yaml:"tls_server_name"`
	// TLSSkipVerify turns certificate verification off (logged as a warning).
	TLSSkipVerify bool `yaml:"tls_skip_verify"`

	Auth Auth `yaml:"auth"`
}

// Auth is how the sink logs in to Vault.
type Auth struct {
	// Method is token (default), approle or kubernetes.
	Method string `yaml:"method"`
	// Token is for the token method; default env:VAULT_TOKEN.
	Token config.Secret `yaml:"token"`
	// RoleID and SecretID are for approle. RoleID may be a literal; SecretID
	// must be env: or file:.
	RoleID   config.Secret `yaml:"role_id"`
	SecretID config.Secret `yaml:"secret_id"`
	// Role and TokenPath are for kubernetes; TokenPath defaults to
	// DefaultKubernetesTokenPath.
	Role      string `yaml:"role"`
	TokenPath string `yaml:"token_path"`
	// Mount is the auth method's mount path; default the method's name.
	Mount string `yaml:"mount"`
}

// Validate checks the entry without touching the network or the environment.
// Field paths are relative to the entry ("auth.role_id").
func (c Config) Validate() error {
	var errs config.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...).(*config.Error))
	}
	if c.Address != "" {
		if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("address", "want a URL such as https://vault.internal:8200")
		}
	}
	if trimSlashes(c.Mount) == "" {
		add("mount", "required (the KV engine's mount path, e.g. secret)")
	}
	if trimSlashes(c.Path) == "" {
		add("path", "required (the secret's path inside the mount)")
	}
	switch {
	case c.Fields != nil && c.Key != "":
		add("fields", "key and fields are mutually exclusive: key holds a single value, fields map a multi-field one")
	case c.Fields != nil:
		for _, err := range flattenJoin(c.Fields.Validate(nil)) {
			if ce, ok := err.(*config.Error); ok {
				errs = append(errs, ce)
			}
		}
	case c.Key == "":
		add("key", "required (the secret's field that holds the key)")
	}
	switch c.KVVersion {
	case 0, 1, 2:
	default:
		add("kv_version", "must be 1 or 2, got %d", c.KVVersion)
	}
	if c.CACert != "" && c.CAPath != "" {
		add("ca_path", "give ca_cert or ca_path, not both")
	}

	a := c.Auth
	// notFor flags fields given for another method: pairs of field, isSet.
	notFor := func(method string, pairs ...any) {
		for i := 0; i < len(pairs); i += 2 {
			if pairs[i+1].(bool) {
				add(pairs[i].(string), "not used by the %s auth method", method)
			}
		}
	}
	switch a.Method {
	case "", MethodToken:
		if a.Token.IsSet() {
			if err := a.Token.Check(false); err != nil {
				add("auth.token", "%v", err)
			}
		}
		notFor(MethodToken, "auth.role_id", a.RoleID.IsSet(), "auth.secret_id", a.SecretID.IsSet(), "auth.role", a.Role != "", "auth.token_path", a.TokenPath != "")
	case MethodAppRole:
		if err := a.RoleID.Check(true); err != nil {
			add("auth.role_id", "%v", err)
		}
		if err := a.SecretID.Check(false); err != nil {
			add("auth.secret_id", "%v", err)
		}
		notFor(MethodAppRole, "auth.token", a.Token.IsSet(), "auth.role", a.Role != "", "auth.token_path", a.TokenPath != "")
	case MethodKubernetes:
		if a.Role == "" {
			add("auth.role", "required for the kubernetes method")
		}
		notFor(MethodKubernetes, "auth.token", a.Token.IsSet(), "auth.role_id", a.RoleID.IsSet(), "auth.secret_id", a.SecretID.IsSet())
	default:
		add("auth.method", "must be token, approle or kubernetes, got %q", a.Method)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// withDefaults fills in what the entry left out; env is os.Getenv.
func (c Config) withDefaults(env func(string) string) Config {
	if c.Address == "" {
		c.Address = env("VAULT_ADDR")
	}
	c.Address = strings.TrimRight(c.Address, "/")
	c.Mount = trimSlashes(c.Mount)
	c.Path = trimSlashes(c.Path)
	c.Namespace = trimSlashes(c.Namespace)
	if c.KVVersion == 0 {
		c.KVVersion = 2
	}
	if c.Auth.Method == "" {
		c.Auth.Method = MethodToken
	}
	if c.Auth.Method == MethodToken && !c.Auth.Token.IsSet() {
		c.Auth.Token = config.Secret{Ref: "env:VAULT_TOKEN"}
	}
	if c.Auth.Method == MethodKubernetes && c.Auth.TokenPath == "" {
		c.Auth.TokenPath = DefaultKubernetesTokenPath
	}
	if c.Auth.Mount == "" && c.Auth.Method != MethodToken {
		c.Auth.Mount = c.Auth.Method
	}
	c.Auth.Mount = trimSlashes(c.Auth.Mount)
	return c
}

func trimSlashes(s string) string { return strings.Trim(strings.TrimSpace(s), "/") }

// flattenJoin returns the errors an errors.Join holds, or err alone.
func flattenJoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// MappedFields implements config.FieldMapper: the credential fields the
// sink maps, sorted; nil when it holds a single value.
func (c Config) MappedFields() []string { return c.Fields.MappedFields() }

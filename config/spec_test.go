package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// vaultish is a sink config of the shape sink packages use.
type vaultish struct {
	Address string `yaml:"address"`
	Path    string `yaml:"path"`
	Key     string `yaml:"key"`
	Auth    struct {
		Method string `yaml:"method"`
		RoleID Secret `yaml:"role_id"`
	} `yaml:"auth"`
	Retries int      `yaml:"retries"`
	Tags    []string `yaml:"tags"`
	Timeout Duration `yaml:"timeout"`
}

func (c *vaultish) Validate() error {
	var errs []error
	if c.Key == "" {
		errs = append(errs, Invalid("key", "required"))
	}
	if c.Auth.Method != "approle" {
		errs = append(errs, Invalid("auth.method", "must be approle"))
	}
	if err := c.Auth.RoleID.Check(false); err != nil {
		errs = append(errs, Invalid("auth.role_id", "%v", err))
	}
	if len(c.Tags) > 1 {
		errs = append(errs, Invalid("tags[1]", "only one tag"))
	}
	return errors.Join(errs...)
}

const sinkYAML = `version: 1
state:
  encryption_key: env:K
issuers:
  apex: {type: apexverify, management_token: env:T}
credentials:
  api:
    issuer: apex
    label: api
    rotate_every: 1d
    sinks:
      - type: file
        path: /x
      - type: vault-kv
        address: https://vault:8200
        path: a/b
        auth:
          method: token
          role_id: r0le-literal
        tags: [a, b]
`

func loadSinks(t *testing.T, data string) []SinkSpec {
	t.Helper()
	cfg, err := Parse("rekey.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Credentials["api"].Sinks
}

func TestSinkSpecDecodeValidate(t *testing.T) {
	s := loadSinks(t, sinkYAML)[1]
	if s.Type != "vault-kv" || s.Field != "credentials.api.sinks[1]" || s.Line != 14 || s.File != "rekey.yaml" {
		t.Fatalf("spec = %+v", s)
	}
	var c vaultish
	err := s.Decode(&c)
	want := strings.Join([]string{
		"rekey.yaml:14: credentials.api.sinks[1].key: required",
		"rekey.yaml:18: credentials.api.sinks[1].auth.method: must be approle",
		"rekey.yaml:19: credentials.api.sinks[1].auth.role_id: literal secret values are not allowed here; use env: or file: (e.g. env:NAME or file:/path)",
		"rekey.yaml:20: credentials.api.sinks[1].tags[1]: only one tag",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Decode error:\n%v\nwant:\n%s", err, want)
	}
	if strings.Contains(err.Error(), "r0le-literal") {
		t.Error("error leaks the literal")
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Fatalf("Decode error is not 4 Errors: %T", err)
	}
	var one *Error
	if !errors.As(err, &one) || one.Field != "credentials.api.sinks[1].key" || one.Line != 14 {
		t.Errorf("errors.As(*Error) = %+v", one)
	}
	// The fields decoded even though validation failed.
	if c.Address != "https://vault:8200" || c.Path != "a/b" || c.Auth.RoleID.Ref != "r0le-literal" || len(c.Tags) != 2 {
		t.Errorf("decoded %+v", c)
	}
}

func TestSinkSpecDecodeStrict(t *testing.T) {
	data := strings.Replace(sinkYAML, "        tags: [a, b]\n", "        tags: [a]\n        retries: many\n        timeout: 5x\n        colour: red\n", 1)
	data = strings.Replace(data, "method: token", "method: approle", 1)
	data = strings.Replace(data, "role_id: r0le-literal", "role_id: env:ROLE", 1)
	data = strings.Replace(data, "path: a/b", "path: a/b\n        key: api_key", 1)
	var c vaultish
	err := loadSinks(t, data)[1].Decode(&c)
	want := strings.Join([]string{
		"rekey.yaml:22: credentials.api.sinks[1].retries: expected an integer, got a string",
		`rekey.yaml:23: credentials.api.sinks[1].timeout: invalid duration "5x" (use e.g. 30s, 10m, 12h, 90d, 1d12h)`,
		"rekey.yaml:24: credentials.api.sinks[1].colour: unknown field (valid fields: address, path, key, auth, retries, tags, timeout)",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Decode error:\n%v\nwant:\n%s", err, want)
	}
}

func TestSinkSpecDecodeOK(t *testing.T) {
	s := loadSinks(t, sinkYAML)[0]
	var c struct {
		Path string `yaml:"path"`
	}
	if err := s.Decode(&c); err != nil || c.Path != "/x" {
		t.Fatalf("Decode = %+v, %v", c, err)
	}
	// A map receives every key but type.
	var m map[string]any
	if err := s.Decode(&m); err != nil || fmt.Sprint(m) != "map[path:/x]" {
		t.Fatalf("Decode into map = %v, %v", m, err)
	}
	if err := s.Decode(c); err == nil {
		t.Error("Decode into a non-pointer succeeded")
	}
}

// plainValidate returns errors that are not *Error.
type plainValidate struct {
	Path string `yaml:"path"`
}

func (plainValidate) Validate() error { return fmt.Errorf("file: path is a directory") }

func TestSinkSpecDecodePlainError(t *testing.T) {
	err := loadSinks(t, sinkYAML)[0].Decode(&plainValidate{})
	if err == nil || err.Error() != "rekey.yaml:12: credentials.api.sinks[0]: file: path is a directory" {
		t.Fatalf("Decode error = %v", err)
	}
}

func TestSinkSpecInline(t *testing.T) {
	type common struct {
		Key string `yaml:"key"`
	}
	var c struct {
		common `yaml:",inline"`
		Path   string `yaml:"path"`
	}
	data := strings.Replace(sinkYAML, "        path: /x\n", "        path: /x\n        key: K\n", 1)
	if err := loadSinks(t, data)[0].Decode(&c); err != nil || c.Key != "K" || c.Path != "/x" {
		t.Fatalf("Decode = %+v, %v", c, err)
	}
}

// issuerish is an issuer config of the shape issuer packages use.
type issuerish struct {
	URL     string   `yaml:"url"`
	Token   Secret   `yaml:"token"`
	Timeout Duration `yaml:"timeout"`
	Limit   int      `yaml:"limit"`
}

func (c *issuerish) SetDefaults() {
	c.URL, c.Timeout, c.Limit = "https://default", Duration(time.Second), 7
}

func (c *issuerish) Validate() error {
	var errs []error
	if c.Limit < 1 {
		errs = append(errs, Invalid("limit", "must be at least 1"))
	}
	if err := c.Token.Check(false); err != nil {
		errs = append(errs, Invalid("token", "%v", err))
	}
	return errors.Join(errs...)
}

const issuerYAML = `version: 1
state:
  encryption_key: env:K
issuers:
  a:
    type: acme
    token: env:A_TOKEN
  b:
    type: acme
    url: https://b
    timeout: null
    limit: 0
  c: {type: other}
credentials:
  api:
    issuer: a
    label: api
    rotate_every: 1d
    sinks:
      - {type: file, path: /x}
      - {type: s3, bucket: b}
`

func TestIssuerSpecDecode(t *testing.T) {
	cfg, err := Parse("rekey.yaml", []byte(issuerYAML))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Issuers["a"], cfg.Issuers["b"]
	if a.Name != "a" || a.Type != "acme" || a.Field != "issuers.a" || a.File != "rekey.yaml" || a.Line != 5 {
		t.Fatalf("spec a = %+v", a)
	}
	var ca issuerish
	if err := a.Decode(&ca); err != nil {
		t.Fatal(err)
	}
	if ca != (issuerish{URL: "https://default", Token: Secret{Ref: "env:A_TOKEN"}, Timeout: Duration(time.Second), Limit: 7}) {
		t.Errorf("a decoded %+v: absent keys should keep their defaults", ca)
	}
	var cb issuerish
	err = b.Decode(&cb)
	want := "rekey.yaml:8: issuers.b.token: required\nrekey.yaml:12: issuers.b.limit: must be at least 1"
	if err == nil || err.Error() != want {
		t.Errorf("b: Decode error:\n%v\nwant:\n%s", err, want)
	}
	if cb.URL != "https://b" || cb.Timeout != Duration(time.Second) {
		t.Errorf("b decoded %+v: a null key should keep its default", cb)
	}
	if got := fmt.Sprint(a.SecretEnv()); got != "[A_TOKEN K]" {
		t.Errorf("SecretEnv = %s", got)
	}
	if err := cfg.Issuers["c"].UnknownType(); err.Error() != `rekey.yaml:13: issuers.c.type: unknown issuer type "other"` {
		t.Errorf("UnknownType = %v", err)
	}
}

// ParseWith reports what the back-ends find with its own problems, one
// list sorted by line.
func TestParseWithBackends(t *testing.T) {
	var asked []string
	b := Backends{
		Issuer: func(s *IssuerSpec) (any, error) {
			asked = append(asked, s.Field)
			switch s.Type {
			case "acme":
				var c issuerish
				return c, s.Decode(&c)
			}
			return nil, s.UnknownType()
		},
		Sink: func(s *SinkSpec) (any, error) {
			asked = append(asked, s.Field)
			if s.Type == "file" {
				return nil, errors.New("plain error")
			}
			return nil, s.UnknownType()
		},
	}
	data := strings.Replace(issuerYAML, "rotate_every: 1d", "rotate_every: soon", 1)
	_, err := ParseWith("rekey.yaml", []byte(data), b)
	want := strings.Join([]string{
		"rekey.yaml:8: issuers.b.token: required",
		"rekey.yaml:12: issuers.b.limit: must be at least 1",
		`rekey.yaml:13: issuers.c.type: unknown issuer type "other"`,
		`rekey.yaml:18: credentials.api.rotate_every: invalid duration "soon" (use e.g. 30s, 10m, 12h, 90d, 1d12h)`,
		"rekey.yaml:20: credentials.api.sinks[0]: plain error",
		`rekey.yaml:21: credentials.api.sinks[1].type: unknown sink type "s3"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("ParseWith error:\n%v\nwant:\n%s", err, want)
	}
	if got := strings.Join(asked, " "); got != "issuers.a issuers.b issuers.c credentials.api.sinks[0] credentials.api.sinks[1]" {
		t.Errorf("asked about %s", got)
	}
	// Without back-ends only config's own problem is found.
	if _, err := Parse("rekey.yaml", []byte(data)); err == nil || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("Parse error: %v", err)
	}
}

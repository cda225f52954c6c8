package config

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// pairSink is a sink config that can map fields, as the back-ends' are.
type pairSink struct {
	Key    string            `yaml:"key"`
	Fields map[string]string `yaml:"fields"`
}

func (p pairSink) MappedFields() []string {
	if p.Fields == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(p.Fields))
}

var pairBackends = Backends{Sink: func(s *SinkSpec) (any, error) {
	var c pairSink
	err := s.Decode(&c)
	return c, err
}}

const fieldsConfig = `version: 1
state: {encryption_key: env:K}
issuers:
  aws: {type: aws-iam}
credentials:
  mixed:
    issuer: aws
    label: mixed
    rotate_every: 90d
    sinks:
      - type: file
        fields: {id: AWS_ACCESS_KEY_ID, secret: AWS_SECRET_ACCESS_KEY}
      - type: file
        key: API_KEY
      - type: file
        fields:
          id: A
          token: B
  pair:
    issuer: aws
    label: pair
    rotate_every: 90d
    sinks:
      - {type: file, fields: {id: A, secret: B}}
      - {type: vault, fields: {secret: s, id: i}}
  single:
    issuer: aws
    label: single
    rotate_every: 90d
    sinks:
      - {type: file, key: A}
      - {type: file, key: B}
`

func TestSinksOfACredentialMapTheSameFields(t *testing.T) {
	_, err := ParseWith("rekey.yaml", []byte(fieldsConfig), pairBackends)
	if err == nil {
		t.Fatal("a credential whose sinks disagree on fields loaded")
	}
	want := []string{
		`rekey.yaml:13: credentials.mixed.sinks[1]: holds a single value, but sinks[0] maps the fields id, secret: every sink of a credential must map the same fields`,
		`rekey.yaml:16: credentials.mixed.sinks[2].fields: maps the fields id, token, but sinks[0] maps id, secret`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\nlacks %q", err, w)
		}
	}
	if n := len(flatten(err)); n != len(want) {
		t.Errorf("%d problems, want %d (credentials pair and single agree):\n%v", n, len(want), err)
	}
}

func TestCredentialFields(t *testing.T) {
	good := strings.Replace(fieldsConfig, "        key: API_KEY\n", "        fields: {id: C, secret: D}\n", 1)
	good = strings.Replace(good, "          token: B", "          secret: B", 1)
	cfg, err := ParseWith("rekey.yaml", []byte(good), pairBackends)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"mixed": "id,secret", "pair": "id,secret", "single": ""} {
		if got := strings.Join(cfg.Credentials[name].Fields(), ","); got != want {
			t.Errorf("credential %s: Fields() = %q, want %q", name, got, want)
		}
	}
}

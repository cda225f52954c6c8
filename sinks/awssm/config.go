package awssm

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

// Type is the sink's type in configuration.
const Type = "aws-secretsmanager"

// Config is one aws-secretsmanager entry of a credential's sinks list.
//
//   - type: aws-secretsmanager
//     secret_id: prod/crm/apexverify   # name or ARN
//     key: api_key                     # a field of a JSON secret; omit for the whole string
//     region: us-east-1
type Config struct {
	// SecretID is the secret's name or ARN.
	SecretID string `yaml:"secret_id"`
	// Key names a top-level field of a JSON-object secret to set; empty
	// means the key is the whole SecretString.
	Key string `yaml:"key"`
	// Fields maps a multi-field credential's fields to top-level fields
	// of the JSON-object secret, e.g. {id: access_key_id, secret:
	// secret_access_key}; instead of Key. Every field is written in one
	// PutSecretValue, so a version never holds half a pair.
	Fields sinks.Fields `yaml:"fields"`

	// Region and Profile feed the SDK's default configuration chain; empty
	// means the chain's own choice (AWS_REGION, the profile's region, ...).
	Region  string `yaml:"region"`
	Profile string `yaml:"profile"`
	// RoleARN, if set, is assumed through STS on top of the default chain.
	RoleARN     string `yaml:"role_arn"`
	ExternalID  string `yaml:"external_id"`
	SessionName string `yaml:"session_name"`
	// Endpoint overrides the Secrets Manager endpoint (VPC endpoints, tests).
	Endpoint string `yaml:"endpoint"`

	// CreateIfMissing creates the secret on the first Put when it does not
	// exist, with KMSKeyID, Description and Tags.
	CreateIfMissing bool              `yaml:"create_if_missing"`
	KMSKeyID        string            `yaml:"kms_key_id"`
	Description     string            `yaml:"description"`
	Tags            map[string]string `yaml:"tags"`
}

var (
	regionRE      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	// The length limit is checked apart: a bounded repetition of 512 would
	// compile into a large program at every start of the binary.
	secretNameRE = regexp.MustCompile(`^[\w/+=.@-]+$`)
)

// Validate checks c without network access. Field names in its errors are
// relative to the sink entry.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}

	isARN := strings.HasPrefix(c.SecretID, "arn:")
	switch {
	case c.SecretID == "":
		bad("secret_id", "required")
	case isARN:
		if !strings.Contains(c.SecretID, ":secretsmanager:") || !strings.Contains(c.SecretID, ":secret:") {
			bad("secret_id", "%q is not a Secrets Manager secret ARN", c.SecretID)
		}
	case len(c.SecretID) > 512 || !secretNameRE.MatchString(c.SecretID):
		bad("secret_id", "%q is not a valid secret name (letters, digits and /_+=.@- only, at most 512)", c.SecretID)
	}
	if c.Key != "" && strings.TrimSpace(c.Key) != c.Key {
		bad("key", "%q has leading or trailing spaces", c.Key)
	}
	if c.Fields != nil {
		if c.Key != "" {
			bad("fields", "key and fields are mutually exclusive: key holds a single value, fields map a multi-field one")
		} else {
			errs = append(errs, c.Fields.Validate(func(pl string) error {
				if strings.TrimSpace(pl) != pl {
					return fmt.Errorf("%q has leading or trailing spaces", pl)
				}
				return nil
			}))
		}
	}
	if c.Region != "" && !regionRE.MatchString(c.Region) {
		bad("region", "%q is not an AWS region (e.g. us-east-1)", c.Region)
	}
	if c.RoleARN == "" {
		if c.ExternalID != "" {
			bad("external_id", "only used with role_arn")
		}
		if c.SessionName != "" {
			bad("session_name", "only used with role_arn")
		}
	} else if !strings.HasPrefix(c.RoleARN, "arn:") || !strings.Contains(c.RoleARN, ":iam::") || !strings.Contains(c.RoleARN, ":role/") {
		bad("role_arn", "%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", c.RoleARN)
	}
	if c.SessionName != "" && !sessionNameRE.MatchString(c.SessionName) {
		bad("session_name", "%q must be 2-64 characters of letters, digits and +=,.@_-", c.SessionName)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("endpoint", "%q is not an http(s) URL", c.Endpoint)
		}
	}
	if c.CreateIfMissing {
		if isARN {
			bad("create_if_missing", "needs secret_id to be a name, not an ARN (an ARN names an existing secret)")
		}
	} else {
		if c.KMSKeyID != "" {
			bad("kms_key_id", "only used with create_if_missing")
		}
		if c.Description != "" {
			bad("description", "only used with create_if_missing")
		}
		if len(c.Tags) > 0 {
			bad("tags", "only used with create_if_missing")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Tags)) {
		if k == "" || strings.HasPrefix(strings.ToLower(k), "aws:") {
			bad("tags", "tag key %q is empty or uses the reserved aws: prefix", k)
		}
	}
	return errors.Join(errs...)
}

// Name is the sink's name: "aws-secretsmanager:" + secret ID, plus "#" and
// the key in JSON field mode.
func (c *Config) Name() string {
	n := Type + ":" + c.SecretID
	if k := c.tokenKey(); k != "" {
		n += "#" + k
	}
	return n
}

// jsonMode reports whether the secret is a JSON object the sink sets
// fields of (key or fields), rather than one whole string.
func (c *Config) jsonMode() bool { return c.Key != "" || c.Fields != nil }

// tokenKey is what names the sink's part of the secret in Name and Token:
// the key, or the mapped places joined by ",".
func (c *Config) tokenKey() string {
	if c.Fields != nil {
		return strings.Join(c.Fields.Places(), ",")
	}
	return c.Key
}

// MappedFields implements config.FieldMapper: the credential fields the
// sink maps, sorted; nil when it holds a single value.
func (c Config) MappedFields() []string { return c.Fields.MappedFields() }

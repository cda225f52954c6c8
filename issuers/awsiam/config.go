package awsiam

import (
	"errors"
	"net/url"
	"regexp"
	"time"

	"github.com/rekeyhq/rekey/config"
)

// Type is the issuer's type in configuration.
const Type = "aws-iam"

// Defaults of the optional settings.
const (
	DefaultDeleteAfter   = 7 * 24 * time.Hour
	DefaultVerifyTimeout = 2 * time.Minute
	DefaultTimeout       = 10 * time.Second
)

// FileConfig is one `type: aws-iam` entry of the configuration's issuers,
// as written in the file:
//
//	issuers:
//	  ci-deployer:
//	    type: aws-iam
//	    user_name: ci-deployer          # the IAM user whose access keys rotate
//	    account_id: "123456789012"      # optional; binds the journal to the account
//	    region: us-east-1               # STS region; default the SDK chain's, else us-east-1
//	    profile: rekey-admin            # optional shared-config profile
//	    endpoint: http://127.0.0.1:4566 # optional IAM endpoint (tests, compatible services)
//	    sts_endpoint: ...               # optional; default endpoint
//	    delete_after: 7d                # a revoked (inactive) key is deleted after this; default
//	    verify_timeout: 2m              # how long a new key may take to reach STS; default
//	    timeout: 10s                    # per request; default
//
// rekey's own credentials (never the rotated key) come from the SDK's
// default chain, or the profile.
type FileConfig struct {
	UserName      string          `yaml:"user_name"`
	AccountID     string          `yaml:"account_id"`
	Region        string          `yaml:"region"`
	Profile       string          `yaml:"profile"`
	Endpoint      string          `yaml:"endpoint"`
	STSEndpoint   string          `yaml:"sts_endpoint"`
	DeleteAfter   config.Duration `yaml:"delete_after"`
	VerifyTimeout config.Duration `yaml:"verify_timeout"`
	Timeout       config.Duration `yaml:"timeout"`
}

var (
	userNameRE  = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	accountIDRE = regexp.MustCompile(`^\d{12}$`)
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
)

// SetDefaults fills in every default.
func (c *FileConfig) SetDefaults() {
	c.DeleteAfter = config.Duration(DefaultDeleteAfter)
	c.VerifyTimeout = config.Duration(DefaultVerifyTimeout)
	c.Timeout = config.Duration(DefaultTimeout)
}

// Validate checks c without network access. Field names in its errors are
// relative to the issuer entry.
func (c *FileConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}
	switch {
	case c.UserName == "":
		bad("user_name", "required: the IAM user whose access keys rekey rotates")
	case !userNameRE.MatchString(c.UserName):
		bad("user_name", "%q is not an IAM user name (1-64 of letters, digits and +=,.@_-)", c.UserName)
	}
	if c.AccountID != "" && !accountIDRE.MatchString(c.AccountID) {
		bad("account_id", "must be 12 digits (quote it in YAML)")
	}
	if c.Region != "" && !regionRE.MatchString(c.Region) {
		bad("region", "%q is not an AWS region (e.g. us-east-1)", c.Region)
	}
	for field, e := range map[string]string{"endpoint": c.Endpoint, "sts_endpoint": c.STSEndpoint} {
		if e == "" {
			continue
		}
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(field, "must be an http(s) URL")
		}
	}
	if c.DeleteAfter < 0 {
		bad("delete_after", "must not be negative (0 deletes a key when it is revoked)")
	}
	if c.VerifyTimeout <= 0 {
		bad("verify_timeout", "must be greater than 0")
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be greater than 0")
	}
	return errors.Join(errs...)
}

// Resolve returns the Config for New. The entry holds no secret: the
// credentials come from the SDK's chain when New builds the clients.
func (c FileConfig) Resolve() (Config, error) {
	return Config{
		UserName:      c.UserName,
		AccountID:     c.AccountID,
		Region:        c.Region,
		Profile:       c.Profile,
		Endpoint:      c.Endpoint,
		STSEndpoint:   c.STSEndpoint,
		DeleteAfter:   time.Duration(c.DeleteAfter),
		VerifyTimeout: time.Duration(c.VerifyTimeout),
		Timeout:       time.Duration(c.Timeout),
	}, nil
}

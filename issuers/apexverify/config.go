package apexverify

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/rekeyhq/rekey/config"
)

// Type is the issuer's type in configuration.
const Type = "apexverify"

// DefaultBaseURL is ApexVerify's API root, the base_url of an entry that
// names none.
const DefaultBaseURL = "https://api.apexverify.com"

// FileConfig is one `type: apexverify` entry of the configuration's
// issuers, as written in the file:
//
//	issuers:
//	  apexverify-prod:
//	    type: apexverify
//	    base_url: https://api.apexverify.com   # default
//	    management_token: env:APEXVERIFY_MANAGEMENT_TOKEN
//	    timeout: 10s                           # per request; default
//	    max_active_keys: 10                    # the account's key limit; default
//
// Decode it with config.IssuerSpec.Decode, which applies SetDefaults and
// Validate; Resolve turns it into the Config that New takes.
type FileConfig struct {
	// BaseURL is the API root; default DefaultBaseURL.
	BaseURL string `yaml:"base_url"`
	// ManagementToken is an env: or file: reference to the token that may
	// create, list and revoke keys. It is read only by Resolve.
	ManagementToken config.Secret `yaml:"management_token"`
	// Timeout bounds each HTTP request; default 10s.
	Timeout config.Duration `yaml:"timeout"`
	// MaxActiveKeys is how many active keys the account may hold; default
	// DefaultMaxActiveKeys. It also bounds the size of a key list that
	// rekey accepts (1 KiB per key, at least 1 MiB): set it to the
	// account's real limit. `rekey plan` reports a problem when no slot is
	// free for a rotation's new key.
	MaxActiveKeys int `yaml:"max_active_keys"`
}

// SetDefaults fills in every default. IssuerSpec.Decode calls it before
// decoding, so a key that is absent, or null, keeps its default.
func (c *FileConfig) SetDefaults() {
	c.BaseURL = DefaultBaseURL
	c.Timeout = config.Duration(DefaultTimeout)
	c.MaxActiveKeys = DefaultMaxActiveKeys
}

// Validate checks c without network access or reading the token. Field
// names in its errors are relative to the issuer entry.
func (c *FileConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}
	if err := checkHTTPURL(c.BaseURL); err != nil {
		bad("base_url", "%v", err)
	}
	if err := c.ManagementToken.Check(false); err != nil {
		bad("management_token", "%v", err)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be greater than 0")
	}
	if c.MaxActiveKeys < 1 {
		bad("max_active_keys", "must be at least 1")
	}
	return errors.Join(errs...)
}

// Resolve reads the management token and returns the Config for New.
// Errors name the token's reference, never its value.
func (c FileConfig) Resolve() (Config, error) {
	token, err := c.ManagementToken.Resolve()
	if err != nil {
		return Config{}, fmt.Errorf("apexverify: management_token: %w", err)
	}
	return Config{
		BaseURL:         c.BaseURL,
		ManagementToken: token,
		Timeout:         time.Duration(c.Timeout),
		MaxActiveKeys:   c.MaxActiveKeys,
	}, nil
}

// checkHTTPURL reports a URL that is not absolute http(s). The message never
// repeats the URL: it may carry a token.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("URL needs a host")
	}
	return nil
}

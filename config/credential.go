package config

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// LabelFor returns the label of the key a rotation creates: the template
// with {{date}} expanded to now's UTC date (YYYYMMDD), then "-" and the
// rotation's short ID. Load guarantees the result is a valid issuer label
// for an 8-character shortID.
func (c *Credential) LabelFor(now time.Time, shortID string) string {
	return LabelFunc(c.Label)(now, shortID)
}

// LabelFunc is LabelFor of a credential whose label template is template,
// holding nothing else of the config.
func LabelFunc(template string) func(now time.Time, shortID string) string {
	return func(now time.Time, shortID string) string {
		return strings.ReplaceAll(template, datePlaceholder, now.UTC().Format("20060102")) + "-" + shortID
	}
}

// Location returns the credential's time zone for its window: Timezone, or
// UTC when unset (or, for a Credential not built by Load, unknown).
func (c *Credential) Location() *time.Location {
	if c.loc != nil {
		return c.loc
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// CredentialNames returns the names of all credentials, sorted.
func (c *Config) CredentialNames() []string {
	return slices.Sorted(maps.Keys(c.Credentials))
}

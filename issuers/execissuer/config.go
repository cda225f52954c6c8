package execissuer

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
)

// Type is the issuer's type in configuration.
const Type = "exec"

// The optional abilities a command may declare in `abilities:`.
const (
	AbilityIdentify = "identify"  // the command answers op identify
	AbilityLastUsed = "last_used" // the command answers op last_used
)

// FileConfig is one `type: exec` entry of the configuration's issuers, as
// written in the file:
//
//	issuers:
//	  cloudflare:
//	    type: exec
//	    command: ["/usr/local/lib/rekey/cloudflare-keys", "--account", "acme"]
//	    account: cloudflare acme            # binds the journal; recommended
//	    abilities: [identify, last_used]    # ops the command answers beyond the required ones
//	    max_active_keys: 10                 # the account's key limit, if known
//	    timeout: 30s                        # per call; default
//	    env:                                # extra variables for the command
//	      CF_API_TOKEN: env:CLOUDFLARE_MANAGEMENT_TOKEN
//
// Decode it with config.IssuerSpec.Decode, which applies SetDefaults and
// Validate; Resolve turns it into the Config that New takes.
type FileConfig struct {
	// Command is the argv of the program that speaks the protocol (see the
	// package documentation); it runs directly, with no shell.
	Command []string `yaml:"command"`
	// Account names the account the command acts on; the journal binds
	// each credential's history to it. Default "exec " + Command[0].
	Account string `yaml:"account"`
	// Abilities lists the optional ops the command answers: identify and
	// last_used.
	Abilities []string `yaml:"abilities"`
	// MaxActiveKeys is the account's limit of active keys, if it has one;
	// `rekey plan` then reports a problem when no slot is free for a
	// rotation's new key. 0 (the default): unknown.
	MaxActiveKeys int `yaml:"max_active_keys"`
	// Fields names the fields of a credential of several (an access key ID
	// and its secret), which the command's create answers as "fields";
	// none (the default): it answers one "value".
	Fields []string `yaml:"fields"`
	// Timeout bounds each call of the command; default 30s.
	Timeout config.Duration `yaml:"timeout"`
	// Env holds extra variables for the command, each an env: or file:
	// reference that Resolve reads; their values are redacted from what
	// the command prints. Settings that are not secret belong in Command's
	// arguments.
	Env map[string]config.Secret `yaml:"env"`
}

// SetDefaults fills in every default.
func (c *FileConfig) SetDefaults() {
	c.Timeout = config.Duration(DefaultTimeout)
}

var fieldName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxAccount bounds the account name: it is journaled with every record.
const maxAccount = 256

// Validate checks c without running the command or reading a secret.
// Field names in its errors are relative to the issuer entry.
func (c *FileConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}
	switch {
	case len(c.Command) == 0:
		bad("command", "required: the program and its arguments, e.g. [/usr/local/bin/my-issuer]")
	case c.Command[0] == "":
		bad("command[0]", "the program must not be empty")
	}
	for i, a := range c.Command {
		if strings.ContainsRune(a, 0) {
			bad(fmt.Sprintf("command[%d]", i), "must not contain a NUL byte")
		}
	}
	if len(c.Account) > maxAccount || strings.ContainsFunc(c.Account, isControl) {
		bad("account", "must be at most %d printable characters", maxAccount)
	}
	seen := map[string]bool{}
	for i, a := range c.Abilities {
		switch {
		case a != AbilityIdentify && a != AbilityLastUsed:
			bad(fmt.Sprintf("abilities[%d]", i), "unknown ability %q: want %s or %s", a, AbilityIdentify, AbilityLastUsed)
		case seen[a]:
			bad(fmt.Sprintf("abilities[%d]", i), "%s is listed twice", a)
		}
		seen[a] = true
	}
	seenField := map[string]bool{}
	for i, f := range c.Fields {
		switch {
		case !fieldName.MatchString(f):
			bad(fmt.Sprintf("fields[%d]", i), "must be 1-64 of a-z A-Z 0-9 _ -")
		case seenField[f]:
			bad(fmt.Sprintf("fields[%d]", i), "%s is listed twice", f)
		}
		seenField[f] = true
	}
	if c.MaxActiveKeys < 0 {
		bad("max_active_keys", "must not be negative (0: no known limit)")
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be greater than 0")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Env)) {
		if !envName.MatchString(name) {
			bad("env."+name, "not a valid environment variable name")
			continue
		}
		if err := c.Env[name].Check(false); err != nil {
			bad("env."+name, "%v", err)
		}
	}
	return errors.Join(errs...)
}

// Resolve reads the env: references and returns the Config for New.
// Errors name the reference, never its value.
func (c FileConfig) Resolve() (Config, error) {
	out := Config{
		Command:       slices.Clone(c.Command),
		Account:       c.Account,
		Identify:      slices.Contains(c.Abilities, AbilityIdentify),
		LastUsed:      slices.Contains(c.Abilities, AbilityLastUsed),
		MaxActiveKeys: c.MaxActiveKeys,
		Fields:        slices.Clone(c.Fields),
		Timeout:       time.Duration(c.Timeout),
	}
	for _, name := range slices.Sorted(maps.Keys(c.Env)) {
		v, err := c.Env[name].Resolve()
		if err != nil {
			return Config{}, fmt.Errorf("exec: env.%s: %w", name, err)
		}
		if out.Env == nil {
			out.Env = map[string]secret.Value{}
		}
		out.Env[name] = v
	}
	return out, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

package ghactions

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

// Type is the sink's type in configuration.
const Type = "github-actions"

// Config is one `type: github-actions` sink entry.
//
// GitHub secrets are write-only: GitHub never returns a value. rekey
// therefore confirms a write by the secret's updated_at moving past the
// write, and rolls back by writing the old value again from the journal's
// encrypted copy.
type Config struct {
	// Repository ("owner/name") holds a repository secret, or with
	// Environment an environment secret.
	Repository  string `yaml:"repository"`
	Environment string `yaml:"environment"`
	// Organization holds an organization secret, readable by the
	// repositories Visibility allows: all, private, or the
	// SelectedRepositories (names in the organization). rekey sets the
	// visibility on every write.
	Organization         string   `yaml:"organization"`
	Visibility           string   `yaml:"visibility"`
	SelectedRepositories []string `yaml:"selected_repositories"`
	// Name is the secret's name.
	Name string `yaml:"name"`
	// Fields maps a multi-field credential's fields to secret names, e.g.
	// {id: AWS_ACCESS_KEY_ID, secret: AWS_SECRET_ACCESS_KEY}; instead of
	// Name. GitHub writes one secret at a time: Put writes them in the
	// order of the field names, and when a later write fails after an
	// earlier one landed it returns a retryable error, so that the engine
	// rolls the sink back by writing the old value to every secret.
	Fields sinks.Fields `yaml:"fields"`
	// Dependabot writes a Dependabot secret instead of an Actions secret.
	Dependabot bool `yaml:"dependabot"`
	// Token authenticates as a user or with a fine-grained token; default
	// env:GITHUB_TOKEN. Mutually exclusive with App.
	Token config.Secret `yaml:"token"`
	// App authenticates as a GitHub App installation.
	App *App `yaml:"app"`
	// BaseURL is the REST API root of a GitHub Enterprise Server, e.g.
	// https://github.example.com/api/v3; default https://api.github.com.
	BaseURL string `yaml:"base_url"`

	// Key and Format exist only to explain why they cannot be used: a
	// write-only secret cannot be read, so rekey cannot update one field
	// inside it.
	Key    string `yaml:"key"`
	Format string `yaml:"format"`
}

// App is a GitHub App installation rekey mints tokens for.
type App struct {
	AppID          int64 `yaml:"app_id"`
	InstallationID int64 `yaml:"installation_id"`
	// PrivateKey is the App's PEM private key, normally file:PATH.
	PrivateKey config.Secret `yaml:"private_key"`
}

// DefaultToken is the token reference used when neither token nor app is set.
const DefaultToken = "env:GITHUB_TOKEN"

const defaultBaseURL = "https://api.github.com/"

var (
	ownerRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$`)
	repoRE  = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// Validate checks the entry. Field names in its errors are relative to the
// sink entry.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Invalid(field, format, args...))
	}

	switch {
	case c.Repository == "" && c.Organization == "":
		bad("repository", "one of repository (owner/name) or organization is required")
	case c.Repository != "" && c.Organization != "":
		bad("organization", "repository and organization are mutually exclusive: a sink writes one secret")
	case c.Repository != "":
		owner, repo, ok := strings.Cut(c.Repository, "/")
		if !ok || !ownerRE.MatchString(owner) || !repoRE.MatchString(repo) {
			bad("repository", "%q is not owner/name", c.Repository)
		}
	default:
		if !ownerRE.MatchString(c.Organization) {
			bad("organization", "%q is not a GitHub organization name", c.Organization)
		}
	}

	if c.Environment != "" {
		switch {
		case c.Repository == "":
			bad("environment", "environment secrets belong to a repository: set repository too")
		case c.Dependabot:
			bad("environment", "Dependabot secrets have no environments")
		case strings.ContainsAny(c.Environment, "/\x00") || strings.TrimSpace(c.Environment) != c.Environment:
			bad("environment", "%q is not a valid environment name", c.Environment)
		}
	}

	switch {
	case c.Organization == "":
		if c.Visibility != "" {
			bad("visibility", "only organization secrets have a visibility")
		}
		if len(c.SelectedRepositories) > 0 {
			bad("selected_repositories", "only organization secrets have selected repositories")
		}
	case c.Visibility == "":
		bad("visibility", "required for organization secrets: all, private or selected (rekey sets it on every write)")
	case c.Visibility != "all" && c.Visibility != "private" && c.Visibility != "selected":
		bad("visibility", "%q is not all, private or selected", c.Visibility)
	case c.Visibility == "selected" && len(c.SelectedRepositories) == 0:
		bad("selected_repositories", "required with visibility selected: the repository names that may read the secret")
	case c.Visibility != "selected" && len(c.SelectedRepositories) > 0:
		bad("selected_repositories", "only used with visibility selected")
	}
	for i, r := range c.SelectedRepositories {
		if !repoRE.MatchString(r) {
			bad(fmt.Sprintf("selected_repositories[%d]", i), "%q is not a repository name in organization %s (give the name only)", r, c.Organization)
		}
	}

	switch {
	case c.Fields != nil && c.Name != "":
		bad("fields", "name and fields are mutually exclusive: name holds a single value, fields map a multi-field one to one secret each")
	case c.Fields != nil:
		errs = append(errs, c.Fields.Validate(func(pl string) error {
			if msg := checkName(pl); msg != "" {
				return errors.New(msg)
			}
			return nil
		}))
	default:
		if msg := checkName(c.Name); msg != "" {
			bad("name", "%s", msg)
		}
	}

	if c.Key != "" {
		bad("key", "GitHub secrets are write-only (GitHub never returns a value), so rekey cannot update one field inside a secret: store the key alone in its own secret")
	}
	if c.Format != "" {
		bad("format", "GitHub secrets are write-only and hold the key as is: remove format")
	}

	if c.Token.IsSet() {
		if err := c.Token.Check(false); err != nil {
			bad("token", "%v", err)
		}
	}
	if c.App != nil {
		if c.Token.IsSet() {
			bad("token", "token and app are mutually exclusive")
		}
		if c.App.AppID <= 0 {
			bad("app.app_id", "required: the GitHub App's numeric ID")
		}
		if c.App.InstallationID <= 0 {
			bad("app.installation_id", "required: the App installation's numeric ID")
		}
		if !c.App.PrivateKey.IsSet() {
			bad("app.private_key", "required: the App's PEM private key, e.g. file:/etc/rekey/github-app.pem")
		} else if err := c.App.PrivateKey.Check(false); err != nil {
			bad("app.private_key", "%v", err)
		}
	}

	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("base_url", "%q is not an http(s) URL of the REST API root, e.g. https://github.example.com/api/v3", c.BaseURL)
		}
	}
	return errors.Join(errs...) // nil when errs is empty
}

// checkName applies GitHub's rules for secret names and explains a breach;
// it returns "" for a valid name.
func checkName(name string) string {
	switch {
	case name == "":
		return "required: the secret's name, e.g. APEXVERIFY_API_KEY"
	case !nameRE.MatchString(name):
		return fmt.Sprintf("%q is not a valid GitHub secret name: only letters, digits and _ are allowed", name)
	case name[0] >= '0' && name[0] <= '9':
		return fmt.Sprintf("%q is not a valid GitHub secret name: it must not start with a digit", name)
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return fmt.Sprintf("%q is not a valid GitHub secret name: the GITHUB_ prefix is reserved by GitHub", name)
	}
	return ""
}

// withDefaults returns c with the token default applied and the base URL
// normalized to end in "/".
func (c Config) withDefaults() Config {
	if c.App == nil && !c.Token.IsSet() {
		c.Token = config.Secret{Ref: DefaultToken}
	}
	if c.BaseURL == "" {
		c.BaseURL = defaultBaseURL
	} else if !strings.HasSuffix(c.BaseURL, "/") {
		c.BaseURL += "/"
	}
	return c
}

// MappedFields implements config.FieldMapper: the credential fields the
// sink maps, sorted; nil when it holds a single value.
func (c Config) MappedFields() []string { return c.Fields.MappedFields() }

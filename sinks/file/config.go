package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/sinks"
)

// Type is the sink's type in configuration.
const Type = "file"

// Formats a file sink writes.
const (
	FormatDotenv = "dotenv"
	FormatRaw    = "raw"
	FormatJSON   = "json"
)

const (
	defaultMode            = 0o600
	defaultOnChangeTimeout = 30 * time.Second
)

// Config is one `type: file` sink entry.
type Config struct {
	// Path is the file's absolute path. A symlink is written through: its
	// target is replaced and the link is kept.
	Path string `yaml:"path"`
	// Format is dotenv (default), raw (the whole file is the value) or json
	// (a top-level object).
	Format string `yaml:"format"`
	// Key is the variable (dotenv) or top-level field (json) that holds
	// the value; required for those formats, forbidden for raw. A json key
	// is a field name, never a path: "a.b" is the field named "a.b".
	Key string `yaml:"key"`
	// Fields maps a multi-field credential's fields to dotenv variables
	// (or JSON top-level fields), e.g. {id: AWS_ACCESS_KEY_ID, secret:
	// AWS_SECRET_ACCESS_KEY}; instead of Key, not for format raw. Every
	// field is written in one atomic replacement of the file.
	Fields sinks.Fields `yaml:"fields"`
	// Mode is the octal permission (e.g. "0640") of a file Put creates;
	// default 0600. An existing file keeps its mode and owner.
	Mode string `yaml:"mode"`
	// OnChange is a command run directly (no shell) after every Put that
	// changed the file. It gets rekey's environment, less the variables
	// that hold rekey's own secrets (see WithoutEnv), and never the value:
	// it should read the file.
	OnChange []string `yaml:"on_change"`
	// OnChangeTimeout bounds OnChange; default 30s.
	OnChangeTimeout config.Duration `yaml:"on_change_timeout"`
}

func (c Config) format() string {
	if c.Format == "" {
		return FormatDotenv
	}
	return c.Format
}

func (c Config) mode() (os.FileMode, error) {
	if c.Mode == "" {
		return defaultMode, nil
	}
	m, err := strconv.ParseUint(c.Mode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, config.Invalid("mode", "must be octal permission bits such as \"0600\", got %q", c.Mode)
	}
	return os.FileMode(m), nil
}

func (c Config) onChangeTimeout() time.Duration {
	if c.OnChangeTimeout == 0 {
		return defaultOnChangeTimeout
	}
	return c.OnChangeTimeout.Std()
}

// Validate checks c; field names in its errors are relative to the sink
// entry ("path", "key", ...).
func (c Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	switch {
	case c.Path == "":
		add(config.Invalid("path", "required"))
	case !filepath.IsAbs(c.Path):
		add(config.Invalid("path", "must be absolute, got %q", c.Path))
	case strings.HasSuffix(c.Path, "/"):
		add(config.Invalid("path", "must name a file, not a directory"))
	}
	switch f := c.format(); {
	case c.Fields == nil:
	case c.Key != "":
		add(config.Invalid("fields", "key and fields are mutually exclusive: key holds a single value, fields map a multi-field one"))
	case f == FormatRaw:
		add(config.Invalid("fields", "not allowed for format raw: the whole file is one value"))
	case f == FormatDotenv:
		add(c.Fields.Validate(func(place string) error {
			if !dotenvKeyRE.MatchString(place) {
				return fmt.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", place)
			}
			return nil
		}))
	case f == FormatJSON:
		add(c.Fields.Validate(nil))
	}
	switch f := c.format(); f {
	case FormatDotenv:
		if c.Fields != nil {
			break
		}
		if c.Key == "" {
			add(config.Invalid("key", "required for format dotenv"))
		} else if !dotenvKeyRE.MatchString(c.Key) {
			add(config.Invalid("key", "%q is not a variable name (letters, digits and _, not starting with a digit)", c.Key))
		}
	case FormatJSON:
		if c.Key == "" && c.Fields == nil {
			add(config.Invalid("key", "required for format json"))
		}
	case FormatRaw:
		if c.Key != "" {
			add(config.Invalid("key", "not allowed for format raw: the whole file is the value"))
		}
	default:
		add(config.Invalid("format", "must be dotenv, raw or json, got %q", f))
	}
	if _, err := c.mode(); err != nil {
		add(err)
	}
	if len(c.OnChange) > 0 && c.OnChange[0] == "" {
		add(config.Invalid("on_change[0]", "the command must not be empty"))
	}
	if c.OnChangeTimeout < 0 {
		add(config.Invalid("on_change_timeout", "must not be negative"))
	}
	return errors.Join(errs...)
}

// MappedFields implements config.FieldMapper: the credential fields the
// sink maps, sorted; nil when it holds a single value.
func (c Config) MappedFields() []string { return c.Fields.MappedFields() }

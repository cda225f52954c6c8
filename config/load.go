package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezone: must work on hosts and images without zoneinfo

	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/internal/fsutil"
)

// Defaults applied by Load when a field is absent (or null).
const (
	DefaultStatePath        = "/var/lib/rekey/state.db"
	DefaultEtcdPrefix       = "/rekey/"
	DefaultEtcdDialTimeout  = Duration(5 * time.Second)
	DefaultEtcdTimeout      = Duration(10 * time.Second)
	DefaultEtcdLockTTL      = Duration(15 * time.Second)
	DefaultVerifyTimeout    = Duration(2 * time.Minute)
	DefaultMonitorWindow    = Duration(10 * time.Minute)
	DefaultMonitorInterval  = Duration(30 * time.Second)
	DefaultFailureThreshold = 3
	DefaultCheckMethod      = "GET"
	DefaultCheckTimeout     = Duration(5 * time.Second)
	DefaultStageTimeout     = Duration(24 * time.Hour)
	DefaultListen           = "127.0.0.1:9464"
	DefaultConcurrency      = 4
)

// DefaultExpectStatus is a check's expect_status when absent.
var DefaultExpectStatus = []int{200}

// MaxConfigSize caps the configuration file: a real one is a few KiB, and
// even 50,000 credentials of three sinks each fit in about 22 MB.
const MaxConfigSize = 64 << 20

// Backends decodes the entries whose fields only the back-end packages
// know: cmd/rekey passes the one switch that knows every issuer and sink
// type. LoadWith calls Issuer for every issuer entry and Sink for every
// sink entry that is a mapping with a type, and reports their problems
// with its own, sorted by line. Each returns the entry's decoded config
// and nil, or the errors of IssuerSpec.Decode or SinkSpec.Decode, or
// UnknownType; any other error is reported at the entry. The config
// returned is kept in the entry, whose YAML is then dropped (a fleet of
// credentials would otherwise hold its whole parse tree): a later Decode
// into the same type returns it. A nil config keeps the YAML; a nil func
// checks nothing.
type Backends struct {
	Issuer func(*IssuerSpec) (any, error)
	Sink   func(*SinkSpec) (any, error)
}

// Load reads, decodes and validates the configuration at path, except what
// only the back-ends know: it is LoadWith with no Backends, so an issuer or
// sink entry is checked only for being a mapping with a type.
func Load(path string) (*Config, error) { return LoadWith(path, Backends{}) }

// LoadWith reads, decodes and validates the configuration at path, each
// issuer and sink entry through b. A file that cannot be read gives a
// plain error, as does one that is not a regular file (a FIFO, a device:
// the read never blocks) or is larger than MaxConfigSize; every problem in
// the file's contents comes back together as Errors, each with file:line
// and field (see MaxErrors). Secrets are not resolved.
func LoadWith(path string, b Backends) (*Config, error) {
	data, err := fsutil.ReadRegular(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseWith(path, data, b)
}

// Parse is Load for contents already read; file names them in errors.
func Parse(file string, data []byte) (*Config, error) { return ParseWith(file, data, Backends{}) }

// ParseWith is LoadWith for contents already read; file names them in
// errors.
func ParseWith(file string, data []byte, b Backends) (*Config, error) {
	root, perr := parseYAML(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Line, Msg: fmt.Sprintf("expected a mapping starting with version: 1, got %s", describe(root))}}
	}
	d := newDecoder(file)
	*d.budget = budgetFor(len(data))
	d.pos[""] = root.Line
	cfg := &Config{}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	cfg.File = file

	v := &validator{d: d}
	v.config(cfg)
	env := cfg.SecretEnv()
	cfg.secretEnv = &env // the entries' YAML, which it reads, is dropped below
	cfg.secrets = d.secrets
	for _, name := range slices.Sorted(maps.Keys(cfg.Issuers)) {
		is := cfg.Issuers[name]
		is.secretEnv = env
		if b.Issuer != nil && is.node != nil && is.Type != "" {
			is.budget = d.budget
			kept, err := b.Issuer(is)
			is.budget = nil
			d.merge(&is.entry, err)
			if err == nil {
				is.keep(kept)
			}
		}
	}
	for _, name := range cfg.CredentialNames() {
		for i := range cfg.Credentials[name].Sinks {
			s := &cfg.Credentials[name].Sinks[i]
			s.secretEnv = env
			if b.Sink != nil && s.node != nil && s.Type != "" {
				s.budget = d.budget
				kept, err := b.Sink(s)
				s.budget = nil
				d.merge(&s.entry, err)
				if err == nil {
					s.keep(kept)
				}
			}
		}
	}
	if !d.errs.empty() {
		return nil, d.errs.result()
	}
	return cfg, nil
}

// merge adds a back-end's problems with an entry to d's.
func (d *decoder) merge(e *entry, err error) {
	for _, err := range flatten(err) {
		if ce, ok := err.(*Error); ok && ce.more > 0 {
			d.errs.more += ce.more
			continue
		}
		d.errs.addError(d.place(e, err))
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML returns the single document's root node, or the syntax error
// positioned at its line.
func parseYAML(file string, data []byte) (root *yaml.Node, _ *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Msg: "empty file; a configuration starts with version: 1"}
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: file, Line: extra.Line, Msg: "only one YAML document is allowed"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty file; a configuration starts with version: 1"}
	}
	return doc.Content[0], nil
}

func syntaxError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

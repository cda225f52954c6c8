package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
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
	DefaultBaseURL          = "https://api.apexverify.com"
	DefaultIssuerTimeout    = Duration(10 * time.Second)
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
// even 10,000 credentials fit in a few MiB.
const MaxConfigSize = 64 << 20

// Load reads, decodes and validates the configuration at path. A file that
// cannot be read gives a plain error, as does one that is not a regular
// file (a FIFO, a device: the read never blocks) or is larger than
// MaxConfigSize; every problem in the file's contents comes back together
// as Errors, each with file:line and field (see MaxErrors).
// Secrets are not resolved; sink entries are checked only for their type
// (each sink package decodes its entry with SinkSpec.Decode).
func Load(path string) (*Config, error) {
	data, err := fsutil.ReadRegular(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for contents already read; file names them in errors.
func Parse(file string, data []byte) (*Config, error) {
	root, perr := parseYAML(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Line, Msg: fmt.Sprintf("expected a mapping starting with version: 1, got %s", describe(root))}}
	}
	d := newDecoder(file)
	d.pos[""] = root.Line
	cfg := &Config{}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	cfg.File = file

	v := &validator{d: d}
	v.config(cfg)
	if !d.errs.empty() {
		return nil, d.errs.result()
	}
	env := cfg.SecretEnv()
	for _, cr := range cfg.Credentials {
		for i := range cr.Sinks {
			cr.Sinks[i].secretEnv = env
		}
	}
	return cfg, nil
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

package file

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/config"
)

func decodeSinks(t *testing.T, fixture string) []config.SinkSpec {
	t.Helper()
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fixture, data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg.Credentials["api"].Sinks
}

func TestConfigGood(t *testing.T) {
	specs := decodeSinks(t, "testdata/config/good.yaml")
	want := []struct {
		name    string
		format  string
		mode    os.FileMode
		timeout time.Duration
	}{
		{"file:/etc/crm/app.env#APEXVERIFY_API_KEY", FormatDotenv, 0o600, 30 * time.Second},
		{"file:/etc/crm/key", FormatRaw, 0o640, 30 * time.Second},
		{"file:/etc/crm/secrets.json#apexverify.api_key", FormatJSON, 0o600, time.Minute},
	}
	if len(specs) != len(want) {
		t.Fatalf("%d sinks, want %d", len(specs), len(want))
	}
	for i, spec := range specs {
		var c Config
		if err := spec.Decode(&c); err != nil {
			t.Fatalf("sink %d: %v", i, err)
		}
		s, err := New(c, nil)
		if err != nil {
			t.Fatalf("sink %d: New: %v", i, err)
		}
		if s.Name() != want[i].name || s.format != want[i].format || s.mode != want[i].mode || s.timeout != want[i].timeout {
			t.Errorf("sink %d: name %q format %s mode %o timeout %s, want %+v", i, s.Name(), s.format, s.mode, s.timeout, want[i])
		}
	}
	var c Config
	if err := specs[0].Decode(&c); err != nil || strings.Join(c.OnChange, " ") != "systemctl reload crm" {
		t.Errorf("on_change = %q, %v", c.OnChange, err)
	}
}

func TestConfigBad(t *testing.T) {
	specs := decodeSinks(t, "testdata/config/bad.yaml")
	want := [][]string{
		{
			`bad.yaml:13: credentials.api.sinks[0].path: must be absolute, got "etc/crm/app.env"`,
			`bad.yaml:14: credentials.api.sinks[0].key: "1BAD-NAME" is not a variable name`,
		},
		{
			`bad.yaml:18: credentials.api.sinks[1].key: not allowed for format raw`,
			`bad.yaml:19: credentials.api.sinks[1].mode: must be octal permission bits such as "0600", got "0999"`,
		},
		{
			`bad.yaml:20: credentials.api.sinks[2].path: required`,
			`bad.yaml:21: credentials.api.sinks[2].format: must be dotenv, raw or json, got "yaml"`,
			`bad.yaml:22: credentials.api.sinks[2].on_change[0]: the command must not be empty`,
			`bad.yaml:23: credentials.api.sinks[2].on_change_timeout: must not be negative`,
		},
		{
			`bad.yaml:27: credentials.api.sinks[3].colour: unknown field`,
			`bad.yaml:24: credentials.api.sinks[3].key: required for format json`,
		},
	}
	for i, spec := range specs {
		var c Config
		err := spec.Decode(&c)
		if err == nil {
			t.Errorf("sink %d decoded without error", i)
			continue
		}
		for _, w := range want[i] {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("sink %d: error\n%v\nlacks %q", i, err, w)
			}
		}
	}
}

func TestConfigBadFields(t *testing.T) {
	specs := decodeSinks(t, "testdata/config/bad-fields.yaml")
	want := []string{
		`bad-fields.yaml:15: credentials.api.sinks[0].fields: key and fields are mutually exclusive`,
		`bad-fields.yaml:19: credentials.api.sinks[1].fields: not allowed for format raw`,
		`bad-fields.yaml:23: credentials.api.sinks[2].fields.id: "1BAD-NAME" is not a variable name`,
		`bad-fields.yaml:24: credentials.api.sinks[2].fields.secret: the place for field "secret" must not be empty`,
		`bad-fields.yaml:30: credentials.api.sinks[3].fields.secret: "same" is already the place of field "id"`,
		`bad-fields.yaml:33: credentials.api.sinks[4].fields: must map at least one field`,
	}
	if len(specs) != 5 {
		t.Fatalf("%d sinks, want 5", len(specs))
	}
	var all []string
	for i, spec := range specs {
		var c Config
		err := spec.Decode(&c)
		if err == nil {
			t.Errorf("sink %d decoded without error", i)
			continue
		}
		all = append(all, err.Error())
	}
	got := strings.Join(all, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("errors\n%s\nlack %q", got, w)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := []Config{
		{Path: "/a.env", Key: "A_1"},
		{Path: "/a.env", Key: "_a", Format: FormatDotenv, Mode: "640"},
		{Path: "/a.json", Key: "any key.at all", Format: FormatJSON},
		{Path: "/a", Format: FormatRaw, Mode: "0400"},
		{Path: "/a.env", Fields: map[string]string{"id": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"}},
		{Path: "/a.json", Format: FormatJSON, Fields: map[string]string{"sid": "twilio.sid", "secret": "twilio secret"}},
	}
	for _, c := range ok {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
	}
	bad := map[string]Config{
		"path: required":                              {Key: "A"},
		"path: must be absolute":                      {Path: "a.env", Key: "A"},
		"path: must name a file":                      {Path: "/etc/", Key: "A"},
		"key: required for format dotenv":             {Path: "/a"},
		"key: \"A.B\" is not a variable name":         {Path: "/a", Key: "A.B"},
		"key: required for format json":               {Path: "/a", Format: FormatJSON},
		"key: not allowed for format raw":             {Path: "/a", Format: FormatRaw, Key: "A"},
		"format: must be dotenv, raw or json":         {Path: "/a", Format: "toml", Key: "A"},
		"mode: must be octal":                         {Path: "/a", Key: "A", Mode: "rw-------"},
		"on_change[0]: the command must not be empty": {Path: "/a", Key: "A", OnChange: []string{""}},
		"on_change_timeout: must not be negative":     {Path: "/a", Key: "A", OnChangeTimeout: -1},
	}
	for want, c := range bad {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want %q", c, err, want)
		}
	}
}

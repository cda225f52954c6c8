package httpissuer_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
)

const (
	openAIOK = "    type: http\n    preset: openai-admin\n    auth: {token: env:T}\n"
	twilioOK = "    type: http\n    preset: twilio-api-keys\n    base_url: https://api.twilio.com/2010-04-01/Accounts/AC1\n    auth: {basic: {username: env:U, password: env:P}}\n"
)

// TestConfigBad: each broken entry is refused at the line and field of
// the problem, with a message that says what to write.
func TestConfigBad(t *testing.T) {
	for _, tc := range []struct{ name, entry, want string }{
		{"unknown preset", "    type: http\n    preset: openai\n", "rekey.yaml:6: issuers.api.preset: unknown preset \"openai\" (known: cloudflare-account-tokens, datadog-api-keys, openai-admin, sendgrid-api-keys, twilio-api-keys)"},
		{"preset without token", "    type: http\n    preset: openai-admin\n", "rekey.yaml:4: issuers.api.auth.token: required by preset openai-admin"},
		{"unknown field", openAIOK + "    colour: blue\n", "rekey.yaml:8: issuers.api.colour: unknown field"},
		{"literal token", "    type: http\n    preset: openai-admin\n    auth: {token: sk-admin-abc}\n", "rekey.yaml:7: issuers.api.auth.token: literal secret values are not allowed"},
		{"bad jsonpath", openAIOK + "    key: {label: \"$.name[\"}\n", "rekey.yaml:8: issuers.api.key.label: not an RFC 9535 JSONPath"},
		{"unknown placeholder", openAIOK + "    get: {path: \"/v1/x/{{key}}\"}\n", "rekey.yaml:8: issuers.api.get.path: {{key}} is not available here (only {{id}})"},
		{"body not JSON", openAIOK + "    create: {body: '{\"name\": {{label}}}'}\n", "issuers.api.create.body: not JSON once filled in"},
		{"create without label", openAIOK + "    create: {body: '{\"name\": \"fixed\"}'}\n", "issuers.api.create: must send {{label}}"},
		{"roll endpoint", openAIOK + "    create: {path: \"/v1/keys/{{id}}/roll\"}\n", "issuers.api.create.path: names an existing key ({{id}}): that is a roll"},
		{"bad pagination", openAIOK + "    list: {pagination: {type: offset}}\n", "issuers.api.list.pagination.type: must be cursor, page, link or url"},
		{"base_url with query", openAIOK + "    base_url: https://api.openai.com/?x=1\n", "rekey.yaml:8: issuers.api.base_url: must have no query"},
		{"verify without key", openAIOK + "    verify: {value: \"Bearer x\"}\n", "issuers.api.verify.value: must contain {{key}}"},
		{"status both", openAIOK + "    verify: {refused_status: [200]}\n", "issuers.api.verify.refused_status: 200 is also in expect_status"},
		{"no preset, nothing", "    type: http\n", "issuers.api.base_url: required (or a preset)"},
		{"bad identify", openAIOK + "    identify: {match: middle}\n", "issuers.api.identify.match: must be prefix, suffix, redacted or pattern"},
		{"body and form", openAIOK + "    create: {form: {name: \"{{label}}\"}}\n", "rekey.yaml:8: issuers.api.create.form: body and form are mutually exclusive"},
		{"form placeholder", openAIOK + "    revoke: {form: {x: \"{{label}}\"}}\n", "issuers.api.revoke.form.x: {{label}} is not available here (only {{id}})"},
		{"value and fields", openAIOK + "    key: {fields: {sid: $.sid}}\n", "rekey.yaml:8: issuers.api.key.fields: key.value and key.fields are mutually exclusive"},
		{"bad field name", openAIOK + "    key: {value: \"\", fields: {\"2x\": $.a}}\n", "issuers.api.key.fields: \"2x\" is not a field name"},
		{"fields need value_field", twilioOK + "    identify: {value_field: nope}\n", "issuers.api.identify.value_field: \"nope\" is not one of key.fields"},
		{"verify field unknown", twilioOK + "    verify: {basic: {password: \"{{key}}\"}}\n", "issuers.api.verify.basic.password: {{key}} is not available here (only {{secret}}, {{sid}})"},
		{"basic and header", twilioOK + "    verify: {header: X-Key}\n", "issuers.api.verify.basic: header/value and basic are mutually exclusive"},
		{"pattern without group", openAIOK + "    identify: {match: pattern, pattern: \"^SG\\\\.\", field: $.id}\n", "issuers.api.identify.pattern: needs a capture group"},
		{"bad key_limit_message", openAIOK + "    errors: {key_limit_message: \"(\"}\n", "rekey.yaml:8: issuers.api.errors.key_limit_message: not a regular expression"},
		{"twilio without basic", "    type: http\n    preset: twilio-api-keys\n    base_url: https://api.twilio.com/2010-04-01/Accounts/AC1\n", "issuers.api.auth.basic: required by preset twilio-api-keys"},
		{"bad header name", "    type: http\n    preset: openai-admin\n    auth: {header: \"X Y\", token: env:T}\n", "issuers.api.auth.header: must be an HTTP header name"},
	} {
		_, err := decodeIssuer(t, tc.entry)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v\nwant it to contain %q", tc.name, err, tc.want)
		}
	}
}

// TestPresetMerge: a user field replaces the preset's leaf at that path,
// and only it; a list or map is replaced whole.
func TestPresetMerge(t *testing.T) {
	c, err := decodeIssuer(t, openAIOK+"    base_url: http://127.0.0.1:9\n    create: {body: '{\"name\": \"{{label}}\", \"expires_in_seconds\": 86400}'}\n    list: {query: {limit: \"5\"}}\n")
	if err != nil {
		t.Fatal(err)
	}
	x := c.Expanded()
	p, _ := httpissuer.Preset("openai-admin")
	if x.BaseURL != "http://127.0.0.1:9" || !strings.Contains(x.Create.Body, "expires_in_seconds") {
		t.Errorf("user fields lost: base_url %q, create.body %q", x.BaseURL, x.Create.Body)
	}
	if x.Create.Path != p.Create.Path || x.Create.Method != "POST" || x.Key.ID != p.Key.ID || x.Key.LastUsedAt != p.Key.LastUsedAt || x.Auth.Header != "Authorization" || x.Auth.Value != "Bearer {{token}}" {
		t.Errorf("preset fields lost beside the user's: %+v", x.Create)
	}
	if len(x.List.Query) != 1 || x.List.Query["limit"] != "5" {
		t.Errorf("list.query = %v, want the user's map whole (no order from the preset)", x.List.Query)
	}
	if x.Auth.Token != (config.Secret{Ref: "env:T"}) {
		t.Errorf("auth.token = %v", x.Auth.Token)
	}
}

// TestPresetsValidate: every preset, with what it needs, is a valid
// config; and a preset's plain config written out is the same issuer.
func TestPresetsValidate(t *testing.T) {
	for _, name := range httpissuer.PresetNames() {
		c, _ := httpissuer.Preset(name)
		if c.Auth.Header != "" {
			c.Auth.Token = config.Secret{Ref: "env:T"}
		} else {
			c.Auth.Basic = httpissuer.Basic{Username: config.Secret{Ref: "env:U"}, Password: config.Secret{Ref: "env:P"}}
		}
		c.Auth.Extra = append(c.Auth.Extra, httpissuer.HeaderAuth{Header: "X-Extra", Token: config.Secret{Ref: "env:T"}})
		if c.BaseURL == "" {
			c.BaseURL = "https://api.example.com/accounts/x"
		}
		if c.Create.Body == "" && len(c.Create.Form) == 0 {
			c.Create.Body = `{"name": "{{label}}"}`
		}
		c.Timeout = config.Duration(1e9)
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s written out: %v", name, err)
		}
		for _, h := range []string{"roll", "value"} {
			if strings.HasSuffix(c.Create.Path, "/"+h) {
				t.Errorf("preset %s creates through %s", name, c.Create.Path)
			}
		}
	}
	if !slices.Equal(httpissuer.PresetNames(), []string{"cloudflare-account-tokens", "datadog-api-keys", "openai-admin", "sendgrid-api-keys", "twilio-api-keys"}) {
		t.Errorf("presets %v", httpissuer.PresetNames())
	}
}

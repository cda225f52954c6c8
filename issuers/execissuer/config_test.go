package execissuer_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/execissuer"
)

// decodeIssuer parses a configuration whose issuers section is issuer (the
// lines under "  ex:", from line 5) and decodes that entry as the type
// switch in cmd/rekey does.
func decodeIssuer(t *testing.T, issuer string) (execissuer.FileConfig, error) {
	t.Helper()
	data := "version: 1\n" + // line 1
		"state: {encryption_key: env:K}\n" + // 2
		"issuers:\n" + // 3
		"  ex:\n" + // 4
		issuer + // from line 5
		"credentials:\n  api: {issuer: ex, label: api, rotate_every: 1d, sinks: [{type: file, path: /x, format: raw}]}\n"
	cfg, err := config.Parse("rekey.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var c execissuer.FileConfig
	return c, cfg.Issuers["ex"].Decode(&c)
}

func TestFileConfigDecodesAndResolves(t *testing.T) {
	c, err := decodeIssuer(t, `    type: exec
    command: [/usr/local/bin/issuer, --zone, "a b"]
    account: cloudflare acme
    abilities: [last_used, identify]
    max_active_keys: 3
    fields: [secret, id]
    timeout: 5s
    env:
      API_TOKEN: env:REKEY_TEST_EXEC_TOKEN
`)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("REKEY_TEST_EXEC_TOKEN", "tok_1234567")
	rc, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rc.Command, []string{"/usr/local/bin/issuer", "--zone", "a b"}) || rc.Account != "cloudflare acme" ||
		!rc.Identify || !rc.LastUsed || rc.MaxActiveKeys != 3 || !slices.Equal(rc.Fields, []string{"secret", "id"}) || rc.Timeout != 5*time.Second ||
		rc.Env["API_TOKEN"].Reveal() != "tok_1234567" || len(rc.Env) != 1 || len(rc.Vars) != 0 {
		t.Errorf("resolved %+v", rc)
	}
	iss, err := execissuer.New(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kl, ok := iss.(issuers.KeyLimiter); !ok || kl.MaxActiveKeys() != 3 {
		t.Errorf("max_active_keys 3 does not make a KeyLimiter of 3")
	}
	if iss.(issuers.Account).Account() != "cloudflare acme" {
		t.Errorf("Account() = %q", iss.(issuers.Account).Account())
	}
}

func TestFileConfigDefaults(t *testing.T) {
	c, err := decodeIssuer(t, "    type: exec\n    command: [my-issuer]\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != config.Duration(30*time.Second) || c.Account != "" || len(c.Abilities) != 0 {
		t.Errorf("defaults %+v", c)
	}
	rc, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := execissuer.New(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.(issuers.Account).Account(); got != "exec my-issuer" {
		t.Errorf("default account %q, want exec my-issuer", got)
	}
}

func TestFileConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"no command":      {"    type: exec\n", "rekey.yaml:4: issuers.ex.command: required"},
		"empty program":   {"    type: exec\n    command: [\"\", x]\n", "rekey.yaml:6: issuers.ex.command[0]: the program must not be empty"},
		"command string":  {"    type: exec\n    command: my-issuer --x\n", "rekey.yaml:6: issuers.ex.command"},
		"unknown ability": {"    type: exec\n    command: [x]\n    abilities: [identify, rotate]\n", `rekey.yaml:7: issuers.ex.abilities[1]: unknown ability "rotate"`},
		"twice":           {"    type: exec\n    command: [x]\n    abilities: [identify, identify]\n", "issuers.ex.abilities[1]: identify is listed twice"},
		"timeout":         {"    type: exec\n    command: [x]\n    timeout: 0s\n", "rekey.yaml:7: issuers.ex.timeout: must be greater than 0"},
		"max keys":        {"    type: exec\n    command: [x]\n    max_active_keys: -1\n", "rekey.yaml:7: issuers.ex.max_active_keys: must not be negative"},
		"field name":      {"    type: exec\n    command: [x]\n    fields: [id, \"a b\"]\n", "rekey.yaml:7: issuers.ex.fields[1]: must be 1-64 of"},
		"field twice":     {"    type: exec\n    command: [x]\n    fields: [id, id]\n", "issuers.ex.fields[1]: id is listed twice"},
		"env name":        {"    type: exec\n    command: [x]\n    env:\n      1BAD: env:X\n", "issuers.ex.env.1BAD: not a valid environment variable name"},
		"env ref":         {"    type: exec\n    command: [x]\n    env:\n      TOKEN: \"env:\"\n", "rekey.yaml:8: issuers.ex.env.TOKEN: env: reference needs a variable name"},
		"unknown key":     {"    type: exec\n    command: [x]\n    shell: true\n", "rekey.yaml:7: issuers.ex.shell: unknown"},
		"env literal":     {"    type: exec\n    command: [x]\n    env:\n      TOKEN: hunter2\n", "rekey.yaml:8: issuers.ex.env.TOKEN: literal secret values are not allowed here"},
		"account":         {"    type: exec\n    command: [x]\n    account: \"a\\nb\"\n", "rekey.yaml:7: issuers.ex.account: must be at most 256 printable characters"},
	} {
		_, err := decodeIssuer(t, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestFileConfigResolveNamesNoValue(t *testing.T) {
	t.Setenv("REKEY_TEST_EXEC_EMPTY", "")
	c := execissuer.FileConfig{Command: []string{"x"}, Env: map[string]config.Secret{"T": {Ref: "env:REKEY_TEST_EXEC_EMPTY"}}}
	_, err := c.Resolve()
	if err == nil || !strings.HasPrefix(err.Error(), "exec: env.T: ") || !strings.Contains(err.Error(), "REKEY_TEST_EXEC_EMPTY") {
		t.Errorf("Resolve with an empty variable: %v", err)
	}
}

package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretResolveEnv(t *testing.T) {
	t.Setenv("REKEY_TEST_TOKEN", "tok-123")
	v, err := Secret{Ref: "env:REKEY_TEST_TOKEN"}.Resolve()
	if err != nil || v.Reveal() != "tok-123" {
		t.Fatalf("Resolve = %v, %v", v.Reveal() != "", err)
	}

	t.Setenv("REKEY_TEST_EMPTY", "")
	for _, ref := range []string{"env:REKEY_TEST_EMPTY", "env:REKEY_TEST_UNSET_XYZ"} {
		_, err := Secret{Ref: ref}.Resolve()
		if err == nil || !strings.Contains(err.Error(), ref) {
			t.Errorf("Resolve(%s) error = %v, want one naming the reference", ref, err)
		}
	}
}

func TestSecretResolveFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ content, want string }{
		{"s3cr3t\n", "s3cr3t"},
		{"s3cr3t\r\n", "s3cr3t"},
		{"s3cr3t", "s3cr3t"},
		{"  spaced  \n", "  spaced  "},
	} {
		p := write("k", tc.content)
		v, err := Secret{Ref: "file:" + p}.Resolve()
		if err != nil || v.Reveal() != tc.want {
			t.Errorf("file %q: Resolve = %q, %v", tc.content, v.Reveal(), err)
		}
	}

	empty := write("empty", "\n")
	if _, err := (Secret{Ref: "file:" + empty}).Resolve(); err == nil || !strings.Contains(err.Error(), "file:"+empty) {
		t.Errorf("empty file: error = %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := (Secret{Ref: "file:" + missing}).Resolve(); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: error = %v, want not-exist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestSecretLiteralAndUnset(t *testing.T) {
	v, err := Secret{Ref: "Bearer abc"}.Resolve()
	if err != nil || v.Reveal() != "Bearer abc" {
		t.Errorf("literal Resolve = %v", err)
	}
	if _, err := (Secret{}).Resolve(); err == nil {
		t.Error("unset Resolve succeeded")
	}
	for _, tc := range []struct {
		s            Secret
		set, literal bool
	}{
		{Secret{}, false, false},
		{Secret{Ref: "env:X"}, true, false},
		{Secret{Ref: "file:/x"}, true, false},
		{Secret{Ref: "abc"}, true, true},
	} {
		if tc.s.IsSet() != tc.set || tc.s.IsLiteral() != tc.literal {
			t.Errorf("%v: IsSet %v IsLiteral %v", tc.s, tc.s.IsSet(), tc.s.IsLiteral())
		}
	}
}

func TestSecretCheck(t *testing.T) {
	for _, tc := range []struct {
		ref       string
		literalOK bool
		wantErr   string
	}{
		{"env:TOKEN", false, ""},
		{"file:/etc/x", false, ""},
		{"s3cr3t-literal", true, ""},
		{"s3cr3t-literal", false, "use env: or file:"},
		{"", true, "required"},
		{"env:", true, "needs a variable name"},
		{"file:", true, "needs a path"},
	} {
		err := Secret{Ref: tc.ref}.Check(tc.literalOK)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Check(%q, %v) = %v, want %q", tc.ref, tc.literalOK, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Check leaks the value: %v", err)
		}
	}
}

func TestSecretNeverPrintsLiteral(t *testing.T) {
	const value = "avk_live_SUPERSECRET"
	s := Secret{Ref: value}
	type holder struct {
		Token Secret            `json:"token" yaml:"token"`
		Hdrs  map[string]Secret `json:"hdrs" yaml:"hdrs"`
	}
	h := holder{Token: s, Hdrs: map[string]Secret{"X": s}}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s), "%x": fmt.Sprintf("%x", s), "%d": fmt.Sprintf("%d", s),
		"holder %+v": fmt.Sprintf("%+v", h), "holder %#v": fmt.Sprintf("%#v", h),
		"json": string(j), "yaml": string(y), "String": s.String(), "GoString": s.GoString(),
	}
	for name, out := range outs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s shows the literal: %s", name, out)
		}
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s = %q, want [REDACTED]", name, out)
		}
	}

	ref := Secret{Ref: "env:APEX_TOKEN"}
	if got := fmt.Sprintf("%v|%#v", ref, ref); got != `env:APEX_TOKEN|config.Secret("env:APEX_TOKEN")` {
		t.Errorf("reference prints %q", got)
	}
}

func TestSecretUnmarshal(t *testing.T) {
	var v struct {
		A Secret `yaml:"a"`
		B Secret `yaml:"b"`
		C Secret `yaml:"c"`
	}
	if err := yaml.Unmarshal([]byte("a: env:X\nb: 12345\nc:\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.Ref != "env:X" || v.B.Ref != "12345" || v.C.IsSet() {
		t.Errorf("got %q %q %q", v.A.Ref, v.B.Ref, v.C.Ref)
	}
	if err := yaml.Unmarshal([]byte("a: [x]\n"), &v); err == nil {
		t.Error("a list decoded as a Secret")
	}
}

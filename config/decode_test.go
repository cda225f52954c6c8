package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type tree struct {
	Name     string  `yaml:"name"`
	Children []*tree `yaml:"children"`
}

func decodeString(t *testing.T, src string, v any) Errors {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	d := newDecoder("t.yaml")
	d.decode(&doc, reflect.ValueOf(v).Elem(), "")
	return d.errs.result()
}

func TestDecodeAliasCycle(t *testing.T) {
	var v tree
	errs := decodeString(t, "&a {name: x, children: [*a]}\n", &v)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "t.yaml:1: children[0].children[0]: alias refers to itself") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestDecodeMergeCycle(t *testing.T) {
	var v map[string]any
	errs := decodeString(t, "&a {x: 1, <<: *a}\n", &v)
	if len(errs) == 0 || !strings.Contains(errs.Error(), "alias refers to itself") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestDecodeAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 {name: x}\n")
	prev := "a0"
	for i := 1; i < 30; i++ {
		name := "a" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "_" + string(rune('0'+i%10))
		b.WriteString(name + ": &" + name + " {children: [*" + prev + ", *" + prev + "]}\n")
		prev = name
	}
	var v map[string]tree
	errs := decodeString(t, b.String(), &v)
	if len(errs) == 0 || !strings.Contains(errs.Error(), "document too large") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestDecodeMergeOverride(t *testing.T) {
	var v map[string]struct {
		A string `yaml:"a"`
		B string `yaml:"b"`
	}
	errs := decodeString(t, "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n", &v)
	if len(errs) != 0 || v["x"].A != "1" || v["x"].B != "3" {
		t.Fatalf("v = %+v, errs = %v", v, errs)
	}
}

func TestLoadYAMLOddities(t *testing.T) {
	base, err := os.ReadFile("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"quoted int", "version: 1", `version: "1"`, "rekey.yaml:1: version: expected an integer, got a string"},
		{"float for int", "version: 1", "version: 1.5", "rekey.yaml:1: version: expected an integer, got a number"},
		{"bool key", "version: 1", "version: 1\nyes: true", "rekey.yaml:2: yes: unknown field"},
		{"complex key", "version: 1", "version: 1\n? [a]\n: b", "rekey.yaml:2: mapping keys must be strings, got a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rekey.yaml", []byte(strings.Replace(string(base), tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "rekey.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Load = %v, %v: want exactly one", cfg, err)
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, p+":") {
					t.Fatalf("error line not positioned: %q", line)
				}
			}
		}
	})
}

package ghactions

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/config"
)

// decodeFile decodes a sink entry the way the config loader does.
func decodeFile(t *testing.T, path string) (Config, []byte, error) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec config.SinkSpec
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	spec.File, spec.Line = path, 1
	var c Config
	return c, raw, spec.Decode(&c)
}

func TestConfigGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, _, err := decodeFile(t, f); err != nil {
				t.Errorf("valid config rejected:\n%v", err)
			}
		})
	}
}

func TestConfigBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, raw, err := decodeFile(t, f)
			first, _, _ := strings.Cut(string(raw), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("fixture lacks a '# want: ' first line")
			}
			if err == nil {
				t.Fatalf("invalid config accepted; want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Line == 0 {
				t.Errorf("error is not placed at a line: %#v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Repository: "acme/crm", Name: "K"}.withDefaults()
	if c.Token.Ref != DefaultToken || c.BaseURL != "https://api.github.com/" {
		t.Errorf("defaults: token %q base_url %q", c.Token.Ref, c.BaseURL)
	}
	c = Config{Repository: "acme/crm", Name: "K", BaseURL: "https://ghe.example.com/api/v3", App: &App{}}.withDefaults()
	if c.Token.IsSet() || c.BaseURL != "https://ghe.example.com/api/v3/" {
		t.Errorf("app config: token %q (want unset), base_url %q", c.Token.Ref, c.BaseURL)
	}
}

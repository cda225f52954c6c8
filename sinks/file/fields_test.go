package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

var pairPlaces = map[string]string{sinktest.FieldID: "AWS_ACCESS_KEY_ID", sinktest.FieldSecret: "AWS_SECRET_ACCESS_KEY"}

func TestFieldsContract(t *testing.T) {
	for _, format := range []string{FormatDotenv, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			sinktest.RunFields(t, func(t *testing.T) sinktest.FieldsFixture {
				c := Config{Path: filepath.Join(t.TempDir(), "app."+format), Format: format, Fields: pairPlaces}
				s := newSink(t, c)
				return sinktest.FieldsFixture{
					Sink: s,
					Peek: func(t *testing.T) map[string]string {
						data, err := os.ReadFile(c.Path)
						if errors.Is(err, os.ErrNotExist) {
							return map[string]string{}
						}
						if err != nil {
							t.Fatal(err)
						}
						out := map[string]string{}
						for field, place := range pairPlaces {
							if v, ok := peek(t, format, place, data); ok {
								out[field] = v
							}
						}
						return out
					},
					Seed: func(t *testing.T, fields map[string]string) {
						var lines []string
						for field, v := range fields {
							if format == FormatJSON {
								lines = append(lines, `"`+pairPlaces[field]+`": "`+v+`"`)
							} else {
								lines = append(lines, pairPlaces[field]+"="+v)
							}
						}
						data := "# seeded\nOTHER=1\n" + strings.Join(lines, "\n") + "\n"
						if format == FormatJSON {
							data = `{"other": 1` + prefixEach(", ", lines) + "}\n"
						}
						if err := os.WriteFile(c.Path, []byte(data), 0o600); err != nil {
							t.Fatal(err)
						}
					},
				}
			})
		})
	}
}

func prefixEach(p string, items []string) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(p + it)
	}
	return b.String()
}

// TestFieldsDotenvTwoVariables checks the file a pair leaves: both
// variables, every other line kept, one replacement of the file.
func TestFieldsDotenvTwoVariables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(path, []byte("# app\nPORT=8080\nAWS_ACCESS_KEY_ID=AKIAOLD00000000\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	s := newSink(t, Config{Path: path, Fields: pairPlaces})
	if want := "file:" + path + "#AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"; s.Name() != want {
		t.Errorf("Name() = %q, want %q", s.Name(), want)
	}
	v := secret.NewFields(map[string]string{"id": "AKIANEW11111111", "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"})
	mustPut(t, s, v, "rot-1")
	want := "# app\nPORT=8080\nAWS_ACCESS_KEY_ID=AKIANEW11111111\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCY\n"
	if got := read(t, path); got != want {
		t.Errorf("file after put:\n%s\nwant:\n%s", got, want)
	}
	after, _ := os.Stat(path)
	if after.Mode() != before.Mode() {
		t.Errorf("mode changed from %v to %v", before.Mode(), after.Mode())
	}
	got, err := s.Get(context.Background())
	if err != nil || !got.Equal(v) {
		t.Fatalf("Get = %s, %v; want the pair", got.Fingerprint(), err)
	}
}

// TestFieldsPartialGetNamesThePlace: a file holding one of the pair's
// variables is a partial pair, and the error says which is missing.
func TestFieldsPartialGetNamesThePlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(path, []byte("AWS_SECRET_ACCESS_KEY=only-the-secret-here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Path: path, Fields: pairPlaces})
	_, err := s.Get(context.Background())
	if !errors.Is(err, sinks.ErrPartial) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID missing") {
		t.Fatalf("Get: err = %v, want a partial pair naming AWS_ACCESS_KEY_ID", err)
	}
	if strings.Contains(err.Error(), "only-the-secret-here") {
		t.Errorf("error leaks the field value: %q", err)
	}
	if err := s.Preflight(context.Background()); err != nil {
		t.Errorf("Preflight of a partial pair (a Put repairs it): %v", err)
	}
}

// TestFieldsOnChangeOutputHidesEveryField: a hook that prints the file
// shows each field of the pair redacted, old and new.
func TestFieldsOnChangeOutputHidesEveryField(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	old := sinktest.PairValue(t, "old")
	write(t, path, "AWS_ACCESS_KEY_ID="+old.Field("id").Reveal()+"\nAWS_SECRET_ACCESS_KEY="+old.Field("secret").Reveal()+"\n", 0o600)
	script := hook(t, dir, "cat "+path+"\nexit 3")
	s := newSink(t, Config{Path: path, Fields: pairPlaces, OnChange: []string{script}})
	v := sinktest.PairValue(t, "new")
	_, err := s.Put(context.Background(), v, "rot-1")
	if err == nil {
		t.Fatal("Put succeeded though on_change failed")
	}
	sinktest.AssertNoLeak(t, err.Error(), v, old)
	if strings.Count(err.Error(), secret.Redacted) < 2 {
		t.Errorf("the hook's output does not show both fields redacted: %v", err)
	}
}

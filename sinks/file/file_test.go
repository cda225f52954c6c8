package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/sinktest"
)

func TestContract(t *testing.T) {
	for _, format := range []string{FormatDotenv, FormatJSON, FormatRaw} {
		t.Run(format, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Fixture {
				c := Config{Path: filepath.Join(t.TempDir(), "app."+format), Format: format}
				if format != FormatRaw {
					c.Key = "APEXVERIFY_API_KEY"
				}
				s := newSink(t, c)
				return sinktest.Fixture{
					Sink: s,
					Peek: func(t *testing.T) (string, bool) {
						data, err := os.ReadFile(c.Path)
						if errors.Is(err, os.ErrNotExist) {
							return "", false
						}
						if err != nil {
							t.Fatal(err)
						}
						return peek(t, format, c.Key, data)
					},
					Seed: func(t *testing.T, value string) {
						var data string
						switch format {
						case FormatDotenv:
							data = "# seeded\nOTHER=1\nAPEXVERIFY_API_KEY=" + value + "\n"
						case FormatJSON:
							data = `{"other": 1, "APEXVERIFY_API_KEY": "` + value + `"}` + "\n"
						default:
							data = value + "\n"
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

// peek reads a value with independent parsing, so the suite does not trust
// the sink's own reader.
func peek(t *testing.T, format, key string, data []byte) (string, bool) {
	t.Helper()
	switch format {
	case FormatRaw:
		s := strings.TrimSuffix(string(data), "\n")
		return s, s != ""
	case FormatJSON:
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("file is not a JSON object: %v", err)
		}
		s, _ := m[key].(string)
		return s, s != ""
	default:
		found, val := false, ""
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
			if k, v, ok := strings.Cut(line, "="); ok && k == key {
				found, val = true, strings.Trim(v, `"'`)
			}
		}
		return val, found && val != ""
	}
}

func newSink(t *testing.T, c Config) *Sink {
	t.Helper()
	s, err := New(c, zap.NewNop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustPut(t *testing.T, s *Sink, v secret.Value, rot string) sinks.Receipt {
	t.Helper()
	r, err := s.Put(context.Background(), v, rot)
	if err != nil {
		sinktest.AssertNoLeak(t, err.Error(), v)
		t.Fatalf("Put(%s): %v", rot, err)
	}
	return r
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // beat the umask
		t.Fatal(err)
	}
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestPutKeepsEveryOtherByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	before := "# app config\r\nexport DB_URL=\"postgres://x\" # db\r\n\r\nexport API_KEY='old' # rotated by rekey\r\nLAST=1"
	write(t, path, before, 0o640)
	s := newSink(t, Config{Path: path, Key: "API_KEY"})
	v := sinktest.Value(t, "new")
	r := mustPut(t, s, v, "rot-1")
	want := strings.Replace(before, "'old'", "'"+v.Reveal()+"'", 1)
	if got := read(t, path); got != want {
		t.Errorf("file after put:\n%q\nwant\n%q", got, want)
	}
	if r.Created || r.Version != v.Fingerprint() || r.Previous != "" {
		t.Errorf("receipt = %+v, want Created false, Version %s, no Previous", r, v.Fingerprint())
	}
}

func TestModes(t *testing.T) {
	dir := t.TempDir()
	t.Run("ExistingModeKept", func(t *testing.T) {
		path := filepath.Join(dir, "kept.env")
		write(t, path, "A=1\n", 0o640)
		mustPut(t, newSink(t, Config{Path: path, Key: "K", Mode: "0600"}), sinktest.Value(t, "v"), "rot-1")
		if m := modeOf(t, path); m != 0o640 {
			t.Errorf("mode after put = %o, want 0640", m)
		}
	})
	t.Run("NewFileDefault0600", func(t *testing.T) {
		path := filepath.Join(dir, "new.env")
		mustPut(t, newSink(t, Config{Path: path, Key: "K"}), sinktest.Value(t, "v"), "rot-1")
		if m := modeOf(t, path); m != 0o600 {
			t.Errorf("mode of created file = %o, want 0600", m)
		}
		if got := read(t, path); got != "K="+sinktest.Value(t, "v").Reveal()+"\n" {
			t.Errorf("created file = %q", got)
		}
	})
	t.Run("NewFileConfiguredMode", func(t *testing.T) {
		path := filepath.Join(dir, "new.json")
		mustPut(t, newSink(t, Config{Path: path, Format: FormatJSON, Key: "k", Mode: "0644"}), sinktest.Value(t, "v"), "rot-1")
		if m := modeOf(t, path); m != 0o644 {
			t.Errorf("mode of created file = %o, want 0644", m)
		}
	})
}

func TestSymlinkIsWrittenThrough(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "releases", "app.env")
	if err := os.Mkdir(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, target, "A=1\nK=old\n", 0o640)
	link := filepath.Join(dir, "app.env")
	if err := os.Symlink("releases/app.env", link); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Path: link, Key: "K"})
	v := sinktest.Value(t, "v")
	mustPut(t, s, v, "rot-1")
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced by a %v", fi.Mode())
	}
	if got := read(t, target); got != "A=1\nK="+v.Reveal()+"\n" {
		t.Errorf("target after put = %q", got)
	}
	if m := modeOf(t, target); m != 0o640 {
		t.Errorf("target mode = %o, want 0640", m)
	}
	got, err := s.Get(context.Background())
	if err != nil || !got.Equal(v) {
		t.Errorf("Get through the link = %s, %v", got.Fingerprint(), err)
	}
}

func TestDanglingSymlinkIsPermanentError(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "app.env")
	if err := os.Symlink(filepath.Join(dir, "missing", "app.env"), link); err != nil {
		t.Fatal(err)
	}
	_, err := newSink(t, Config{Path: link, Key: "K"}).Put(context.Background(), sinktest.Value(t, "v"), "rot-1")
	if !isPermanent(err) {
		t.Fatalf("Put through a dangling link: err = %v, want a permanent error", err)
	}
}

func isPermanent(err error) bool {
	return err != nil && errors.As(err, new(*backoff.PermanentError))
}

func TestUnparseableFileIsLeftAlone(t *testing.T) {
	cases := []struct {
		name, format, data, wantErr string
	}{
		{"JSONArray", FormatJSON, `["a"]`, "not a JSON object"},
		{"JSONString", FormatJSON, `"avk_live_x"`, "not a JSON object"},
		{"JSONBroken", FormatJSON, `{"a": avk_live_secretish}`, "invalid JSON at byte"},
		{"JSONTwoObjects", FormatJSON, `{"a":1}{"b":2}`, "not a single JSON object"},
		{"JSONNonStringField", FormatJSON, `{"K": 42}`, `field "K" is not a string`},
		{"DotenvUnterminated", FormatDotenv, "A=1\nB=\"avk_live_secretish\n", "line 2: unterminated quoted value"},
		{"DotenvJunkAfterQuote", FormatDotenv, "B='x'avk_live_secretish\n", "line 1: unexpected text after quoted value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			write(t, path, tc.data, 0o600)
			s := newSink(t, Config{Path: path, Format: tc.format, Key: "K"})
			v := sinktest.Value(t, "v")
			_, err := s.Put(context.Background(), v, "rot-1")
			if !isPermanent(err) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Put: err = %v, want a permanent error containing %q", err, tc.wantErr)
			}
			sinktest.AssertNoLeak(t, err.Error(), v, secret.New("avk_live_secretish"))
			if got := read(t, path); got != tc.data {
				t.Errorf("file was rewritten to %q", got)
			}
			if _, err := s.Get(context.Background()); err == nil || errors.Is(err, sinks.ErrNotFound) {
				t.Errorf("Get on an unparseable file: err = %v, want a parse error", err)
			}
			if err := s.Preflight(context.Background()); err == nil {
				t.Errorf("Preflight on an unparseable file passed")
			}
		})
	}
}

func TestGetNotFound(t *testing.T) {
	cases := []struct{ name, format, data string }{
		{"DotenvOtherVars", FormatDotenv, "A=1\n# K=commented\n"},
		{"DotenvEmptyValue", FormatDotenv, "K=\n"},
		{"DotenvEmptyFile", FormatDotenv, ""},
		{"JSONOtherFields", FormatJSON, `{"a": "b"}`},
		{"JSONNull", FormatJSON, `{"K": null}`},
		{"JSONEmptyString", FormatJSON, `{"K": ""}`},
		{"JSONBlankFile", FormatJSON, "\n"},
		{"RawEmpty", FormatRaw, "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			write(t, path, tc.data, 0o600)
			c := Config{Path: path, Format: tc.format, Key: "K"}
			if tc.format == FormatRaw {
				c.Key = ""
			}
			s := newSink(t, c)
			if _, err := s.Get(context.Background()); !errors.Is(err, sinks.ErrNotFound) {
				t.Errorf("Get: err = %v, want ErrNotFound", err)
			}
			r := mustPut(t, s, sinktest.Value(t, "v"), "rot-1")
			if !r.Created {
				t.Errorf("Put over a missing/empty value: Created = false")
			}
		})
	}
}

func TestRawFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	s := newSink(t, Config{Path: path, Format: FormatRaw})
	if s.Name() != "file:"+path {
		t.Errorf("Name = %q", s.Name())
	}
	v := sinktest.Value(t, "v")
	mustPut(t, s, v, "rot-1")
	if got := read(t, path); got != v.Reveal()+"\n" {
		t.Errorf("raw file = %q, want the value and a newline", got)
	}
	write(t, path, v.Reveal(), 0o600) // no trailing newline: still the same value
	r := mustPut(t, s, v, "rot-1")
	if got := read(t, path); got != v.Reveal() {
		t.Errorf("an idempotent put rewrote the file to %q", got)
	}
	if r.Version != v.Fingerprint() {
		t.Errorf("Version = %q", r.Version)
	}
}

func TestPutRejectsEmptyValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	_, err := newSink(t, Config{Path: path, Key: "K"}).Put(context.Background(), secret.Value{}, "rot-1")
	if !isPermanent(err) {
		t.Errorf("Put of an empty value: err = %v, want permanent", err)
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("the file was created")
	}
}

func TestMissingDirectoryIsPermanent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "app.env")
	s := newSink(t, Config{Path: path, Key: "K"})
	if _, err := s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1"); !isPermanent(err) {
		t.Errorf("Put into a missing directory: err = %v, want permanent", err)
	}
	if err := s.Preflight(context.Background()); err == nil {
		t.Errorf("Preflight with a missing directory passed")
	}
}

func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{"true"}})
	if err := s.Preflight(context.Background()); err != nil {
		t.Errorf("Preflight of a file to be created: %v", err)
	}
	write(t, path, "K=x\n", 0o600)
	if err := s.Preflight(context.Background()); err != nil {
		t.Errorf("Preflight of an existing file: %v", err)
	}
	s = newSink(t, Config{Path: path, Key: "K", OnChange: []string{filepath.Join(dir, "no-such-hook")}})
	if err := s.Preflight(context.Background()); err == nil || !strings.Contains(err.Error(), "on_change") {
		t.Errorf("Preflight with a missing on_change command: err = %v", err)
	}
}

// hook writes a script that appends a line to dir/count on every run and
// records its arguments and environment.
func hook(t *testing.T, dir, body string) string {
	t.Helper()
	script := filepath.Join(dir, "hook.sh")
	data := "#!/bin/sh\necho run >> " + filepath.Join(dir, "count") + "\n" +
		"echo \"$@\" >> " + filepath.Join(dir, "argv") + "\n" +
		"env >> " + filepath.Join(dir, "env") + "\n" + body + "\n"
	if err := os.WriteFile(script, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func runs(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

func TestOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	script := hook(t, dir, "")
	core, logs := observer.New(zap.DebugLevel)
	s, err := New(Config{Path: path, Key: "K", OnChange: []string{script, "reload", "crm"}}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := sinktest.Value(t, "v1"), sinktest.Value(t, "v2")

	mustPut(t, s, v1, "rot-1")
	if n := runs(t, dir); n != 1 {
		t.Fatalf("on_change ran %d times after the first put, want 1", n)
	}
	mustPut(t, s, v1, "rot-1")
	if n := runs(t, dir); n != 1 {
		t.Fatalf("on_change ran %d times after an idempotent repeat, want 1", n)
	}
	mustPut(t, s, v2, "rot-2")
	mustPut(t, s, v1, "rot-2.rollback")
	if n := runs(t, dir); n != 3 {
		t.Fatalf("on_change ran %d times after a second rotation and its rollback, want 3", n)
	}
	if got := read(t, filepath.Join(dir, "argv")); got != strings.Repeat("reload crm\n", 3) {
		t.Errorf("on_change argv = %q", got)
	}
	seen := read(t, filepath.Join(dir, "argv")) + read(t, filepath.Join(dir, "env"))
	for _, e := range logs.All() {
		seen += e.Message + " " + strings.Join(keys(e.ContextMap()), " ")
	}
	sinktest.AssertNoLeak(t, seen, v1, v2)
	if !strings.Contains(read(t, filepath.Join(dir, "env")), "PATH=") {
		t.Errorf("on_change did not get rekey's environment")
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var parts []string
		for _, p := range x {
			parts = append(parts, toString(p))
		}
		return strings.Join(parts, " ")
	default:
		return ""
	}
}

func TestOnChangeAfterRestartRunsOnce(t *testing.T) {
	// A crash between the write and on_change: the next process finds the
	// value already there and must still reload the service, once.
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	v := sinktest.Value(t, "v")
	write(t, path, "K="+v.Reveal()+"\n", 0o600)
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{hook(t, dir, "")}})
	r1 := mustPut(t, s, v, "rot-1")
	r2 := mustPut(t, s, v, "rot-1")
	if n := runs(t, dir); n != 1 {
		t.Errorf("on_change ran %d times, want 1", n)
	}
	if r1.Created || r1 != r2 {
		t.Errorf("receipts %+v and %+v: want equal, Created false", r1, r2)
	}
}

func TestOnChangeFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	old := sinktest.Value(t, "old")
	write(t, path, "K="+old.Reveal()+"\n", 0o600)
	flag := filepath.Join(dir, "fail")
	write(t, flag, "", 0o600)
	// The hook prints the file (so both values) and fails while flag exists.
	script := hook(t, dir, "cat "+path+"\necho reload refused >&2\nif [ -e "+flag+" ]; then exit 3; fi")
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{script}})
	v := sinktest.Value(t, "new")

	r, err := s.Put(context.Background(), v, "rot-1")
	if err == nil {
		t.Fatal("Put succeeded though on_change failed")
	}
	sinktest.AssertNoLeak(t, err.Error(), v, old)
	if !strings.Contains(err.Error(), "reload refused") || !strings.Contains(err.Error(), "exit status 3") ||
		!strings.Contains(err.Error(), secret.Redacted) {
		t.Errorf("error does not show the hook's redacted output and status: %v", err)
	}
	if isPermanent(err) {
		t.Errorf("a failing hook is permanent; a retry should be possible: %v", err)
	}
	if got := read(t, path); got != "K="+v.Reveal()+"\n" {
		t.Errorf("file not written before the hook ran")
	}
	if r.Version != v.Fingerprint() {
		t.Errorf("receipt with the hook error = %+v, want the write's", r)
	}

	// A retry reruns only the hook; once it passes, repeats run nothing.
	if _, err := s.Put(context.Background(), v, "rot-1"); err == nil {
		t.Fatal("retry succeeded though on_change still fails")
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	r2 := mustPut(t, s, v, "rot-1")
	mustPut(t, s, v, "rot-1")
	if n := runs(t, dir); n != 3 {
		t.Errorf("on_change ran %d times, want 3 (fail, fail, pass)", n)
	}
	if r2 != r {
		t.Errorf("receipt after the retry %+v, want the first %+v", r2, r)
	}
}

func TestOnChangeTimeout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.env")
	script := hook(t, dir, "exec sleep 30")
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{script},
		OnChangeTimeout: config.Duration(100 * time.Millisecond)})
	start := time.Now()
	_, err := s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1")
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("Put: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Put took %s: the hook was not stopped", d)
	}
}

// TestOnChangeMissingCommandIsPermanent: the error is permanent, so (by
// sinks.Sink's contract) the file must not have been written.
func TestOnChangeMissingCommandIsPermanent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	s := newSink(t, Config{Path: path, Key: "K", OnChange: []string{filepath.Join(dir, "missing")}})
	if _, err := s.Put(context.Background(), sinktest.Value(t, "v"), "rot-1"); !isPermanent(err) {
		t.Errorf("Put with a missing hook: err = %v, want permanent", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a Put that failed permanently created the file: %v", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{Path: "relative.env", Key: "K"}, nil); err == nil {
		t.Fatal("New accepted a relative path")
	}
}

// TestOnChangeEnvironmentHidesSecrets: on_change inherits rekey's
// environment except the variables holding rekey's own secrets.
func TestOnChangeEnvironmentHidesSecrets(t *testing.T) {
	t.Setenv("REKEY_TEST_STATE_KEY", "state-key-value")
	t.Setenv("REKEY_TEST_GITHUB_TOKEN", "github-token-value")
	t.Setenv("REKEY_TEST_PLAIN", "kept")
	dir := t.TempDir()
	s, err := New(Config{Path: filepath.Join(dir, "app.env"), Key: "K", OnChange: []string{hook(t, dir, "")}}, zap.NewNop(),
		WithoutEnv("REKEY_TEST_STATE_KEY"), WithoutEnv("REKEY_TEST_GITHUB_TOKEN", "REKEY_TEST_UNSET"))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, sinktest.Value(t, "v"), "rot-1")
	env := "\n" + read(t, filepath.Join(dir, "env"))
	for _, name := range []string{"REKEY_TEST_STATE_KEY", "REKEY_TEST_GITHUB_TOKEN"} {
		if strings.Contains(env, "\n"+name+"=") {
			t.Errorf("on_change saw %s", name)
		}
	}
	for _, name := range []string{"REKEY_TEST_PLAIN", "PATH"} {
		if !strings.Contains(env, "\n"+name+"=") {
			t.Errorf("on_change did not get %s", name)
		}
	}
}

// TestDotenvDuplicateVariable: Put sets every assignment of the variable;
// Get reads it while they agree and otherwise says they disagree.
func TestDotenvDuplicateVariable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	old1, old2 := sinktest.Value(t, "old1"), sinktest.Value(t, "old2")
	write(t, path, "K="+old1.Reveal()+"\nA=1\nexport K='"+old2.Reveal()+"'\n", 0o600)
	s := newSink(t, Config{Path: path, Key: "K"})

	_, err := s.Get(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lines 1, 3 and the assignments disagree") || errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Get: %v, want an error saying the assignments disagree", err)
	}
	if err != nil {
		sinktest.AssertNoLeak(t, err.Error(), old1, old2)
	}
	if err := s.Preflight(context.Background()); err != nil {
		t.Errorf("Preflight: %v; a Put can set both", err)
	}
	v := sinktest.Value(t, "new")
	if r := mustPut(t, s, v, "rot-1"); r.Created {
		t.Errorf("Created = true over an existing variable")
	}
	if got, want := read(t, path), "K="+v.Reveal()+"\nA=1\nexport K='"+v.Reveal()+"'\n"; got != want {
		t.Errorf("file after Put: every assignment should hold the new value (fingerprint %s)", v.Fingerprint())
	}
	if got, err := s.Get(context.Background()); err != nil || !got.Equal(v) {
		t.Errorf("Get after Put: %v (same value: %v)", err, got.Equal(v))
	}

	// A file whose last assignment already holds the value but an earlier
	// one does not is still rewritten.
	write(t, path, "K="+old1.Reveal()+"\nK="+v.Reveal()+"\n", 0o600)
	mustPut(t, s, v, "rot-2")
	if got := read(t, path); got != "K="+v.Reveal()+"\nK="+v.Reveal()+"\n" {
		t.Errorf("the earlier assignment was left stale")
	}
}

// TestDotenvByteOrderMark: a UTF-8 BOM is kept byte for byte and the first
// variable after it is found.
func TestDotenvByteOrderMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	old := sinktest.Value(t, "old")
	write(t, path, "\xEF\xBB\xBFK="+old.Reveal()+"\r\nA=1\r\n", 0o600)
	s := newSink(t, Config{Path: path, Key: "K"})
	if got, err := s.Get(context.Background()); err != nil || !got.Equal(old) {
		t.Fatalf("Get: %v (found the value: %v)", err, got.Equal(old))
	}
	v := sinktest.Value(t, "new")
	if r := mustPut(t, s, v, "rot-1"); r.Created {
		t.Errorf("Created = true: the variable after the BOM was not found")
	}
	if got := read(t, path); got != "\xEF\xBB\xBFK="+v.Reveal()+"\r\nA=1\r\n" {
		t.Errorf("file after Put: want the BOM kept and K replaced in place (fingerprint %s)", v.Fingerprint())
	}
}

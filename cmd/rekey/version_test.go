package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveBuild(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name                  string
		bi                    *debug.BuildInfo
		version, commit, date string
		want                  buildInfo
	}{
		{"no build info", nil, "", "", "", buildInfo{Version: "devel", Commit: "unknown", Date: "unknown"}},
		{"-buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "", "",
			buildInfo{Version: "devel", Commit: "unknown", Date: "unknown", GoVersion: "go1.26.8"}},
		{"vcs stamps", vcs, "", "", "", buildInfo{Version: "v1.4.0", Commit: "0123456789abcdef0123", Date: "2026-11-30T10:00:00Z", Modified: true, GoVersion: "go1.26.8"}},
		{"ldflags win", vcs, "v2.0.0", "feedface", "2026-12-01T00:00:00Z", buildInfo{Version: "v2.0.0", Commit: "feedface", Date: "2026-12-01T00:00:00Z", Modified: true, GoVersion: "go1.26.8"}},
	} {
		got := resolveBuild(tc.bi, tc.version, tc.commit, tc.date)
		if tc.bi == nil {
			got.GoVersion = "" // runtime.Version()
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestVersionCommandAndFlag(t *testing.T) {
	code, out, errOut := runCLI(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("version -o json: exit %d: %s", code, errOut)
	}
	var b map[string]any
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "date", "modified", "go_version"} {
		if _, ok := b[k]; !ok {
			t.Errorf("version JSON lacks %q: %s", k, out)
		}
	}
	code, out, _ = runCLI(t, "version")
	if code != 0 || !strings.Contains(out, "go version: go1.") || !strings.Contains(out, "commit:") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "rekey ") || !strings.Contains(out, "commit ") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: exit %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "version", "-o", "yaml"); code != exitUsage {
		t.Errorf("version -o yaml: exit %d, want 2", code)
	}
}

// runCLI runs the CLI in-process with no config of its own.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(context.Background(), args, &out, &errOut)
	record(out.Bytes(), errOut.Bytes())
	return code, out.String(), errOut.String()
}

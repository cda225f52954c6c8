package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/file"
)

// A credential's setup, which binds its journal (I8), is the string
// journals have carried since they were first bound: "apexverify", the
// base URL without a trailing slash, and the sorted sink names.
func TestSetupString(t *testing.T) {
	iss, err := apexverify.New(apexverify.Config{BaseURL: "https://api.example//", ManagementToken: secret.New("t")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := file.New(file.Config{Path: "/b/app.env", Key: "K"}, nil)
	b, _ := file.New(file.Config{Path: "/a/key", Format: "raw"}, nil)
	if got, want := setupOf(iss, apexverify.Type, []sinks.Sink{a, b}), "apexverify https://api.example; sinks: file:/a/key, file:/b/app.env#K"; got != want {
		t.Errorf("setup = %q, want %q", got, want)
	}
	if got := setupOf(struct{ issuers.Issuer }{iss}, "other", []sinks.Sink{b}); got != "other; sinks: file:/a/key" {
		t.Errorf("setup of an issuer that names no account = %q", got)
	}
}

// writeFleet writes a config of n credentials, three file sinks each and
// one issuer per ten, and returns its path.
func writeFleet(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	var b bytes.Buffer
	b.WriteString("version: 1\nstate:\n  path: " + dir + "/state.db\n  encryption_key: env:REKEY_FLEET_STATE_KEY\nissuers:\n")
	for i := range (n + 9) / 10 {
		fmt.Fprintf(&b, "  apex-%05d:\n    type: apexverify\n    base_url: https://apex-%d.example\n    management_token: env:REKEY_FLEET_TOKEN\n", i, i%3)
	}
	b.WriteString("credentials:\n")
	for i := range n {
		fmt.Fprintf(&b, "  svc-%05d:\n    issuer: apex-%05d\n    label: svc-%05d-{{date}}\n    rotate_every: 90d\n    sinks:\n", i, i/10, i)
		for j := range 3 {
			fmt.Fprintf(&b, "      - {type: file, path: %s/svc-%05d-%d.env, key: APEX_KEY}\n", dir, i, j)
		}
	}
	p := filepath.Join(dir, "rekey.yaml")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkCredentials10000 reports the heap that 10,000 built
// credentials (the daemon's idle state, less the journal) hold.
func BenchmarkCredentials10000(b *testing.B) {
	const n = 10_000
	b.Setenv("REKEY_FLEET_TOKEN", "t0ken")
	// The daemon's logger: a JSON core, as setup builds when not on a terminal.
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	a := &app{configPath: writeFleet(b, n), log: log}
	var before, after goruntime.MemStats
	var creds map[string]*rotation.Credential
	for b.Loop() {
		creds = nil
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		cfg, err := a.loadConfig()
		if err != nil {
			b.Fatal(err)
		}
		if creds, _, _, err = a.credentials(cfg); err != nil {
			b.Fatal(err)
		}
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		goruntime.KeepAlive(cfg)
	}
	if len(creds) != n {
		b.Fatalf("%d credentials", len(creds))
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/cred")
}

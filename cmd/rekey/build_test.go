package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"sync/atomic"
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

// The issuers built from one config share one transport per ApexVerify
// host, with an idle connection per call that may run at once: the
// issuers of one host dial through it, another host's do not.
func TestIssuersShareTransport(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Both calls are in flight at once, so neither can reuse the
		// other's connection: each dials through its issuer's transport.
		arrived.Done()
		arrived.Wait()
		_, _ = w.Write([]byte(`{"data": []}`))
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"data": []}`)) }))
	defer other.Close()

	t.Setenv("REKEY_TEST_APEX_TOKEN", "t0ken")
	dir := t.TempDir()
	p := filepath.Join(dir, "rekey.yaml")
	cfgText := fmt.Sprintf(`version: 1
state: {encryption_key: env:REKEY_TEST_STATE_KEY}
issuers:
  a: {type: apexverify, base_url: %[1]s, management_token: env:REKEY_TEST_APEX_TOKEN}
  b: {type: apexverify, base_url: %[1]s/, management_token: env:REKEY_TEST_APEX_TOKEN}
  c: {type: apexverify, base_url: %[2]s, management_token: env:REKEY_TEST_APEX_TOKEN}
daemon: {concurrency: 32}
credentials:
  ca: {issuer: a, label: ca, rotate_every: 90d, sinks: [{type: file, path: %[3]s/a, format: raw}]}
  cb: {issuer: b, label: cb, rotate_every: 90d, sinks: [{type: file, path: %[3]s/b, format: raw}]}
  cc: {issuer: c, label: cc, rotate_every: 90d, sinks: [{type: file, path: %[3]s/c, format: raw}]}
`, srv.URL, other.URL, dir)
	if err := os.WriteFile(p, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &app{configPath: p, log: zap.NewNop()}
	cfg, err := a.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The transport the pool hands out for srv, made to count its dials.
	tr := a.pools(cfg).apex.For(srv.URL)
	if tr.MaxIdleConnsPerHost < cfg.Daemon.Concurrency {
		t.Errorf("MaxIdleConnsPerHost = %d, want at least daemon.concurrency (%d)", tr.MaxIdleConnsPerHost, cfg.Daemon.Concurrency)
	}
	var dials atomic.Int32
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	creds, _, _, err := a.credentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, name := range []string{"ca", "cb"} {
		wg.Go(func() {
			if _, err := creds[name].Issuer.List(t.Context()); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	wg.Wait()
	if _, err := creds["cc"].Issuer.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials through the transport of a and b's host, want 2: one per issuer of that host", n)
	}
}

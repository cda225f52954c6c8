package e2etest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
	"github.com/rekeyhq/rekey/sinks/file"
)

// World is one credential, prod, as an operator has it before rekey first
// runs: a simulator with one key minted, that key in a dotenv file (the
// file sink), and in Dir the journal's encryption key (state.key) and the
// management token (token). WriteConfig then writes rekey.yaml.
type World struct {
	T testing.TB
	*Sim
	Dir     string
	Config  string // Dir/rekey.yaml, written by WriteConfig
	EnvFile string // Dir/app.env: APP=crm and API_KEY
	File    *file.Sink
	First   issuers.Key // the key minted before rekey ran
	Seen    *Values     // every key value the world saw
}

// NewWorld makes a World in a new temporary directory, recording key
// values in seen (a new Values if nil).
func NewWorld(t testing.TB, seen *Values) *World {
	t.Helper()
	if seen == nil {
		seen = &Values{}
	}
	w := &World{T: t, Sim: StartSim(t, apexsim.Options{}), Dir: t.TempDir(), Seen: seen}
	w.Config = filepath.Join(w.Dir, "rekey.yaml")
	w.EnvFile = filepath.Join(w.Dir, "app.env")
	var v secret.Value
	w.First, v = w.Mint(t, "prod-initial", seen)
	WriteFile(t, w.EnvFile, "APP=crm\nAPI_KEY="+v.Reveal())
	var err error
	w.File, err = file.New(file.Config{Path: w.EnvFile, Format: "dotenv", Key: "API_KEY"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	WriteStateKey(t, filepath.Join(w.Dir, "state.key"))
	WriteFile(t, filepath.Join(w.Dir, "token"), w.ManagementToken())
	return w
}

// Config is what WriteConfig varies in the world's rekey.yaml.
type Config struct {
	// HealthURL is the monitor's one check.
	HealthURL string
	// Window and Interval are the monitor's; "2s" and "1s" if empty.
	Window, Interval string
	// Sinks are more sink entries after the file sink, each one YAML
	// mapping: a "{...}" flow mapping or block lines without indentation.
	Sinks []string
	// State are more lines of the state mapping (e.g. "backend: etcd"),
	// without indentation.
	State []string
}

// WriteConfig writes the world's rekey.yaml: credential prod, rotated every
// 90 days with label prod-{{date}}, its file sink then c.Sinks, and a
// monitor of c.HealthURL.
func (w *World) WriteConfig(c Config) {
	if c.Window == "" {
		c.Window, c.Interval = "2s", "1s"
	}
	var sinks strings.Builder
	for _, s := range c.Sinks {
		sinks.WriteString("      - " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n        ") + "\n")
	}
	var state strings.Builder
	for _, l := range c.State {
		state.WriteString("  " + l + "\n")
	}
	WriteFile(w.T, w.Config, fmt.Sprintf(`version: 1
state:
  path: %[1]s/state.db
  encryption_key: file:%[1]s/state.key
%[7]sissuers:
  sim:
    type: apexverify
    base_url: %[2]s
    management_token: file:%[1]s/token
credentials:
  prod:
    issuer: sim
    label: prod-{{date}}
    rotate_every: 90d
    verify: {timeout: 30s}
    sinks:
      - {type: file, path: %[1]s/app.env, key: API_KEY}
%[6]s    monitor:
      window: %[4]s
      interval: %[5]s
      failure_threshold: 2
      checks:
        - url: %[3]s
`, w.Dir, w.URL, c.HealthURL, c.Window, c.Interval, sinks.String(), state.String()))
}

// InFile returns the key in the file sink, recording it.
func (w *World) InFile() secret.Value {
	w.T.Helper()
	v, err := w.File.Get(context.Background())
	if err != nil {
		w.T.Fatal(err)
	}
	w.Seen.Add(v)
	return v
}

// Rekey is Command with the world's config.
func (w *World) Rekey(args ...string) *exec.Cmd {
	w.T.Helper()
	return Command(w.T, w.Config, args...)
}

// Invariants checks I1–I3 for the world's credential once its rotations
// have ended, given its history: see Invariants.
func (w *World) Invariants(hist []HistoryEntry, window time.Duration) {
	w.T.Helper()
	Invariants(w.T, w.Sim.Sim, w.InFile(), hist, window)
}

// App is the application whose key rekey rotates: its health check
// answers 200 only while it is healthy and using its key succeeds.
type App struct {
	URL    string // the health check is URL + "/healthz"
	Served atomic.Int64
	use    func(context.Context) error

	mu      sync.Mutex
	healthy func() bool
}

// StartApp starts an App whose health check calls use (read the key from
// a sink, call the simulator with it), stopped when t ends.
func StartApp(t testing.TB, use func(context.Context) error) *App {
	a := &App{use: use}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if err := a.use(r.Context()); err != nil || !a.isHealthy() {
			http.Error(rw, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		a.Served.Add(1)
		fmt.Fprintln(rw, "ok")
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// HealthURL is the app's health check.
func (a *App) HealthURL() string { return a.URL + "/healthz" }

// SetHealthy makes the health check also require f; nil, the default,
// means healthy.
func (a *App) SetHealthy(f func() bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.healthy = f
}

func (a *App) isHealthy() bool {
	a.mu.Lock()
	f := a.healthy
	a.mu.Unlock()
	return f == nil || f()
}

// History runs `rekey history prod --limit 0 -o json` and returns all its
// rotations, newest first.
func (w *World) History() []HistoryEntry {
	w.T.Helper()
	code, out, errOut := Run(w.T, w.Rekey("history", "prod", "--limit", "0", "-o", "json"))
	if code != 0 {
		w.T.Fatalf("history: exit %d: %s", code, errOut)
	}
	h, err := ParseHistory([]byte(out))
	if err != nil {
		w.T.Fatalf("history json: %v", err)
	}
	return h
}

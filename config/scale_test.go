package config

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fleet returns a configuration of n credentials, each with three file
// sinks, and one issuer per ten credentials: the shape of issue 12's fleet.
func fleet(n int) []byte {
	var b bytes.Buffer
	b.WriteString("version: 1\nstate:\n  encryption_key: env:REKEY_STATE_KEY\nissuers:\n")
	for i := range (n + 9) / 10 {
		fmt.Fprintf(&b, "  apex-%05d:\n    type: apexverify\n    base_url: https://api.apexverify.com\n    management_token: env:APEX_TOKEN_%d\n    max_active_keys: 20\n", i, i)
	}
	b.WriteString("credentials:\n")
	for i := range n {
		fmt.Fprintf(&b, "  svc-%05d:\n    issuer: apex-%05d\n    label: svc-%05d-{{date}}\n    rotate_every: 90d\n    monitor:\n      window: 5m\n    sinks:\n", i, i/10, i)
		for j := range 3 {
			fmt.Fprintf(&b, "      - type: file\n        path: /etc/svc-%05d/key-%d.env\n        key: APEX_KEY\n        mode: \"0640\"\n", i, j)
		}
	}
	return b.Bytes()
}

// fleetFile and fleetIssuer have the shape of the file sink's and the
// apexverify issuer's configs.
type fleetFile struct {
	Path   string   `yaml:"path"`
	Format string   `yaml:"format"`
	Key    string   `yaml:"key"`
	Mode   string   `yaml:"mode"`
	Cmd    []string `yaml:"on_change"`
}

type fleetIssuer struct {
	BaseURL       string `yaml:"base_url"`
	Token         Secret `yaml:"management_token"`
	MaxActiveKeys int    `yaml:"max_active_keys"`
}

// fleetBackends decodes every entry as cmd/rekey does, keeping the result.
var fleetBackends = Backends{
	Issuer: func(s *IssuerSpec) (any, error) { var c fleetIssuer; return c, s.Decode(&c) },
	Sink:   func(s *SinkSpec) (any, error) { var c fleetFile; return c, s.Decode(&c) },
}

func TestFleetLoads(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	start := time.Now()
	cfg, err := ParseWith("fleet.yaml", fleet(n), fleetBackends)
	if err != nil {
		t.Fatalf("a fleet of %d credentials: %v", n, err)
	}
	t.Logf("%d credentials loaded in %s", n, time.Since(start))
	if len(cfg.Credentials) != n || len(cfg.Issuers) != n/10 {
		t.Fatalf("%d credentials and %d issuers, want %d and %d", len(cfg.Credentials), len(cfg.Issuers), n, n/10)
	}
	last := fmt.Sprintf("svc-%05d", n-1)
	var c fleetFile
	if err := cfg.Credentials[last].Sinks[2].Decode(&c); err != nil || c.Path != "/etc/"+last+"/key-2.env" || c.Mode != "0640" {
		t.Errorf("the last sink decodes as %+v, %v", c, err)
	}
}

func benchmarkLoad(b *testing.B, n int) {
	data := fleet(n)
	b.SetBytes(int64(len(data)))
	var cfg *Config
	for b.Loop() {
		var err error
		if cfg, err = ParseWith("fleet.yaml", data, fleetBackends); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Heap held by the loaded config: after GC, with and without it.
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(cfg)
	cfg = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	b.ReportMetric(float64(with.HeapAlloc-without.HeapAlloc)/float64(n), "heapB/cred")
}

func BenchmarkLoad1000(b *testing.B)  { benchmarkLoad(b, 1_000) }
func BenchmarkLoad10000(b *testing.B) { benchmarkLoad(b, 10_000) }
func BenchmarkLoad50000(b *testing.B) { benchmarkLoad(b, 50_000) }

// An entry a Backends hook decoded keeps only what the hook returned: a
// later Decode into the same type gets it back, another type is an error,
// and SecretEnv still names what the dropped YAML referred to.
func TestBackendsKeepDecoded(t *testing.T) {
	data := strings.Replace(sinkYAML, "        path: /x\n", "        path: /x\n        key: env:IN_A_SINK\n", 1)
	type fileish struct {
		Path string `yaml:"path"`
		Key  string `yaml:"key"`
	}
	cfg, err := ParseWith("rekey.yaml", []byte(data), Backends{
		Sink: func(s *SinkSpec) (any, error) {
			if s.Type != "file" {
				return nil, nil // not kept: its YAML stays
			}
			var c fileish
			return &c, s.Decode(&c)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sinks := cfg.Credentials["api"].Sinks
	if sinks[0].node != nil || sinks[1].node == nil {
		t.Errorf("YAML kept: decoded entry %v, other entry %v; want only the other's", sinks[0].node != nil, sinks[1].node != nil)
	}
	var c fileish
	if err := sinks[0].Decode(&c); err != nil || c != (fileish{Path: "/x", Key: "env:IN_A_SINK"}) {
		t.Errorf("Decode after load = %+v, %v", c, err)
	}
	var other struct{ Path string }
	if err := sinks[0].Decode(&other); err == nil || !strings.Contains(err.Error(), "credentials.api.sinks[0] was decoded at load") {
		t.Errorf("Decode into another type = %v", err)
	}
	if got := fmt.Sprint(cfg.SecretEnv()); got != "[IN_A_SINK K T]" {
		t.Errorf("SecretEnv after load = %s", got)
	}
	if got := fmt.Sprint(sinks[0].SecretEnv()); got != "[IN_A_SINK K T]" {
		t.Errorf("the entry's SecretEnv = %s", got)
	}
}

// The Backends' decodes share the load's node budget: sink entries that
// alias one large anchor cannot make a small file expensive.
func TestBackendsShareBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nstate:\n  encryption_key: env:K\nissuers:\n  apex: {type: apexverify, management_token: env:T}\n")
	b.WriteString("credentials:\n  api:\n    issuer: apex\n    label: api\n    rotate_every: 1d\n    sinks:\n      - &big {type: file, on_change: [")
	b.WriteString(strings.Repeat("x, ", 5_000) + "x]}\n")
	b.WriteString(strings.Repeat("      - *big\n", 200))
	data := b.String()
	_, err := ParseWith("rekey.yaml", []byte(data), Backends{
		Sink: func(s *SinkSpec) (any, error) {
			var c fleetFile
			return c, s.Decode(&c)
		},
	})
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("200 aliases of 5,000 nodes each (%d bytes): err = %v", len(data), err)
	}
}

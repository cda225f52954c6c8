package httpissuer_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
)

// decodeIssuer parses a configuration whose issuers section is issuer (the
// lines under "  api:") and decodes that entry as cmd/rekey does.
func decodeIssuer(t *testing.T, issuer string) (httpissuer.FileConfig, error) {
	t.Helper()
	data := "version: 1\n" + // line 1
		"state: {encryption_key: env:K}\n" + // 2
		"issuers:\n" + // 3
		"  api:\n" + // 4
		issuer + // from line 5
		"credentials:\n  c: {issuer: api, label: c, rotate_every: 1d, sinks: [{type: file, path: /x, format: raw}]}\n"
	cfg, err := config.Parse("rekey.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var c httpissuer.FileConfig
	return c, cfg.Issuers["api"].Decode(&c)
}

// logBuffer is a zap logger's output, for leak checks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*zap.Logger, *logBuffer) {
	b := &logBuffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(b), zap.DebugLevel)
	return zap.New(core), b
}

// build decodes yaml (an issuer entry's lines), resolves it and builds the
// issuer on an auto-advancing fake clock.
func build(t *testing.T, yaml string) (issuers.Issuer, *logBuffer, *clocktest.Auto) {
	t.Helper()
	fc, err := decodeIssuer(t, yaml)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	c, err := fc.Resolve()
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	log, buf := newLogger()
	auto := clocktest.New(clockwork.NewFakeClock())
	iss, err := httpissuer.New(c, log, httpissuer.WithClock(auto))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return iss, buf, auto
}

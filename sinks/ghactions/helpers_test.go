package ghactions

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/clocktest"
	"github.com/rekeyhq/rekey/sinks/ghactions/ghtest"
)

const secretName = "APEXVERIFY_API_KEY"

// start is a whole second, as GitHub's timestamps are.
var start = time.Date(2025, 6, 2, 9, 30, 0, 0, time.UTC)

// env is a fake GitHub sharing a fake clock with the sinks built on it; the
// sinks' rate-limit waits advance that clock instead of sleeping.
type env struct {
	srv   *ghtest.Server
	clock *clockwork.FakeClock
	auto  *clocktest.Auto // the sinks' clock: clock, its timers firing at once
	logs  *observer.ObservedLogs
	log   *zap.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clock: clockwork.NewFakeClockAt(start)}
	e.auto = clocktest.New(e.clock)
	e.srv = ghtest.New(t, ghtest.WithClock(e.clock))
	core, logs := observer.New(zap.DebugLevel)
	e.log, e.logs = zap.New(core), logs
	return e
}

// waits returns every wait the sinks asked for so far.
func (e *env) waits() []time.Duration { return e.auto.Waits() }

// tokenFile writes tok to a file and returns a file: reference to it.
func tokenFile(t *testing.T, tok string) config.Secret {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Secret{Ref: "file:" + p}
}

// sink builds a sink on e's server, authenticated with the server's token
// unless c says otherwise.
func (e *env) sink(t *testing.T, c Config, opts ...Option) *Sink {
	t.Helper()
	if c.Name == "" && c.Fields == nil {
		c.Name = secretName
	}
	if !c.Token.IsSet() && c.App == nil {
		c.Token = tokenFile(t, e.srv.Token())
	}
	c.BaseURL = e.srv.URL
	opts = append([]Option{WithClock(e.auto)}, opts...)
	s, err := NewWithOptions(c, e.log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// rewriteTransport lets a test alter requests on their way to the server.
type rewriteTransport func(*http.Request) *http.Request

func (f rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return http.DefaultTransport.RoundTrip(f(r))
}

package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/notify"
	"github.com/rekeyhq/rekey/notify/slack"
	"github.com/rekeyhq/rekey/notify/webhook"
)

// receiver is a webhook endpoint answering with a scripted list of
// statuses (then 200) and recording every body.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   []string
	got      chan struct{}
}

// token is part of the receiver's URL path, as in a Slack webhook URL.
const token = "T000/B000/XXXXsecretXXXX"

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, got: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/hooks/"+token || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		r.got <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() secret.Value { return secret.New(r.srv.URL + "/hooks/" + token) }

func (r *receiver) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

var event = notify.Event{
	Kind: notify.Rollback, Credential: "prod", RotationID: "abcd2345", Phase: "rolled_back",
	Error: "monitor: 3 consecutive failures", Time: time.Date(2026, 11, 25, 3, 10, 0, 0, time.UTC),
	OldKeyID: "key_old", NewKeyID: "key_new",
}

// drive advances the fake clock through every retry wait until the
// dispatcher has drained.
func drive(t *testing.T, clock *clockwork.FakeClock, d *notify.Dispatcher) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-ctx.Done():
			t.Fatal("dispatcher did not drain")
		default:
		}
		waitCtx, stop := context.WithTimeout(ctx, 20*time.Millisecond)
		if clock.BlockUntilContext(waitCtx, 1) == nil {
			clock.Advance(time.Minute)
		}
		stop()
	}
}

func TestWebhookRetriesServerErrorsThenDelivers(t *testing.T) {
	r := newReceiver(t, 500, 503)
	clock := clockwork.NewFakeClock()
	core, logs := observer.New(zap.DebugLevel)
	d := notify.NewDispatcher([]notify.Target{{Name: "notify[0] (webhook)", Notifier: webhook.New(r.url(), nil), On: []notify.Kind{notify.Rollback}}},
		notify.Retry{}, clock, zap.New(core))
	d.Notify(event)
	drive(t, clock, d)

	bodies := r.requests()
	if len(bodies) != 3 {
		t.Fatalf("%d requests, want 3 (500, 503, then 200)", len(bodies))
	}
	var p webhook.Payload
	if err := json.Unmarshal([]byte(bodies[2]), &p); err != nil {
		t.Fatal(err)
	}
	want := webhook.Payload{Event: "rollback", Credential: "prod", RotationID: "abcd2345", Phase: "rolled_back",
		Error: event.Error, Time: event.Time, OldKeyID: "key_old", NewKeyID: "key_new"}
	if p != want {
		t.Errorf("payload %+v, want %+v", p, want)
	}
	var keys map[string]any
	_ = json.Unmarshal([]byte(bodies[2]), &keys)
	for _, k := range []string{"event", "credential", "rotation_id", "phase", "error", "time", "old_key_id", "new_key_id"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("payload lacks %q", k)
		}
	}
	if n := logs.FilterMessage("notification not delivered").Len(); n != 0 {
		t.Errorf("%d delivery failures logged, want 0", n)
	}
}

func TestPermanentClientErrorIsNotRetriedAndHidesURL(t *testing.T) {
	r := newReceiver(t, 404, 404, 404)
	clock := clockwork.NewFakeClock()
	core, logs := observer.New(zap.DebugLevel)
	d := notify.NewDispatcher([]notify.Target{{Name: "notify[0] (slack)", Notifier: slack.New(r.url(), nil), On: []notify.Kind{notify.Rollback}}},
		notify.Retry{}, clock, zap.New(core))
	d.Notify(event)
	drive(t, clock, d)

	if n := len(r.requests()); n != 1 {
		t.Fatalf("%d requests, want 1: a 404 is permanent", n)
	}
	failed := logs.FilterMessage("notification not delivered").All()
	if len(failed) != 1 {
		t.Fatalf("%d failures logged, want 1", len(failed))
	}
	msg := failed[0].ContextMap()["error"].(string)
	if !strings.Contains(msg, "status 404") || !strings.Contains(msg, "after 1 attempts") {
		t.Errorf("error %q lacks the status or attempt count", msg)
	}
	assertNoToken(t, logs)
}

func TestRetriesAreBounded(t *testing.T) {
	r := newReceiver(t, 500, 500, 500, 500, 500, 500, 500)
	clock := clockwork.NewFakeClock()
	core, logs := observer.New(zap.DebugLevel)
	d := notify.NewDispatcher([]notify.Target{{Name: "n", Notifier: webhook.New(r.url(), nil), On: []notify.Kind{notify.Rollback}}},
		notify.Retry{Attempts: 4}, clock, zap.New(core))
	d.Notify(event)
	drive(t, clock, d)
	if n := len(r.requests()); n != 4 {
		t.Fatalf("%d requests, want 4 attempts", n)
	}
	if logs.FilterMessage("notification not delivered").Len() != 1 {
		t.Error("the given-up delivery was not logged")
	}
	assertNoToken(t, logs)
}

func TestUnreachableReceiverErrorHidesURL(t *testing.T) {
	r := newReceiver(t)
	u := r.url()
	r.srv.Close()
	err := slack.New(u, nil).Notify(context.Background(), event)
	if err == nil {
		t.Fatal("post to a closed server succeeded")
	}
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "/hooks/") {
		t.Fatalf("error leaks the URL: %v", err)
	}
}

func TestSlackTextAndSubscription(t *testing.T) {
	r := newReceiver(t)
	clock := clockwork.NewFakeClock()
	d := notify.NewDispatcher([]notify.Target{{Name: "n", Notifier: slack.New(r.url(), nil), On: []notify.Kind{notify.Failure, notify.Overdue}}},
		notify.Retry{}, clock, zap.NewNop())
	d.Notify(event) // rollback: not subscribed
	d.Notify(notify.Event{Kind: notify.Failure, Credential: "prod", RotationID: "r1", Phase: "failed", Error: "rollback of file:x: denied"})
	drive(t, clock, d)
	bodies := r.requests()
	if len(bodies) != 1 {
		t.Fatalf("%d requests, want only the subscribed failure", len(bodies))
	}
	var msg struct{ Text string }
	if err := json.Unmarshal([]byte(bodies[0]), &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "prod") || !strings.Contains(msg.Text, "FAILED") || !strings.Contains(msg.Text, "denied") {
		t.Errorf("text %q", msg.Text)
	}
	d.Notify(event) // after Close: dropped, no panic
}

func assertNoToken(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(toString(v))
		}
		if strings.Contains(line, "secret") || strings.Contains(line, "/hooks/") {
			t.Errorf("log line leaks the webhook URL: %s", line)
		}
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestUntrustedCertificateIsNotRetried(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a request got through an unverified TLS connection")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	clock := clockwork.NewFakeClock()
	core, logs := observer.New(zap.DebugLevel)
	d := notify.NewDispatcher([]notify.Target{{Name: "n", Notifier: webhook.New(secret.New(srv.URL+"/hooks/"+token), nil), On: []notify.Kind{notify.Rollback}}},
		notify.Retry{}, clock, zap.New(core))
	d.Notify(event)
	drive(t, clock, d)
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: an untrusted certificate stays untrusted", n)
	}
	failed := logs.FilterMessage("notification not delivered").All()
	if len(failed) != 1 {
		t.Fatalf("%d failures logged, want 1", len(failed))
	}
	msg := failed[0].ContextMap()["error"].(string)
	if !strings.Contains(msg, "certificate") || !strings.Contains(msg, "after 1 attempts") {
		t.Errorf("error %q lacks the cause or attempt count", msg)
	}
	assertNoToken(t, logs)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/etcdtest"
)

// daemonEnv is an env whose config listens on a free port and notifies a
// local webhook receiver, with one fake clock for every daemon started.
type daemonEnv struct {
	*env
	clock *clockwork.FakeClock
	hooks chan map[string]any
}

const hookToken = "hooktoken-0123456789"

func newDaemonEnv(t *testing.T) *daemonEnv { return newDaemonEnvState(t, nil) }

// newDaemonEnvState is newDaemonEnv with more lines in the config's state
// mapping.
func newDaemonEnvState(t *testing.T, state []string) *daemonEnv {
	e := newEnv(t, envOptions{window: "1m", interval: "10s", state: state})
	// Behind the real clock, so the simulator's real timestamps (revoked
	// at) come after the engine's fake ones, as they would in production.
	d := &daemonEnv{env: e, clock: clockwork.NewFakeClockAt(time.Now().Add(-time.Hour).Truncate(time.Second)), hooks: make(chan map[string]any, 10)}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.URL.Path != "/"+hookToken || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		d.hooks <- body
	}))
	t.Cleanup(hook.Close)
	writeFile(t, filepath.Join(e.Dir, "hook-url"), hook.URL+"/"+hookToken)
	cfg, err := os.ReadFile(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.Config, string(cfg)+fmt.Sprintf(`daemon:
  listen: 127.0.0.1:0
notify:
  - {type: webhook, url: file:%s/hook-url, on: [success, rollback, failure]}
`, e.Dir))
	return d
}

// daemonRun is one `rekey daemon` running in-process.
type daemonRun struct {
	t      *testing.T
	addr   string
	cancel context.CancelFunc
	code   chan int
	stderr *e2etest.SyncBuffer
	stdout *e2etest.SyncBuffer
}

func (d *daemonEnv) start() *daemonRun {
	d.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &daemonRun{t: d.t, cancel: cancel, code: make(chan int, 1), stderr: &e2etest.SyncBuffer{}, stdout: &e2etest.SyncBuffer{}}
	addr := make(chan string, 1)
	a := &app{stdout: r.stdout, stderr: r.stderr, clock: d.clock, listening: func(s string) { addr <- s }}
	go func() { r.code <- a.execute(ctx, []string{"-c", d.Config, "--log-level", "debug", "daemon"}) }()
	select {
	case r.addr = <-addr:
	case code := <-r.code:
		d.t.Fatalf("daemon exited %d: %s", code, r.stderr.String())
	case <-time.After(10 * time.Second):
		d.t.Fatal("daemon did not start")
	}
	d.t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the daemon's context, as SIGTERM does, and returns its
// exit code.
func (r *daemonRun) stop() int {
	r.cancel()
	select {
	case code := <-r.code:
		record([]byte(r.stdout.String()), []byte(r.stderr.String()))
		r.code <- code // later calls see it too
		return code
	case <-time.After(20 * time.Second):
		r.t.Fatal("daemon did not stop")
	}
	return -1
}

func (r *daemonRun) get(path string) (int, string) {
	r.t.Helper()
	resp, err := http.Get("http://" + r.addr + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	record(b)
	return resp.StatusCode, string(b)
}

// metric returns the value of the series printed exactly as series, e.g.
// `rekey_overdue{credential="prod"}`.
func (r *daemonRun) metric(series string) (float64, bool) {
	r.t.Helper()
	code, body := r.get("/metrics")
	if code != http.StatusOK {
		r.t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				r.t.Fatalf("%s: %v", sc.Text(), err)
			}
			return v, true
		}
	}
	return 0, false
}

func (r *daemonRun) mustMetric(series string) float64 {
	r.t.Helper()
	v, ok := r.metric(series)
	if !ok {
		r.t.Fatalf("no series %s", series)
	}
	return v
}

func (d *daemonEnv) audit() []audit.Entry {
	d.t.Helper()
	f, err := os.Open(filepath.Join(d.Dir, "state.db.audit.jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	entries, err := audit.Read(f)
	if err != nil {
		d.t.Fatal(err)
	}
	return entries
}

func (d *daemonEnv) lastPhase() string {
	es := d.audit()
	if len(es) == 0 {
		return ""
	}
	return es[len(es)-1].Phase
}

// sleeping waits until n goroutines sleep on the fake clock.
func (d *daemonEnv) sleeping(n int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.clock.BlockUntilContext(ctx, n); err != nil {
		d.t.Fatalf("nothing sleeps on the clock (last phase %q)", d.lastPhase())
	}
}

// untilPhase advances the fake clock by the monitor interval, each time
// the engine and the scheduler are all asleep (sleepers goroutines), until
// the audit log holds n lines of phase want, the last one last. While a
// credential with a journal rotates, the scheduler sleeps too (until the
// key would turn overdue), so sleepers is 2; for a first rotation it is 1.
func (d *daemonEnv) untilPhase(want string, n, sleepers int) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		count := 0
		for _, e := range d.audit() {
			if e.Phase == want {
				count++
			}
		}
		if count == n && d.lastPhase() == want {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if d.clock.BlockUntilContext(ctx, sleepers) == nil {
			d.clock.Advance(10 * time.Second)
		}
		cancel()
	}
	d.t.Fatalf("never reached %s; last phase %q", want, d.lastPhase())
}

func TestDaemonMetricsDuringAndAfterRotation(t *testing.T) {
	d := newDaemonEnv(t)
	r := d.start()
	if code, body := r.get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, _ := r.get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	// With SQLite the one daemon leads.
	if v := r.mustMetric(`rekey_leader{replica="` + newIdentity().replica() + `"}`); v != 1 {
		t.Errorf("rekey_leader %v with SQLite, want 1", v)
	}

	// Never rotated: the daemon starts at once and is soon monitoring.
	d.sleeping(1)
	if p := d.lastPhase(); p != "monitoring" {
		t.Fatalf("asleep in phase %q, want monitoring", p)
	}
	if v := r.mustMetric(`rekey_rotation_in_flight{credential="prod"}`); v != 1 {
		t.Errorf("in flight %v during monitoring, want 1", v)
	}
	if v := r.mustMetric(`rekey_rotations_total{credential="prod",outcome="success"}`); v != 0 {
		t.Errorf("a rotation counted before it finished: %v", v)
	}
	for _, p := range []string{"planned", "minted", "verified", "deployed"} {
		if v := r.mustMetric(`rekey_phase_duration_seconds_count{phase="` + p + `"}`); v != 1 {
			t.Errorf("phase %s observed %v times, want 1", p, v)
		}
	}

	d.untilPhase("done", 1, 1)
	done := d.doneAt()
	d.sleeping(1) // the scheduler, until the next due time
	if v := r.mustMetric(`rekey_rotations_total{credential="prod",outcome="success"}`); v != 1 {
		t.Errorf("rotations_total success %v, want 1", v)
	}
	if v := r.mustMetric(`rekey_rotation_in_flight{credential="prod"}`); v != 0 {
		t.Errorf("in flight %v after done, want 0", v)
	}
	if v := r.mustMetric(`rekey_phase_duration_seconds_sum{phase="monitoring"}`); v < 60 || v > 70 {
		t.Errorf("monitoring lasted %vs, want the 1m window", v)
	}
	if v := r.mustMetric(`rekey_last_success_timestamp_seconds{credential="prod"}`); !sameTime(v, done) {
		t.Errorf("last success %v, want %v", v, done)
	}
	if v := r.mustMetric(`rekey_next_due_timestamp_seconds{credential="prod"}`); !sameTime(v, done.Add(90*24*time.Hour)) {
		t.Errorf("next due %v, want %v", v, done.Add(90*24*time.Hour))
	}
	if v := r.mustMetric(`rekey_overdue{credential="prod"}`); v != 0 {
		t.Errorf("overdue %v, want 0", v)
	}
	d.clock.Advance(time.Hour)
	if v, want := r.mustMetric(`rekey_key_age_seconds{credential="prod"}`), d.clock.Since(done).Seconds(); math.Abs(v-want) > 0.001 || want < 3600 {
		t.Errorf("key age %v, want %v", v, want)
	}

	// The success was notified, with key IDs and no key value.
	select {
	case body := <-d.hooks:
		if body["event"] != "success" || body["credential"] != "prod" || body["new_key_id"] == "" || body["old_key_id"] != d.First.ID {
			t.Errorf("webhook body %v", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no success notification")
	}

	// Audit: one line per phase, all of one rotation, ending in success.
	var phases []string
	for _, e := range d.audit() {
		phases = append(phases, e.Phase)
	}
	if got := strings.Join(phases, ","); got != "planned,minted,verified,deployed,monitoring,revoking,done" {
		t.Errorf("audit phases %s", got)
	}
	last := d.audit()[len(phases)-1]
	if last.Outcome != "success" || last.OldKeyID != d.First.ID || len(last.Sinks) != 1 {
		t.Errorf("last audit line %+v", last)
	}

	if code := r.stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	logs := r.stderr.String()
	if strings.Contains(logs, hookToken) {
		t.Error("the webhook URL appears in the logs")
	}
	d.invariants()
}

func TestDaemonSIGTERMMidMonitoringThenRestartResumes(t *testing.T) {
	sigtermThenResume(t, newDaemonEnv(t))
}

// The same with the journal in etcd: the lock is released at SIGTERM, and
// the restarted daemon takes it again and resumes.
func TestDaemonOnEtcdSIGTERMThenRestartResumes(t *testing.T) {
	sigtermThenResume(t, newDaemonEnvState(t, etcdState(etcdtest.Start(t), "/daemon/")))
}

func sigtermThenResume(t *testing.T, d *daemonEnv) {
	r := d.start()
	d.sleeping(1)
	if p := d.lastPhase(); p != "monitoring" {
		t.Fatalf("phase %q, want monitoring", p)
	}
	d.clock.Advance(10 * time.Second) // part of the window
	d.sleeping(1)
	if code := r.stop(); code != exitOK {
		t.Fatalf("daemon exit %d after SIGTERM, want 0", code)
	}
	h := d.history()
	if len(h) != 1 || h[0].Phase != "monitoring" {
		t.Fatalf("journal after stop: %+v, want one rotation in monitoring", h)
	}
	for _, k := range d.Sim.Keys() {
		if k.ID == d.First.ID && k.Status != "active" {
			t.Fatal("old key revoked before the window passed")
		}
	}

	// The restart resumes the same rotation and watches a full window.
	r = d.start()
	resumed := d.clock.Now()
	d.untilPhase("done", 1, 1)
	if code := r.stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	h = d.history()
	if len(h) != 1 || h[0].Phase != "done" {
		t.Fatalf("history %+v, want the one rotation done", h)
	}
	var revoking time.Time
	for _, tr := range h[0].Transitions {
		if tr.Phase == "revoking" {
			revoking = tr.At
		}
	}
	if revoking.Sub(resumed) < time.Minute {
		t.Errorf("revoking %v after the restart, want a full 1m window", revoking.Sub(resumed))
	}
	seen := map[string]int{}
	for _, e := range d.audit() {
		if e.RotationID != h[0].ID {
			t.Errorf("audit line of another rotation: %+v", e)
		}
		seen[e.Phase]++
	}
	for _, p := range []string{"planned", "minted", "verified", "deployed", "monitoring", "revoking", "done"} {
		if seen[p] != 1 {
			t.Errorf("audit has %d %s lines, want 1 (across the restart)", seen[p], p)
		}
	}
	d.invariants()
}

func TestDaemonSIGHUPReloadsGoodConfigAndKeepsOnBad(t *testing.T) {
	d := newDaemonEnv(t)
	r := d.start()
	d.untilPhase("done", 1, 1)
	done := d.doneAt()
	d.sleeping(1)
	nextDue := `rekey_next_due_timestamp_seconds{credential="prod"}`
	if v := r.mustMetric(nextDue); !sameTime(v, done.Add(90*24*time.Hour)) {
		t.Fatalf("next due %v before reload", v)
	}

	// A real SIGHUP: the daemon has registered for it before listening.
	good, _ := os.ReadFile(d.Config)
	writeFile(t, d.Config, strings.Replace(string(good), "rotate_every: 90d", "rotate_every: 30d", 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := float64(done.Add(30*24*time.Hour).UnixNano()) / 1e9
	if !eventually(func() bool { v, _ := r.metric(nextDue); return sameTime(v, done.Add(30*24*time.Hour)) }) {
		t.Fatalf("next due not %v after reload; logs:\n%s", want, r.stderr.String())
	}

	writeFile(t, d.Config, "version: 1\ncredentials: [not, a, map]\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool {
		return strings.Contains(r.stderr.String(), "reload: invalid config; keeping the running one")
	}) {
		t.Fatalf("bad config not reported; logs:\n%s", r.stderr.String())
	}
	if code, _ := r.get("/readyz"); code != 200 {
		t.Errorf("/readyz %d after a bad reload", code)
	}
	if v := r.mustMetric(nextDue); !sameTime(v, done.Add(30*24*time.Hour)) {
		t.Errorf("next due %v after a bad reload, want the running config's %v", v, want)
	}
	// The running config still rotates: 30 days on, prod is due.
	d.clock.Advance(done.Add(30 * 24 * time.Hour).Sub(d.clock.Now()))
	d.untilPhase("done", 2, 2)
	dones := 0
	for _, e := range d.audit() {
		if e.Phase == "done" {
			dones++
		}
	}
	if dones != 2 {
		t.Fatalf("%d rotations done, want 2", dones)
	}
	if code := r.stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// doneAt is when the last rotation in the audit log finished.
func (d *daemonEnv) doneAt() time.Time {
	d.t.Helper()
	es := d.audit()
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Phase == "done" {
			return es[i].Time
		}
	}
	d.t.Fatal("no rotation done")
	return time.Time{}
}

// sameTime compares a timestamp metric with t to the millisecond.
func sameTime(v float64, t time.Time) bool {
	return math.Abs(v-float64(t.UnixNano())/1e9) < 0.001
}

// eventually polls cond for up to 10s: for effects of another goroutine
// that the test cannot wait on directly (a signal being handled).
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestDaemonBadConfigExits2(t *testing.T) {
	d := newDaemonEnv(t)
	writeFile(t, d.Config, "version: 1\n")
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"-c", d.Config, "daemon"}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want 2: %s", code, errOut.String())
	}
}

// TestDaemonMetricsPresentFromStart scrapes a freshly started daemon: the
// build info gauge and every series of the configured credential exist
// before any of them has an event, zero-valued.
func TestDaemonMetricsPresentFromStart(t *testing.T) {
	d := newDaemonEnv(t)
	r := d.start()
	_, body := r.get("/metrics")
	b := currentBuild()
	info := fmt.Sprintf(`rekey_build_info{commit=%q,goversion=%q,version=%q}`, b.Commit, b.GoVersion, b.Version)
	if v := r.mustMetric(info); v != 1 {
		t.Errorf("%s = %v, want 1", info, v)
	}
	for _, o := range []string{"success", "rollback", "failure"} {
		if v := r.mustMetric(`rekey_rotations_total{credential="prod",outcome="` + o + `"}`); v != 0 {
			t.Errorf("outcome %s = %v before any rotation finished", o, v)
		}
	}
	// The daemon may already be rotating; nothing has left these phases.
	for _, p := range []string{"monitoring", "draining", "revoking", "rolling_back"} {
		if v := r.mustMetric(`rekey_phase_duration_seconds_count{phase="` + p + `"}`); v != 0 {
			t.Errorf("phase %s observed %v times", p, v)
		}
	}
	for _, s := range []string{"rekey_overdue", "rekey_rotation_in_flight", "rekey_next_due_timestamp_seconds", "rekey_last_success_timestamp_seconds"} {
		if !strings.Contains(body, s+`{credential="prod"}`) {
			t.Errorf("no series %s for prod", s)
		}
	}
}

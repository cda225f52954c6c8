package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/etcdtest"
)

// These tests run the real binary as separate processes ("hosts", each
// with its own state.path directory for its audit log) on one etcd
// journal, with the smallest lock TTL the config allows: the lease TTL is
// what they measure, so they run on real time, waiting on conditions.

const (
	haTTL    = 2 * time.Second
	haWindow = 4 * time.Second
	haWait   = 60 * time.Second
)

// haEnv is an env on etcd with lock_ttl haTTL, a 4s monitoring window and a
// daemon listening on a free port.
func haEnv(t *testing.T, c *etcdtest.Cluster, prefix string) *env {
	t.Helper()
	e := newEnv(t, envOptions{window: "4s", interval: "1s", state: []string{"backend: etcd",
		"etcd: {endpoints: [" + strings.Join(c.Endpoints(), ", ") + "], prefix: " + prefix + ", lock_ttl: " + haTTL.String() + ", request_timeout: 3s}"}})
	b, err := os.ReadFile(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.Config, string(b)+"daemon:\n  listen: 127.0.0.1:0\n")
	return e
}

// host is one replica's config: the env's, with state.path (so the audit
// log) in a directory of its own.
type host struct {
	name, config, dir string
}

func (e *env) host(name string) host {
	e.t.Helper()
	dir := filepath.Join(e.Dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	return host{name: name, dir: dir, config: variant(e.t, e, name+".yaml", e.Dir+"/state.db", dir+"/state.db")}
}

// auditLines counts the host's audit log lines.
func (h host) auditLines(t *testing.T) int {
	b, err := os.ReadFile(h.dir + "/state.db.audit.jsonl")
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// proc is one rekey process.
type proc struct {
	t   *testing.T
	h   host
	cmd *exec.Cmd
	out *e2etest.SyncBuffer
}

func (h host) start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, h: h, cmd: e2etest.Command(t, h.config, args...), out: &e2etest.SyncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		p.cmd.Wait()
		record([]byte(p.out.String()))
	})
	return p
}

// logLine is one JSON log line.
type logLine struct {
	Msg     string    `json:"msg"`
	TS      time.Time `json:"ts"`
	Listen  string    `json:"listen"`
	Replica string    `json:"replica"`
}

// web returns the daemon's HTTP endpoints, and its replica name (host:pid).
func (p *proc) web() (*daemonRun, string) {
	p.t.Helper()
	l := p.waitLog("daemon started", 1)
	return &daemonRun{t: p.t, addr: l.Listen}, l.Replica
}

// hostOf is the host of a replica name host:pid.
func (r *daemonRun) hostOf(replica string) string {
	host, _, _ := strings.Cut(replica, ":")
	return host
}

// leaderJSON is GET /leader.
func leaderJSON(t *testing.T, r *daemonRun) leaderStatus {
	t.Helper()
	code, body := r.get("/leader")
	var st leaderStatus
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/leader: %d %s", code, body)
	}
	return st
}

// checkLeads checks what lead and standby say of themselves: both ready,
// /leader and rekey_leader naming lead.
func checkLeads(t *testing.T, lead, standby *proc) {
	t.Helper()
	lw, lr := lead.web()
	sw, sr := standby.web()
	for _, w := range []*daemonRun{lw, sw} {
		if code, _ := w.get("/readyz"); code != 200 {
			t.Errorf("/readyz %d on %s, want 200 on leader and standby", code, w.addr)
		}
	}
	if st := leaderJSON(t, lw); !st.Leading || st.Leader == nil || st.Leader.PID != lead.cmd.Process.Pid {
		t.Errorf("leader's /leader: %+v", st)
	}
	if st := leaderJSON(t, sw); st.Leading || st.Leader == nil || st.Leader.PID != lead.cmd.Process.Pid || st.Replica.PID != standby.cmd.Process.Pid {
		t.Errorf("standby's /leader: %+v, want the leader pid %d", st, lead.cmd.Process.Pid)
	}
	if _, page := lw.get("/"); !strings.Contains(page, "this replica leads") {
		t.Error("the leader's status page does not say it leads")
	}
	if _, page := sw.get("/"); !strings.Contains(page, fmt.Sprintf("standby (leader: %s pid %d)", lw.hostOf(lr), lead.cmd.Process.Pid)) {
		t.Error("the standby's status page does not name the leader")
	}
	if v := lw.mustMetric(`rekey_leader{replica="` + lr + `"}`); v != 1 {
		t.Errorf("leader's rekey_leader %v, want 1", v)
	}
	if v := sw.mustMetric(`rekey_leader{replica="` + sr + `"}`); v != 0 {
		t.Errorf("standby's rekey_leader %v, want 0", v)
	}
}

// lines returns the process's JSON log lines.
func (p *proc) lines() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for the n-th (from 1) log line whose message starts
// with msg, and returns it.
func (p *proc) waitLog(msg string, n int) logLine {
	p.t.Helper()
	var got logLine
	if !waitFor(haWait, func() bool {
		k := 0
		for _, l := range p.lines() {
			if strings.HasPrefix(l.Msg, msg) {
				if k++; k == n {
					got = l
					return true
				}
			}
		}
		return false
	}) {
		p.t.Fatalf("%s never logged %q (#%d):\n%s", p.h.name, msg, n, p.out.String())
	}
	return got
}

func (p *proc) count(msg string) int {
	k := 0
	for _, l := range p.lines() {
		if strings.HasPrefix(l.Msg, msg) {
			k++
		}
	}
	return k
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// waitPhase waits until the journal's newest rotation of prod is in phase.
func (e *env) waitPhase(phase string) e2etest.HistoryEntry {
	e.t.Helper()
	var last e2etest.HistoryEntry
	if !waitFor(haWait, func() bool {
		h := e.history()
		if len(h) == 0 {
			return false
		}
		last = h[0]
		return last.Phase == phase
	}) {
		e.t.Fatalf("journal never reached %s; last %+v", phase, last)
	}
	return last
}

// revokedAt returns when the simulator revoked the key id (zero if not).
func (e *env) revokedAt(id string) time.Time {
	for _, k := range e.Sim.Keys() {
		if k.ID == id {
			return k.Revoked
		}
	}
	e.t.Fatalf("no key %s at the simulator", id)
	return time.Time{}
}

// twoReplicas starts replica a, waits until it leads, then b, and waits
// until it stands by.
func twoReplicas(t *testing.T, e *env) (a, b *proc) {
	a = e.host("a").start(t, "daemon")
	a.waitLog("gained leadership", 1)
	b = e.host("b").start(t, "daemon")
	b.waitLog("standing by", 1)
	if b.count("gained leadership") != 0 {
		t.Fatalf("b leads beside a:\n%s", b.out.String())
	}
	checkLeads(t, a, b)
	return a, b
}

// SIGKILL of the leader mid-window: the standby takes over, finishes the
// same rotation with a full window of its own, and mints nothing.
func TestHALeaderKilledStandbyFinishes(t *testing.T) {
	e := haEnv(t, etcdtest.Start(t), "/ha-kill/")
	a, b := twoReplicas(t, e)
	e.waitPhase("monitoring")
	checks := e.app.Served.Load()
	if !waitFor(haWait, func() bool { return e.app.Served.Load() > checks }) {
		t.Fatal("the leader never checked health while monitoring")
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	a.cmd.Wait()
	checks = e.app.Served.Load()

	gained := b.waitLog("gained leadership", 1)
	if !waitFor(haWait, func() bool { return e.app.Served.Load() > checks }) {
		t.Fatalf("the new leader never resumed monitoring:\n%s", b.out.String())
	}
	resumed := time.Now()
	t.Logf("failover with lock_ttl %s: leadership %v after SIGKILL, monitoring resumed %v after it",
		haTTL, gained.TS.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond))
	if d := gained.TS.Sub(killed); d > 2*haTTL+time.Second {
		t.Errorf("the standby led %v after the kill, want within about the lock TTL %v", d, haTTL)
	}

	done := e.waitPhase("done")
	bw, _ := b.web()
	if st := leaderJSON(t, bw); !st.Leading {
		t.Errorf("the new leader's /leader: %+v", st)
	}
	if n := len(e.Sim.Keys()); n != 2 {
		t.Errorf("the simulator holds %d keys, want 2 (the first and one minted): a second key was minted", n)
	}
	if h := e.history(); len(h) != 1 {
		t.Errorf("%d rotations, want the one rotation", len(h))
	}
	rev := e.revokedAt(done.OldKeyID)
	if rev.IsZero() || rev.Sub(gained.TS) < haWindow {
		t.Errorf("old key revoked %v after the takeover, want at least the %v window", rev.Sub(gained.TS), haWindow)
	}
	e.invariants()
}

// SIGSTOP of the leader beyond its lease: the standby takes over and
// finishes; the paused leader, continued, journals and revokes nothing and
// steps down.
func TestHALeaderPausedIsFenced(t *testing.T) {
	e := haEnv(t, etcdtest.Start(t), "/ha-stop/")
	a, b := twoReplicas(t, e)
	e.waitPhase("monitoring")
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	auditA := a.h.auditLines(t)
	gained := b.waitLog("gained leadership", 1)
	done := e.waitPhase("done")
	rev := e.revokedAt(done.OldKeyID)
	if rev.Sub(gained.TS) < haWindow {
		t.Errorf("old key revoked %v after the takeover, want at least the %v window", rev.Sub(gained.TS), haWindow)
	}
	histBefore := e.history()

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	continued := time.Now()
	lost := a.waitLog("lost leadership", 1)
	// Logged once the scheduler returned: its rotation attempt has ended.
	down := a.waitLog("stepped down", 1)
	t.Logf("the paused leader saw its leadership lost %v after SIGCONT, stepped down after %v",
		lost.TS.Sub(continued).Round(time.Millisecond), down.TS.Sub(continued).Round(time.Millisecond))
	if n := a.h.auditLines(t); n != auditA {
		t.Errorf("the paused leader journaled after it resumed: audit %d lines, was %d", n, auditA)
	}
	if a.count("gained leadership") != 1 {
		t.Errorf("the paused leader led again while b leads:\n%s", a.out.String())
	}
	if got := e.revokedAt(done.OldKeyID); !got.Equal(rev) {
		t.Errorf("old key's revocation moved from %v to %v", rev, got)
	}
	if n := len(e.Sim.Keys()); n != 2 {
		t.Errorf("the simulator holds %d keys, want 2", n)
	}
	histAfter := e.history()
	if len(histAfter) != 1 || len(histAfter[0].Transitions) != len(histBefore[0].Transitions) {
		t.Errorf("journal changed after the paused leader resumed: %+v, was %+v", histAfter, histBefore)
	}
	e.invariants()
}

// Two `rekey rotate prod` on different hosts at once: one rotates, the
// other reports busy (I5 across machines).
func TestHATwoHostsRotateAtOnce(t *testing.T) {
	e := haEnv(t, etcdtest.Start(t), "/ha-rotate/")
	first := e.host("a").start(t, "rotate", "prod")
	first.waitLog("phase planned", 1)
	code, out, errOut := e2etest.Run(t, e2etest.Command(t, e.host("b").config, "rotate", "prod"))
	record([]byte(out), []byte(errOut))
	if code != 1 || !strings.Contains(out+errOut, "busy") {
		t.Fatalf("second host: exit %d, want 1 busy\n%s%s", code, out, errOut)
	}
	if err := first.cmd.Wait(); exitCode(err) != 0 {
		t.Fatalf("first host: exit %d\n%s", exitCode(err), first.out.String())
	}
	if h := e.history(); len(h) != 1 || h[0].Phase != "done" {
		t.Errorf("history %+v, want exactly one done rotation", h)
	}
	if n := len(e.Sim.Keys()); n != 2 {
		t.Errorf("the simulator holds %d keys, want 2", n)
	}
	e.invariants()
}

// On a three-member cluster: with one member lost a rotation goes on;
// with two (no quorum) the leader steps down and nothing happens, no sink
// write and no revocation, until a quorum is back; then the rotation
// resumes with a full window and finishes.
func TestHAQuorumLossPausesRotation(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	e := haEnv(t, c, "/ha-quorum/")
	ld := c.Leader(t)
	c.Members[(ld+1)%3].Stop()

	a := e.host("a").start(t, "daemon")
	a.waitLog("gained leadership", 1)
	mon := e.waitPhase("monitoring") // planned → monitoring with a member down
	var monAt time.Time
	for _, tr := range mon.Transitions {
		if tr.Phase == "monitoring" {
			monAt = tr.At
		}
	}
	sinkBefore, err := os.ReadFile(e.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	statBefore, _ := os.Stat(e.EnvFile)
	auditBefore := a.h.auditLines(t)

	c.Members[(ld+2)%3].Stop()
	lostQuorum := time.Now()
	lost := a.waitLog("lost leadership", 1)
	t.Logf("without quorum the leader stepped down %v after the second member stopped", lost.TS.Sub(lostQuorum).Round(time.Millisecond))
	// Hold the quorum lost past the end the window had: a leader that went
	// on would revoke by then.
	time.Sleep(time.Until(monAt.Add(haWindow + 2*haTTL)))

	sinkAfter, err := os.ReadFile(e.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	statAfter, _ := os.Stat(e.EnvFile)
	if string(sinkAfter) != string(sinkBefore) || !statAfter.ModTime().Equal(statBefore.ModTime()) {
		t.Error("the sink was written while there was no quorum")
	}
	if !e.revokedAt(e.First.ID).IsZero() {
		t.Error("the old key was revoked while there was no quorum")
	}
	if n := len(e.Sim.Keys()); n != 2 {
		t.Errorf("the simulator holds %d keys, want 2", n)
	}
	if n := a.h.auditLines(t); n != auditBefore {
		t.Errorf("audit grew from %d to %d lines without quorum", auditBefore, n)
	}

	c.Members[(ld+2)%3].Start()
	back := time.Now()
	regained := a.waitLog("gained leadership", 2)
	done := e.waitPhase("done")
	rev := e.revokedAt(done.OldKeyID)
	if rev.Before(back) || rev.Sub(regained.TS) < haWindow {
		t.Errorf("old key revoked %v after the quorum came back and %v after leading again, want a full %v window after",
			rev.Sub(back), rev.Sub(regained.TS), haWindow)
	}
	if h := e.history(); len(h) != 1 {
		t.Errorf("%d rotations, want the one", len(h))
	}
	e.invariants()
}

// A rotation another host started (a `rekey rotate` on a CI runner) and
// that died mid-window is resumed by the leading daemon soon after the
// dead process's lock expires, not at the credential's next due time
// (rotate_every after the daemon's own rotation): the leader watches the
// journal in etcd. It finishes that rotation, with a full window of its
// own, and mints nothing.
func TestHADaemonResumesAnotherHostsDeadRotation(t *testing.T) {
	e := haEnv(t, etcdtest.Start(t), "/ha-other/")
	d := e.host("a").start(t, "daemon")
	d.waitLog("gained leadership", 1)
	first := e.waitPhase("done")

	ci := e.host("ci").start(t, "rotate", "prod", "--force")
	mon := e.waitPhase("monitoring")
	if mon.ID == first.ID {
		t.Fatal("the CI host's rotation never started")
	}
	if err := ci.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ci.cmd.Wait()

	done := e.waitPhase("done")
	if done.ID != mon.ID {
		t.Fatalf("newest rotation %s is done, want the CI host's %s resumed", done.ID, mon.ID)
	}
	t.Logf("the daemon finished the dead CI rotation %v after the kill (lock_ttl %s, window %s)",
		time.Since(killed).Round(time.Millisecond), haTTL, haWindow)
	if h := e.history(); len(h) != 2 {
		t.Errorf("%d rotations, want 2 (the daemon's and the CI host's)", len(h))
	}
	if n := len(e.Sim.Keys()); n != 3 {
		t.Errorf("the simulator holds %d keys, want 3 (the first and one per rotation)", n)
	}
	if rev := e.revokedAt(done.OldKeyID); rev.IsZero() || rev.Sub(killed) < haWindow {
		t.Errorf("old key revoked %v after the kill, want at least the %v window", rev.Sub(killed), haWindow)
	}
	e.invariants()
}

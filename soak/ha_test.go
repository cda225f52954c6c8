package soak

// The HA form of the soak (issue 13): three `rekey daemon` replicas on a
// three-member etcd cluster, the world's credentials, sinks, clients and
// issuer/sink faults, and a chaos loop that SIGKILLs and SIGSTOPs replicas
// and stops etcd members. See README.md, "HA soak".

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	yaml "go.yaml.in/yaml/v3"

	"github.com/rekeyhq/rekey/internal/e2etest"
	"github.com/rekeyhq/rekey/internal/etcdtest"
)

// logEntry is one JSON log line of a rekey process, the fields the HA
// soak reads.
type logEntry struct {
	Msg        string    `json:"msg"`
	TS         time.Time `json:"ts"`
	Credential string    `json:"credential"`
	RotationID string    `json:"rotation_id"`
	Phase      string    `json:"phase"`
}

// haLogs is a proc's stderr in the HA soak: kept whole (for the log file
// and the leak scan) and passed to on one JSON line at a time.
type haLogs struct {
	p    *proc
	on   func(logEntry)
	mu   sync.Mutex
	line []byte
}

func (l *haLogs) Write(b []byte) (int, error) {
	l.p.errOut.Write(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line = append(l.line, b...)
	for {
		i := bytes.IndexByte(l.line, '\n')
		if i < 0 {
			break
		}
		var e logEntry
		if json.Unmarshal(l.line[:i], &e) == nil {
			l.on(e)
		}
		l.line = l.line[i+1:]
	}
	return len(b), nil
}

// replica is one daemon replica's slot: its config (own state.path, so its
// own audit log) and the process running now, restarted after each death.
type replica struct {
	idx    int
	config string
	rng    *mrand.Rand // restart delays; used by its supervisor only

	mu     sync.Mutex
	p      *proc
	alive  bool
	exited chan struct{} // closed when p exits
	killed time.Time     // when the harness last SIGKILLed p
}

// failover is one measurement: a leader's SIGKILL until the next
// leader's first log line about a rotation the dead leader had in flight.
type failover struct {
	killed   time.Time
	from     *proc
	inFlight map[string]bool // rotations the killed leader had journaled last, unfinished
	led      time.Time       // when a replica next gained leadership
	ledBy    *proc           // that replica: only its acts end the measurement
	done     chan struct{}
}

// ha is one HA soak run.
type ha struct {
	t       *testing.T
	w       *world
	cluster *etcdtest.Cluster
	ttl     time.Duration

	replicas []*replica
	drivers  map[string]*haDriver
	winding  atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup // supervisors
	clis     sync.WaitGroup // forced rotations

	mu         sync.Mutex
	leader     *proc // the replica process leading now, nil if none
	lastLeader *proc
	terms      int // leaderships gained
	changes    int // leaderships gained by another replica than the last
	pending    *failover
	samples    []time.Duration        // SIGKILL → the next leader's first log line about a rotation the dead one had in flight
	toLead     []time.Duration        // SIGKILL → that leader's "gained leadership"
	windows    map[string][]time.Time // per rotation, each "monitoring for" (a window start) any process logged
	// lastPhase is each rotation's last journaled phase, lastBy the
	// process that last logged a line about it.
	lastPhase map[string]string
	lastBy    map[string]*proc
	fenced    int // "lost the credential's lock" lines
	counts    map[string]int
	bad       []string          // unexpected exits
	cliConfig map[string]string // credential → its CLI host's config
	exits     map[string]int
	timeline  strings.Builder
}

// haDriver arms the world's faults for one credential's rotations, as the
// daemon's leader starts them: the next fault is armed when a rotation
// ends, so that it is in place when the next one starts.
type haDriver struct {
	h   *ha
	c   *cred
	rng *mrand.Rand

	mu    sync.Mutex
	f     *fault
	rid   string
	timer *time.Timer
}

func (h *ha) count(what string) {
	h.mu.Lock()
	h.counts[what]++
	h.mu.Unlock()
}

func (h *ha) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(&h.timeline, time.Now().UTC().Format("15:04:05.000")+" "+format+"\n", args...)
}

// haConfig writes dst: the world's config src on the etcd journal, with
// state.path statePath and, for a replica, a daemon listening on a free
// port.
func (h *ha) haConfig(src, dst, statePath string) {
	t := h.t
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	st, _ := doc["state"].(map[string]any)
	doc["state"] = map[string]any{
		"backend":        "etcd",
		"path":           statePath,
		"encryption_key": st["encryption_key"],
		"etcd":           map[string]any{"endpoints": h.cluster.Endpoints(), "prefix": "/soak-ha/", "lock_ttl": h.ttl.String()},
	}
	d, _ := doc["daemon"].(map[string]any)
	if d == nil {
		d = map[string]any{}
	}
	d["listen"] = "127.0.0.1:0"
	doc["daemon"] = d
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the binary like world.start, every log line going to
// h.event as coming from who (a replica index, -1 for a CLI run).
func (h *ha) start(config string, who int, args ...string) *proc {
	w := h.w
	n := w.procs.Add(1)
	p := &proc{log: filepath.Join(w.dir, "logs", fmt.Sprintf("%06d.log", n))}
	p.cmd = e2etest.Command(w.t, config, args...)
	p.cmd.Env = w.env
	p.cmd.Stdout = p
	p.cmd.Stderr = &haLogs{p: p, on: func(e logEntry) { h.event(who, p, e) }}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		h.logf("start %s: %v", strings.Join(args, " "), err)
		return nil
	}
	return p
}

// event handles one log line of one process.
func (h *ha) event(who int, p *proc, e logEntry) {
	if e.RotationID != "" {
		h.mu.Lock()
		h.lastBy[e.RotationID] = p
		if f := h.pending; f != nil && p == f.ledBy && f.inFlight[e.RotationID] {
			h.samples = append(h.samples, e.TS.Sub(f.killed))
			h.toLead = append(h.toLead, f.led.Sub(f.killed))
			h.pending = nil
			close(f.done)
		}
		h.mu.Unlock()
	}
	switch {
	case strings.HasPrefix(e.Msg, "gained leadership"):
		h.mu.Lock()
		h.terms++
		if h.lastLeader != nil && h.lastLeader != p {
			h.changes++
		}
		h.leader, h.lastLeader = p, p
		if f := h.pending; f != nil && f.led.IsZero() && p != f.from {
			f.led, f.ledBy = e.TS, p
		}
		h.mu.Unlock()
		h.logf("r%d pid %d gained leadership", who, p.cmd.Process.Pid)
	case strings.HasPrefix(e.Msg, "lost leadership"), strings.HasPrefix(e.Msg, "stepped down"):
		h.mu.Lock()
		if h.leader == p {
			h.leader = nil
		}
		h.mu.Unlock()
		h.logf("r%d pid %d %s", who, p.cmd.Process.Pid, e.Msg)
	case strings.HasPrefix(e.Msg, "lost the credential's lock"):
		h.mu.Lock()
		h.fenced++
		h.mu.Unlock()
		h.logf("r%d pid %d fenced: %s %s in %s", who, p.cmd.Process.Pid, e.Credential, e.RotationID, e.Phase)
	case strings.HasPrefix(e.Msg, "monitoring for ") && e.RotationID != "":
		h.mu.Lock()
		h.windows[e.RotationID] = append(h.windows[e.RotationID], e.TS)
		h.mu.Unlock()
	case e.Phase != "" && e.Msg == "phase "+e.Phase && e.RotationID != "":
		h.mu.Lock()
		h.lastPhase[e.RotationID] = e.Phase
		h.mu.Unlock()
		if d := h.drivers[e.Credential]; d != nil {
			d.onPhase(p, e)
		}
	}
}

// draw picks the next fault: none half the time, else one of the world's
// issuer and sink faults (c.pick), leaving out the world faults, whose
// judges read one attempt by one process.
func (d *haDriver) draw() *fault {
	for {
		if d.rng.IntN(2) == 0 {
			return &fault{name: "none", arm: func() {}, disarm: func() {}}
		}
		f := d.c.pick(d.rng)
		if f.judge == nil && !excluded(f.name) {
			return f
		}
	}
}

// next arms the fault for the credential's next rotation; under d.mu.
func (d *haDriver) next() {
	d.f = nil
	if d.h.winding.Load() {
		return
	}
	d.f = d.draw()
	d.f.arm()
}

func (d *haDriver) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// onPhase is a journaled phase of the credential's rotation, from the
// process p that journaled it.
func (d *haDriver) onPhase(p *proc, e logEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.RotationID != d.rid {
		d.rid = e.RotationID
		d.stopTimer()
		if d.f != nil {
			d.h.count("fault " + d.f.name)
			d.h.logf("%s %s fault %s", d.c.name, d.rid, d.f.name)
			if d.f.killIn > 0 {
				d.timer = time.AfterFunc(d.f.killIn, func() { d.h.killProc(p) })
			}
		}
	}
	if d.f != nil && d.f.onPhase != nil {
		d.f.onPhase(e.Phase, p)
	}
	if terminal(e.Phase) {
		d.stopTimer()
		if d.f != nil {
			d.f.disarm()
		}
		d.next()
		if e.Phase != "done" && !d.h.winding.Load() {
			// The daemon backs off a minute (and more) after a rotation that
			// did not end done; an operator's `rekey rotate --force` from
			// another host does not wait, and contends for the same lock.
			delay := time.Duration(500+d.rng.IntN(1500)) * time.Millisecond
			time.AfterFunc(delay, func() { d.h.forceRotate(d.c) })
		}
	}
}

func terminal(phase string) bool {
	return phase == "done" || phase == "rolled_back" || phase == "failed"
}

// forceRotate runs `rekey rotate NAME --force` on the CLI host of c.
func (h *ha) forceRotate(c *cred) {
	h.mu.Lock()
	if h.winding.Load() {
		h.mu.Unlock()
		return
	}
	h.clis.Add(1)
	h.mu.Unlock()
	defer h.clis.Done()
	p := h.start(h.cliConfig[c.name], -1, "rotate", c.name, "--force")
	if p == nil {
		return
	}
	h.logf("cli pid %d: rotate %s --force", p.cmd.Process.Pid, c.name)
	code, _ := p.wait()
	h.logf("cli pid %d: exit %d", p.cmd.Process.Pid, code)
	h.count(fmt.Sprintf("cli rotate --force exit %d", code))
	if code != 0 && code != 1 && code != -1 {
		h.mu.Lock()
		h.bad = append(h.bad, fmt.Sprintf("rotate %s --force: exit %d, log %s", c.name, code, p.log))
		h.mu.Unlock()
	}
}

// disarm takes the credential's fault away for good (wind-down).
func (d *haDriver) disarm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopTimer()
	if d.f != nil {
		d.f.disarm()
		d.f = nil
	}
}

// killProc SIGKILLs p, whichever replica runs it (a fault's kill).
func (h *ha) killProc(p *proc) {
	for _, r := range h.replicas {
		r.mu.Lock()
		if r.p == p && r.alive {
			p.cmd.Process.Kill()
		}
		r.mu.Unlock()
	}
}

// measure starts a failover measurement for the leader p killed at: the
// rotations p journaled last and left unfinished are in flight, and the
// first log line of another replica about one of them ends it. Nothing is
// measured while another measurement runs, or if p had nothing in flight
// (the next leader's first act then waits for a due time, not on the
// failover). Under h.mu.
func (h *ha) measure(p *proc, at time.Time) *failover {
	if h.pending != nil {
		return nil
	}
	f := &failover{killed: at, from: p, inFlight: map[string]bool{}, done: make(chan struct{})}
	for rid, by := range h.lastBy {
		if by == p && !terminal(h.lastPhase[rid]) {
			f.inFlight[rid] = true
		}
	}
	if len(f.inFlight) == 0 {
		h.counts["leader killed idle (failover not measured)"]++
		return nil
	}
	h.pending = f
	return f
}

// supervise runs replica r's daemon and, after each death, starts it
// again after a pause, as systemd or Kubernetes would, until wind-down.
func (h *ha) supervise(r *replica) {
	defer h.wg.Done()
	for {
		r.mu.Lock()
		if h.winding.Load() {
			r.mu.Unlock()
			return
		}
		p := h.start(r.config, r.idx, "daemon")
		if p == nil {
			r.mu.Unlock()
			return
		}
		exited := make(chan struct{})
		r.p, r.alive, r.exited, r.killed = p, true, exited, time.Time{}
		r.mu.Unlock()
		h.logf("r%d pid %d started", r.idx, p.cmd.Process.Pid)

		code, _ := p.wait()
		r.mu.Lock()
		r.alive = false
		killed := r.killed
		r.mu.Unlock()
		h.mu.Lock()
		h.exits[fmt.Sprint(code)]++
		if h.leader == p {
			h.leader = nil
			if code == -1 && killed.IsZero() && !h.winding.Load() {
				// A fault's kill (the world's kill-at-PHASE, kill-timed)
				// measured from the exit, moments after the kill.
				h.measure(p, time.Now())
			}
		}
		h.mu.Unlock()
		close(exited)
		h.logf("r%d pid %d exited %d", r.idx, p.cmd.Process.Pid, code)
		if code == -1 && killed.IsZero() {
			h.count("kill by fault")
		}
		delay := time.Duration(300+r.rng.IntN(2700)) * time.Millisecond
		select {
		case <-time.After(delay):
		case <-h.stop:
			return
		}
	}
}

// pickReplica returns the leading replica (two times in three when one
// leads) or a random one, and whether it leads.
func (h *ha) pickReplica(rng *mrand.Rand) (*replica, *proc, bool) {
	h.mu.Lock()
	leader := h.leader
	h.mu.Unlock()
	if leader != nil && rng.IntN(3) > 0 {
		for _, r := range h.replicas {
			r.mu.Lock()
			p, alive := r.p, r.alive
			r.mu.Unlock()
			if p == leader && alive {
				return r, p, true
			}
		}
	}
	r := h.replicas[rng.IntN(len(h.replicas))]
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.alive {
		return nil, nil, false
	}
	return r, r.p, r.p == leader
}

// chaos runs the chaos loop on the test's goroutine until end: one action
// at a time, with a pause between.
func (h *ha) chaos(rng *mrand.Rand, end time.Time) {
	allowed := map[string]bool{}
	for _, a := range strings.Split(os.Getenv("REKEY_SOAK_HA_CHAOS"), ",") {
		if a != "" {
			allowed[a] = true
		}
	}
	for time.Now().Before(end) {
		time.Sleep(time.Duration(1000+rng.IntN(3000)) * time.Millisecond) // pacing
		n := rng.IntN(10)
		if action := [10]string{"kill", "kill", "kill", "stop", "stop", "etcd", "etcd", "etcd", "quorum", "quorum"}[n]; len(allowed) > 0 && !allowed[action] {
			continue
		}
		switch {
		case n < 3:
			r, p, lead := h.pickReplica(rng)
			if r == nil {
				continue
			}
			role := map[bool]string{true: "leader", false: "standby"}[lead]
			h.count("SIGKILL " + role)
			h.logf("chaos: SIGKILL r%d pid %d (%s)", r.idx, p.cmd.Process.Pid, role)
			// A leader's kill is measured until the next leader journals a
			// step; the loop waits for it before the next action, so that
			// each measurement is one failover's alone (bounded: with every
			// credential backing off nothing is journaled for minutes).
			var f *failover
			r.mu.Lock()
			if r.p == p && r.alive {
				r.killed = time.Now()
				if lead {
					h.mu.Lock()
					f = h.measure(p, r.killed)
					h.mu.Unlock()
				}
				p.cmd.Process.Kill()
			}
			exited := r.exited
			r.mu.Unlock()
			<-exited
			if f != nil {
				select {
				case <-f.done:
				case <-time.After(3*h.ttl + 30*time.Second):
					h.mu.Lock()
					if h.pending == f {
						h.pending = nil
						h.counts["failover not measured (no resume within the bound)"]++
					}
					h.mu.Unlock()
				}
			}
		case n < 5:
			r, p, lead := h.pickReplica(rng)
			if r == nil {
				continue
			}
			role := map[bool]string{true: "leader", false: "standby"}[lead]
			hold := h.ttl + time.Duration(500+rng.IntN(2500))*time.Millisecond
			h.count("SIGSTOP " + role)
			h.logf("chaos: SIGSTOP r%d pid %d (%s) for %s", r.idx, p.cmd.Process.Pid, role, hold)
			p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(hold) // the pause itself: beyond the lock TTL
			p.cmd.Process.Signal(syscall.SIGCONT)
			h.logf("chaos: SIGCONT r%d pid %d", r.idx, p.cmd.Process.Pid)
		case n < 8:
			m := h.cluster.Members[rng.IntN(3)]
			hold := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
			h.count("etcd member stopped")
			h.logf("chaos: etcd %s stopped for %s", m.Name, hold)
			m.Stop()
			time.Sleep(hold)
			m.Start()
			h.logf("chaos: etcd %s serving again", m.Name)
		default:
			i := rng.IntN(3)
			a, b := h.cluster.Members[i], h.cluster.Members[(i+1)%3]
			hold := h.ttl + time.Duration(1000+rng.IntN(4000))*time.Millisecond
			h.count("etcd quorum lost (two members stopped)")
			h.logf("chaos: etcd %s and %s stopped for %s (no quorum)", a.Name, b.Name, hold)
			a.Stop()
			b.Stop()
			time.Sleep(hold)
			a.Start()
			b.Start()
			h.logf("chaos: etcd %s and %s serving again", a.Name, b.Name)
		}
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration such as 15m", name, s)
	}
	return d
}

// TestHASoak is the soak's HA form (issue 13): three daemon replicas on a
// three-member etcd cluster rotate the world's credentials again and
// again under the issuer and sink faults, while a chaos loop SIGKILLs and
// SIGSTOPs replicas and stops etcd members (sometimes two: no quorum).
// Then every invariant of TestSoak, and no double rotation. See README.md.
func TestHASoak(t *testing.T) {
	duration := envDuration(t, "REKEY_SOAK_HA_DURATION", 150*time.Second)
	ttl := envDuration(t, "REKEY_SOAK_HA_TTL", 2*time.Second)
	ncred := envInt(t, "REKEY_SOAK_HA_CREDENTIALS", 6)
	seed := uint64(envInt(t, "REKEY_SOAK_SEED", int(time.Now().UnixNano()%1e9)))
	if ncred < 3 {
		t.Fatalf("REKEY_SOAK_HA_CREDENTIALS=%d: want at least 3 (one per sink kind)", ncred)
	}
	cluster := etcdtest.StartCluster(t, 3) // skips (fails with REKEY_REQUIRE_ETCD) without etcd
	t.Logf("HA soak: 3 replicas, 3 etcd members, %d credentials, chaos for %s, lock_ttl %s, seed %d (REKEY_SOAK_SEED=%d reproduces the fault plan)",
		ncred, duration, ttl, seed, seed)
	begin := time.Now()
	w := newWorld(t, worldOptions{credentials: ncred})
	keep(t, w)
	h := &ha{t: t, w: w, cluster: cluster, ttl: ttl, stop: make(chan struct{}), drivers: map[string]*haDriver{},
		windows: map[string][]time.Time{}, lastPhase: map[string]string{}, lastBy: map[string]*proc{}, cliConfig: map[string]string{}, counts: map[string]int{}, exits: map[string]int{}}
	all := filepath.Join(w.dir, "rekey.yaml")
	for i := range 3 {
		r := &replica{idx: i, config: filepath.Join(w.dir, fmt.Sprintf("rekey-ha-r%d.yaml", i)), rng: mrand.New(mrand.NewPCG(seed, uint64(100+i)))}
		h.haConfig(all, r.config, filepath.Join(w.dir, "state", fmt.Sprintf("r%d", i), "state.db"))
		h.replicas = append(h.replicas, r)
	}
	for i, c := range w.creds {
		// c.config serves `rekey history` (w.check) from the etcd journal.
		h.cliConfig[c.name] = filepath.Join(w.dir, "rekey-ha-cli-"+c.name+".yaml")
		h.haConfig(c.config, h.cliConfig[c.name], filepath.Join(w.dir, "state", "cli-"+c.name, "state.db"))
		h.haConfig(c.config, c.config, filepath.Join(w.dir, "state", "cli", "state.db"))
		d := &haDriver{h: h, c: c, rng: mrand.New(mrand.NewPCG(seed, uint64(i)))}
		d.next()
		h.drivers[c.name] = d
	}
	cl := startClients(w, 100*time.Millisecond)
	for _, r := range h.replicas {
		h.wg.Add(1)
		go h.supervise(r)
	}
	h.chaos(mrand.New(mrand.NewPCG(seed, 1000)), time.Now().Add(duration))

	// Wind-down: no new faults, the armed ones taken away, the replicas
	// stopped (SIGTERM: each finishes its step); then one `rekey run`
	// resumes what they left and rotates every credential once more.
	h.logf("wind-down")
	h.mu.Lock()
	h.winding.Store(true)
	h.mu.Unlock()
	close(h.stop)
	for _, d := range h.drivers {
		d.disarm()
	}
	for _, r := range h.replicas {
		r.mu.Lock()
		if r.alive {
			r.p.cmd.Process.Signal(syscall.SIGCONT)
			r.p.cmd.Process.Signal(syscall.SIGTERM)
		}
		r.mu.Unlock()
	}
	h.wg.Wait()
	h.clis.Wait()
	h.waitNoLocks()
	p := h.start(h.replicas[0].config, -1, "run")
	if p == nil {
		t.Fatal("final run did not start")
	}
	if code, _ := p.wait(); code != 0 && code != 1 {
		t.Errorf("final run: exit %d", code)
	}
	cl.close()
	elapsed := time.Since(begin)
	os.WriteFile(filepath.Join(w.dir, "logs", "timeline.txt"), []byte(h.timeline.String()), 0o600)

	r := w.check(t, cl)
	d := h.checkDouble(t, cl)
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("HA soak figures (%s, %d rekey processes, lock_ttl %s):", elapsed.Round(time.Second), w.procs.Load(), ttl)
	t.Logf("  rotations            %d done, %d rolled back, %d failed (needs a person), %d total", r.done, r.rolledBack, r.failed, r.done+r.rolledBack+r.failed)
	t.Logf("  leadership           %d terms, %d changes of leader (failovers), %d rotations stopped fenced (lost lock)", h.terms, h.changes, h.fenced)
	t.Logf("  failover             %s (SIGKILL of the leader → the next leader's first act on a rotation the dead one had in flight; %d samples)", spread(h.samples), len(h.samples))
	t.Logf("  to leadership        %s (SIGKILL of the leader → that standby's \"gained leadership\")", spread(h.toLead))
	t.Logf("  chaos and kills      %s", formatCounts(filterCounts(h.counts, false)))
	t.Logf("  daemon exits         %s", formatCounts(h.exits))
	t.Logf("  client requests      %d (%d ok, %d other errors such as injected 5xx/429, %d failed sink reads)", cl.calls, cl.ok, cl.other, cl.reads)
	t.Logf("  refused with 401     %d", r.refused)
	t.Logf("  orphan keys          %d (keys left valid by failed rotations: %d)", r.orphans, r.leftByFailed)
	t.Logf("  early revocations    %d (journal window) + %d (window restarted by a takeover)", r.early, d.early)
	t.Logf("  sinks held revoked   %d", r.heldRevoked)
	t.Logf("  leaked key values    %d (scanned %d values over %d files, %d bytes)", r.leaks, r.valuesScanned, r.filesScanned, r.bytesScanned)
	t.Logf("  double rotations     %d overlapping, %d second mints, %d unjournaled keys in sinks (rotations with an interrupted or late mint's extra key, revoked: %d)",
		d.overlaps, d.secondMints, d.foreign, d.extraKeys)
	t.Logf("  fenced writes        %d commits that do not extend their rotation's journal (%d commits replayed in order)", d.rewrites, d.commits)
	t.Logf("  injected faults      %s", formatCounts(filterCounts(h.counts, true)))
	for _, b := range h.bad {
		t.Errorf("unexpected exit: %s", b)
	}
	if total := r.done + r.rolledBack + r.failed; total < 3*ncred {
		t.Errorf("only %d rotations over %d credentials: the replicas hardly rotated", total, ncred)
	}
	if h.changes == 0 {
		t.Error("the leader never changed: the chaos did not exercise failover")
	}
	if out := os.Getenv("REKEY_SOAK_REPORT"); out != "" {
		os.WriteFile(out, []byte(fmt.Sprintf("elapsed=%s done=%d rolled_back=%d failed=%d terms=%d failovers=%d fenced=%d failover=%s requests=%d refused=%d orphans=%d early=%d early_takeover=%d held_revoked=%d leaks=%d overlaps=%d second_mints=%d foreign=%d rewrites=%d commits=%d chaos=%q\n",
			elapsed.Round(time.Second), r.done, r.rolledBack, r.failed, h.terms, h.changes, h.fenced, spread(h.samples), cl.calls, r.refused, r.orphans, r.early, d.early, r.heldRevoked, r.leaks,
			d.overlaps, d.secondMints, d.foreign, d.rewrites, d.commits, formatCounts(filterCounts(h.counts, false)))), 0o644)
	}
}

// waitNoLocks waits until no credential lock is left in etcd: every rekey
// process has ended, but the lock of one that was killed lasts until its
// lease expires, and etcd extends every lease when its own leader changes
// (as it does after the chaos's member stops). It watches the lock keys;
// locks still held after five minutes fail the test.
func (h *ha) waitNoLocks() {
	t := h.t
	cli := h.cluster.Client(t)
	prefix := "/soak-ha/locks/"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatalf("wind-down: list locks: %v", err)
		}
		if len(resp.Kvs) == 0 {
			return
		}
		h.logf("wind-down: %d locks left (%s …), waiting for their leases to end", len(resp.Kvs), resp.Kvs[0].Key)
		// Wait for the next deletion under the prefix after this read.
		wctx, stop := context.WithCancel(ctx)
		_, ok := <-cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterPut())
		stop()
		if !ok || ctx.Err() != nil {
			t.Fatalf("wind-down: %d locks still held five minutes after every rekey process ended", len(resp.Kvs))
		}
	}
}

// filterCounts returns the fault counts (faults) or the others.
func filterCounts(m map[string]int, faults bool) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, "fault "); ok == faults {
			out[name] = v
		}
	}
	return out
}

// spread is min/median/max of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	return fmt.Sprintf("min %s median %s max %s", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// logSlack is the early-revocation judge's allowance for the window
// start it reads from a log line: the engine fixes the window's end, then
// logs "monitoring for …", so the line's timestamp can trail the true start
// by however long the process was descheduled in between (on a loaded
// machine, milliseconds). A window not restarted after a takeover misses
// by far more.
const logSlack = 25 * time.Millisecond

type doubles struct {
	overlaps    int // two rotations of one credential overlapping in the journal
	secondMints int // a commit naming another new key than the rotation's earlier commits
	rewrites    int // a commit that does not extend the rotation's journaled transitions (a fenced writer's)
	commits     int // journal commits replayed
	foreign     int // a sink read holding a key no journal record names as new (nor the first key)
	early       int // an old key revoked less than a window after the last window start (takeovers restart it)
	extraKeys   int // rotations with more than one key: an interrupted mint's, revoked (reported)
}

// checkDouble asserts that no rotation ran twice: the journal's
// rotations of a credential do not overlap; every key a client read from
// a sink is the first key or a journaled new key; each done rotation's old
// key was revoked a full window after the last window start any process
// logged for it (a takeover restarts the window); and the journal's
// commits, replayed in order, show no fenced writer and no second mint.
func (h *ha) checkDouble(t *testing.T, cl *clients) doubles {
	var d doubles
	h.mu.Lock()
	windows := h.windows
	h.mu.Unlock()
	for _, c := range h.w.creds {
		hist := c.history()
		sort.Slice(hist, func(i, j int) bool { return hist[i].StartedAt.Before(hist[j].StartedAt) })
		keys := c.sim.Keys()
		byID := map[string]int{}
		byPrefix := map[string]int{}
		for i, k := range keys {
			byID[k.ID], byPrefix[k.Prefix] = i, i
		}
		named := map[string]bool{}
		for _, k := range keys {
			if k.Label == "soak-"+c.name+"-initial" {
				named[k.ID] = true
			}
		}
		for i, r := range hist {
			if r.NewKeyID != "" {
				named[r.NewKeyID] = true
			}
			if i > 0 {
				prev := hist[i-1]
				if end := prev.Transitions[len(prev.Transitions)-1].At; r.StartedAt.Before(end) {
					d.overlaps++
					t.Errorf("I5: %s rotation %s started %v, before rotation %s ended (%s at %v)", c.name, r.ID, r.StartedAt, prev.ID, prev.Phase, end)
				}
			}
			var mine int
			for _, k := range keys {
				if strings.HasSuffix(k.Label, "-"+r.ID) {
					mine++
				}
			}
			if mine > 1 {
				d.extraKeys++
			}
			if r.Phase != "done" || r.OldKeyID == "" || h.w.outsideByID(c.name, r.OldKeyID) {
				continue
			}
			rev := keys[byID[r.OldKeyID]].Revoked
			var last time.Time
			for _, at := range windows[r.ID] {
				if !at.After(rev) && at.After(last) {
					last = at
				}
			}
			if last.IsZero() || rev.Sub(last) < c.window-logSlack {
				d.early++
				t.Errorf("I1: %s rotation %s: old key %s revoked %v, %v after the last window start %v (window %s; starts %v)", c.name, r.ID, r.OldKeyID, rev, rev.Sub(last), last, c.window, windows[r.ID])
			}
		}
		cl.mu.Lock()
		for sk := range cl.seen {
			if sk.cred != c.name {
				continue
			}
			i, ok := byPrefix[sk.handle]
			if !ok || !named[keys[i].ID] {
				d.foreign++
				t.Errorf("I5: %s: a client read key %s from %s, which no journaled rotation names as its new key", c.name, sk.handle, sk.sink)
			}
		}
		cl.mu.Unlock()
	}
	h.replay(t, &d)
	return d
}

// replay checks the journal's commits in order (replayJournal) and
// reports each finding as a test error.
func (h *ha) replay(t *testing.T, d *doubles) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := replayJournal(ctx, h.cluster.Client(t), "/soak-ha/")
	if err != nil {
		t.Fatalf("journal replay: %v", err)
	}
	d.commits, d.rewrites, d.secondMints = r.commits, r.rewrites, r.secondMints
	for _, p := range r.problems {
		t.Errorf("I5: %s", p)
	}
}

type replayed struct {
	commits, rewrites, secondMints int
	problems                       []string
}

// replayJournal reads every commit under prefix in commit order (etcd
// keeps each revision; nothing compacts it here) and checks each
// rotation's record against its previous commit: its transitions extend
// the previous ones (a writer that lost its lock, writing from a stale
// copy, would drop or rewrite some), nothing follows a terminal phase, and
// once it names a new key it names that one (no second mint). Records are
// told from the store's other keys by their shape.
func replayJournal(ctx context.Context, cli *clientv3.Client, prefix string) (replayed, error) {
	var r replayed
	head, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return r, err
	}
	type transition struct {
		Phase string    `json:"phase"`
		At    time.Time `json:"at"`
	}
	type commit struct {
		phase, newKey string
		trs           []transition
	}
	last := map[string]commit{}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for resp := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			return r, err
		}
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			var st struct {
				Credential string `json:"credential"`
				ID         string `json:"id"`
				Phase      string `json:"phase"`
				Record     string `json:"record"`
			}
			if json.Unmarshal(ev.Kv.Value, &st) != nil || st.ID == "" || st.Phase == "" || st.Record == "" {
				continue // not a rotation record
			}
			var rec struct {
				NewKeyID    string       `json:"new_key_id"`
				Transitions []transition `json:"transitions"`
			}
			name := st.Credential + "/" + st.ID
			if err := json.Unmarshal([]byte(st.Record), &rec); err != nil {
				r.problems = append(r.problems, fmt.Sprintf("%s revision %d: %v", name, ev.Kv.ModRevision, err))
				continue
			}
			r.commits++
			cur := commit{phase: st.Phase, newKey: rec.NewKeyID, trs: rec.Transitions}
			if prev, ok := last[name]; ok {
				extends := len(cur.trs) >= len(prev.trs)
				for i := 0; extends && i < len(prev.trs); i++ {
					extends = cur.trs[i].Phase == prev.trs[i].Phase && cur.trs[i].At.Equal(prev.trs[i].At)
				}
				switch {
				case !extends || (terminal(prev.phase) && cur.phase != prev.phase):
					r.rewrites++
					r.problems = append(r.problems, fmt.Sprintf("fencing: %s revision %d (%s, %d transitions) does not extend the previous commit (%s, %d transitions)",
						name, ev.Kv.ModRevision, cur.phase, len(cur.trs), prev.phase, len(prev.trs)))
				case prev.newKey != "" && cur.newKey != prev.newKey:
					r.secondMints++
					r.problems = append(r.problems, fmt.Sprintf("%s revision %d names new key %s, an earlier commit %s", name, ev.Kv.ModRevision, cur.newKey, prev.newKey))
				}
			}
			last[name] = cur
		}
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision >= head.Header.Revision {
			return r, nil
		}
	}
	return r, fmt.Errorf("the watch ended before revision %d: %w", head.Header.Revision, ctx.Err())
}

// TestHAJournalReplay is the replay's control: a record whose commits run
// planned → minted → a commit from a stale copy (minted's transition
// missing), and one whose new key changes, are each found; a record
// progressing normally is not.
func TestHAJournalReplay(t *testing.T) {
	cli := etcdtest.Start(t).Client(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	put := func(key, id, phase, newKey string, phases ...string) {
		t.Helper()
		var trs []map[string]any
		for i, p := range phases {
			trs = append(trs, map[string]any{"phase": p, "at": t0.Add(time.Duration(i) * time.Second)})
		}
		if phases[len(phases)-1] == "stale" { // a transition stamped by another writer
			trs[len(trs)-1] = map[string]any{"phase": phase, "at": t0.Add(time.Hour)}
		}
		rec, _ := json.Marshal(map[string]any{"new_key_id": newKey, "transitions": trs})
		val, _ := json.Marshal(map[string]any{"credential": "c00", "id": id, "phase": phase, "record": string(rec)})
		if _, err := cli.Put(ctx, "/soak-ha/rotations/c00/"+key, string(val)); err != nil {
			t.Fatal(err)
		}
	}
	put("1/ok", "ok", "planned", "", "planned")
	put("1/fenced", "fenced", "planned", "", "planned")
	put("1/twice", "twice", "planned", "", "planned")
	put("1/ok", "ok", "minted", "k1", "planned", "minted")
	put("1/fenced", "fenced", "minted", "k1", "planned", "minted")
	put("1/twice", "twice", "minted", "k1", "planned", "minted")
	cli.Put(ctx, "/soak-ha/locks/c00/1", "") // not a record
	put("1/fenced", "fenced", "verified", "k1", "planned", "stale")
	put("1/twice", "twice", "minted", "k2", "planned", "minted")
	put("1/ok", "ok", "verified", "k1", "planned", "minted", "verified")
	put("1/ok", "ok", "done", "k1", "planned", "minted", "verified", "done")
	r, err := replayJournal(ctx, cli, "/soak-ha/")
	if err != nil {
		t.Fatal(err)
	}
	if r.commits != 10 || r.rewrites != 1 || r.secondMints != 1 || len(r.problems) != 2 {
		t.Fatalf("replay: %d commits, %d rewrites, %d second mints, problems %q; want 10, 1, 1", r.commits, r.rewrites, r.secondMints, r.problems)
	}
	if !strings.Contains(r.problems[0], "c00/fenced") || !strings.Contains(r.problems[1], "c00/twice") {
		t.Errorf("problems name the wrong records: %q", r.problems)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/sqlite"
)

var execCommand = exec.CommandContext

// startupTimeout bounds a command that rotates nothing.
const startupTimeout = 2 * time.Minute

// settleMax bounds the wait for the daemon to fall quiet after its last
// rotation.
const settleMax = 10 * time.Minute

// median runs `rekey args...` reps times and returns the median wall time;
// every run must exit 0.
func (b *bench) median(ctx context.Context, config string, reps int, args ...string) (time.Duration, error) {
	var walls []time.Duration
	for range reps {
		var res result
		var err error
		if config == "" {
			res, err = b.rekeyNoConfig(ctx, args...)
		} else {
			res, err = b.rekey(ctx, config, startupTimeout, args...)
		}
		if err != nil {
			return 0, err
		}
		if res.code != 0 || res.timedOut {
			return 0, fmt.Errorf("rekey %s: exit %d (timed out: %v): %s", strings.Join(args, " "), res.code, res.timedOut, tail(res.stderr, 500))
		}
		walls = append(walls, res.wall)
	}
	slices.Sort(walls)
	return walls[len(walls)/2], nil
}

// rekeyNoConfig runs rekey with args and no -c (for --help).
func (b *bench) rekeyNoConfig(ctx context.Context, args ...string) (result, error) {
	cmd := execCommand(ctx, b.binary, args...)
	cmd.Env = append(os.Environ(), "REKEY_CONFIG=")
	start := time.Now()
	err := cmd.Run()
	res := result{wall: time.Since(start)}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		res.code = exit.ExitCode()
	} else if err != nil {
		return res, err
	}
	return res, nil
}

// rotateOne times `rekey rotate` of the one credential of w: the first
// rotation adopts the key in the sinks, the later ones are steady state.
func (b *bench) rotateOne(ctx context.Context, w *world) error {
	name := w.names[0]
	var steady []time.Duration
	var steadyCalls []int64
	for i := range b.o.rotations {
		before := w.accounts.counts()
		ideal := b.critical(callsSteady)
		if i == 0 {
			ideal = b.critical(callsFirst)
		}
		res, err := b.rekey(ctx, w.config, deadline(ideal), "rotate", name)
		if err != nil {
			return err
		}
		if res.code != 0 || res.timedOut {
			b.fail("rekey rotate", fmt.Errorf("exit %d: %s", res.code, tail(res.stderr, 500)))
			return nil
		}
		calls := w.accounts.connStats(before).requests
		if i == 0 {
			b.add(row{figure: "rekey rotate, first rotation (adopts)", measured: fmtDur(res.wall), ideal: fmtDur(ideal), ratio: ratio(res.wall, ideal),
				note: fmt.Sprintf("overhead %s; %d issuer requests (%d in sequence required + probes in the window)", fmtDur(res.wall-ideal), calls, callsFirst)})
			continue
		}
		steady = append(steady, res.wall)
		steadyCalls = append(steadyCalls, calls)
	}
	if len(steady) > 0 {
		slices.Sort(steady)
		med := steady[len(steady)/2]
		ideal := b.critical(callsSteady)
		b.add(row{figure: fmt.Sprintf("rekey rotate, later rotation (median of %d)", len(steady)), measured: fmtDur(med), ideal: fmtDur(ideal), ratio: ratio(med, ideal),
			note: fmt.Sprintf("overhead %s; issuer requests per rotation %v (%d in sequence required)", fmtDur(med-ideal), steadyCalls, callsSteady)})
	}
	return nil
}

// startup times the commands that rotate nothing on w, whose credentials
// were all rotated already.
func (b *bench) startup(ctx context.Context, w *world, what string) error {
	for _, c := range []struct {
		label string
		args  []string
	}{
		{"rekey validate", []string{"validate"}}, // the config load alone
		{"rekey run, nothing due", []string{"run"}},
		{"rekey status", []string{"status"}},
		{"rekey history " + w.names[0], []string{"history", w.names[0]}},
	} {
		med, err := b.median(ctx, w.config, b.o.reps, c.args...)
		figure := fmt.Sprintf("%s, %s (median of %d)", c.label, what, b.o.reps)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			b.fail(figure, err)
			continue
		}
		b.add(row{figure: figure, measured: fmtDur(med), ideal: fmtDur(b.floor), ratio: ratio(med, b.floor)})
	}
	return nil
}

// runAll times `rekey run` over every credential of w, all due.
func (b *bench) runAll(ctx context.Context, w *world) error {
	n := w.n
	ideal := time.Duration(b.waves(n)) * b.critical(callsFirst)
	figure := fmt.Sprintf("rekey run, %d credentials all due", n)
	before := w.accounts.counts()
	hBefore := b.health.counts()
	w.accounts.resetPeak()
	b.logf("%s: ideal %s", figure, fmtDur(ideal))
	res, err := b.rekey(ctx, w.config, deadline(ideal), "run")
	if err != nil {
		return err
	}
	audit := newAuditWatch(w.auditPath())
	if err := audit.poll(); err != nil {
		return err
	}
	ok, other := audit.tally()
	if res.code != 0 || res.timedOut || ok != n {
		b.fail(figure, fmt.Errorf("exit %d, timed out %v, %d done, %d other of %d: %s", res.code, res.timedOut, ok, other, n, tail(res.stderr, 500)))
		return nil
	}
	b.add(row{figure: figure, measured: fmtDur(res.wall), ideal: fmtDur(ideal), ratio: ratio(res.wall, ideal),
		note: fmt.Sprintf("ceil(%d/%d)=%d waves of %s; CPU %s", n, b.o.concurrency, b.waves(n), fmtDur(b.critical(callsFirst)), fmtDur(res.cpu))})
	b.add(row{figure: fmt.Sprintf("rekey run, %d credentials: peak RSS", n), measured: fmtBytes(res.maxRSS), note: "wait4 rusage ru_maxrss"})
	b.connRow(fmt.Sprintf("rekey run, %d credentials", n), w.accounts.connStats(before), hBefore)
	return nil
}

// connRow reports the TCP connections of one phase against its ideal.
func (b *bench) connRow(what string, s connStats, hBefore counts) {
	h := b.health.counts()
	b.add(row{figure: what + ": TCP connections to issuer hosts", measured: fmt.Sprint(s.conns), ideal: fmt.Sprint(s.peakSum), ratio: ratioN(s.conns, s.peakSum),
		note: fmt.Sprintf("%d requests over %d hosts (%.2f connections per request, at most %d per host); health endpoint: %d connections for %d requests",
			s.requests, s.hosts, float64(s.conns)/float64(max(s.requests, 1)), s.maxConnsPerHst, h.conns-hBefore.conns, h.requests-hBefore.requests)})
}

// daemon times `rekey daemon` over w's credentials, all due again on a
// fresh journal, until the audit log shows every rotation ended; then
// watches it idle.
func (b *bench) daemon(ctx context.Context, w *world) error {
	n := w.n
	if err := w.freshJournal(b.o, b.health.url, "state-daemon"); err != nil {
		return err
	}
	ideal := time.Duration(b.waves(n)) * b.critical(callsFirst)
	figure := fmt.Sprintf("rekey daemon, %d credentials all due: until all done", n)
	before := w.accounts.counts()
	hBefore := b.health.counts()
	w.accounts.resetPeak()
	b.logf("%s: ideal %s", figure, fmtDur(ideal))
	cmd, res, err := b.startRekey(w.config, "daemon")
	if err != nil {
		return err
	}
	exited, stop := b.watch(cmd)
	defer stop()

	audit := newAuditWatch(w.auditPath())
	limit := time.NewTimer(deadline(ideal))
	defer limit.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var took time.Duration
	for took == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			exited <- err
			b.fail(figure, fmt.Errorf("daemon exited (%v): %s", err, tail(res.stderr, 500)))
			return nil
		case <-limit.C:
			ok, other := audit.tally()
			b.fail(figure, fmt.Errorf("%d done, %d other of %d after %s", ok, other, n, fmtDur(deadline(ideal))))
			return nil
		case <-tick.C:
			if err := audit.poll(); err != nil {
				return err
			}
			if len(audit.ended) >= n {
				took = time.Since(cmd.start)
			}
		}
	}
	pDone, err := readProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	ok, other := audit.tally()
	if other > 0 {
		b.fail(figure, fmt.Errorf("%d of %d rotations did not end done", other, n))
		return nil
	}
	b.add(row{figure: figure, measured: fmtDur(took), ideal: fmtDur(ideal), ratio: ratio(took, ideal),
		note: fmt.Sprintf("%d done; from process start, audit log polled every 100 ms; CPU %s", ok, fmtDur(pDone.cpu))})
	b.connRow(fmt.Sprintf("rekey daemon, %d credentials", n), w.accounts.connStats(before), hBefore)

	// The daemon may still be busy once the last rotation is in the audit
	// log (finished rotations wait for the scheduler's loop): wait until a
	// one-second sample shows less than 20 ms of CPU, at most settleMax,
	// so that the idle figures are of a daemon with nothing to do.
	settle := fmt.Sprintf("rekey daemon, %d credentials: busy after the last rotation ended", n)
	settleStart := time.Now()
	p0, err := b.quiet(ctx, cmd, exited, pDone)
	if err != nil {
		if errors.Is(err, errNotQuiet) {
			b.fail(settle, err)
			return nil
		}
		return err
	}
	busy := max(time.Since(settleStart)-time.Second, 0) // the last, quiet sample is not busy
	b.add(row{figure: settle, measured: fmtDur(busy), ideal: "0s",
		note: fmt.Sprintf("until a 1 s sample used < 20 ms CPU; CPU meanwhile %s", fmtDur(p0.cpu-pDone.cpu))})

	// Idle: every credential was just rotated, so nothing is due for 90 days.
	idleBefore := w.accounts.counts()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-exited:
		exited <- err
		b.fail(fmt.Sprintf("rekey daemon, %d credentials: idle", n), fmt.Errorf("daemon exited (%v)", err))
		return nil
	case <-time.After(b.o.idle):
	}
	p1, err := readProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	idleCalls := w.accounts.connStats(idleBefore).requests
	idle := fmt.Sprintf("rekey daemon, %d credentials, idle %s", n, b.o.idle)
	b.add(row{figure: idle + ": CPU", measured: fmtDur(p1.cpu - p0.cpu), ideal: "0s",
		note: fmt.Sprintf("utime+stime from /proc/PID/stat; %d issuer requests while idle", idleCalls)})
	b.add(row{figure: idle + ": RSS", measured: fmtBytes(p1.rss), note: fmt.Sprintf("VmRSS at the end; VmHWM (peak, rotations included) %s", fmtBytes(p1.hwm))})
	return nil
}

// deepHistory writes b.o.history more rotations of w's one credential
// straight into its journal (copies of its newest record, older than it,
// so its current key stays the same), then times the commands that read
// that history.
func (b *bench) deepHistory(ctx context.Context, w *world) error {
	name := w.names[0]
	start := time.Now()
	keyText, err := os.ReadFile(w.dir + "/state.key")
	if err != nil {
		return err
	}
	key, err := sqlite.DecodeKey(strings.TrimSpace(string(keyText)))
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, w.state, key)
	if err != nil {
		return err
	}
	hist, err := st.History(ctx, name, 0)
	if err != nil || len(hist) == 0 {
		st.Close()
		return fmt.Errorf("history of %s: %v (%d records)", name, err, len(hist))
	}
	oldest := hist[len(hist)-1]
	for i := range b.o.history {
		if ctx.Err() != nil {
			st.Close()
			return ctx.Err()
		}
		r := *oldest
		shift := -time.Duration(i+1) * time.Hour
		r.ID = fmt.Sprintf("h%07d", i)
		r.Label = name + "-hist-" + r.ID
		r.StartedAt, r.UpdatedAt, r.FinishedAt = r.StartedAt.Add(shift), r.UpdatedAt.Add(shift), r.FinishedAt.Add(shift)
		r.Transitions = make([]rotation.Transition, len(oldest.Transitions))
		for j, t := range oldest.Transitions {
			t.At = t.At.Add(shift)
			r.Transitions[j] = t
		}
		if err := st.Save(ctx, &r); err != nil {
			st.Close()
			return err
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	b.logf("wrote %d journal records of %s in %s", b.o.history, name, time.Since(start).Round(time.Millisecond))
	return b.startup(ctx, w, fmt.Sprintf("1 credential with %d rotations", b.o.history+len(hist)))
}

// idleDaemon watches `rekey daemon` over w's credentials with nothing due
// (the journal `rekey run` left: every credential just rotated) for -idle,
// once it has fallen quiet after start-up: what an idle daemon holds and
// spends when it has rotated nothing since it started.
func (b *bench) idleDaemon(ctx context.Context, w *world) error {
	figure := fmt.Sprintf("rekey daemon, %d credentials, nothing due, idle %s", w.n, b.o.idle)
	before := w.accounts.counts()
	cmd, res, err := b.startRekey(w.config, "daemon")
	if err != nil {
		return err
	}
	exited, stop := b.watch(cmd)
	defer stop()
	start := time.Now()
	first, err := readProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	p0, err := b.quiet(ctx, cmd, exited, first)
	if err != nil {
		if errors.Is(err, errNotQuiet) {
			b.fail(figure, fmt.Errorf("%w: %s", err, tail(res.stderr, 500)))
			return nil
		}
		return err
	}
	startup := time.Since(start) - time.Second // the last, quiet sample is idle
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-exited:
		exited <- err
		b.fail(figure, fmt.Errorf("daemon exited (%v): %s", err, tail(res.stderr, 500)))
		return nil
	case <-time.After(b.o.idle):
	}
	p1, err := readProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	calls := w.accounts.connStats(before).requests
	b.add(row{figure: figure + ": CPU", measured: fmtDur(p1.cpu - p0.cpu), ideal: "0s",
		note: fmt.Sprintf("utime+stime; quiet %s after start (start-up CPU %s); %d issuer requests", fmtDur(startup), fmtDur(p0.cpu), calls)})
	b.add(row{figure: figure + ": RSS", measured: fmtBytes(p1.rss), note: fmt.Sprintf("VmRSS at the end; VmHWM (peak, start-up included) %s", fmtBytes(p1.hwm))})
	return nil
}

// watch waits for cmd in the background: exited receives its end (put it
// back after reading it, for stop); stop ends it, SIGTERM first so that
// the daemon finishes its step, a kill after 30 s.
func (b *bench) watch(cmd *rekeyCmd) (exited chan error, stop func()) {
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		b.kids.remove(cmd.Process)
		cmd.closeFiles()
	}
}

// errNotQuiet: the daemon exited, or kept using CPU for settleMax.
var errNotQuiet = errors.New("daemon not quiet")

// quiet waits until a one-second sample of the daemon uses less than 20 ms
// of CPU, from p0, and returns the last sample.
func (b *bench) quiet(ctx context.Context, cmd *rekeyCmd, exited chan error, p0 procStat) (procStat, error) {
	start := time.Now()
	for {
		if time.Since(start) > settleMax {
			return p0, fmt.Errorf("%w: still using CPU after %s", errNotQuiet, settleMax)
		}
		select {
		case <-ctx.Done():
			return p0, ctx.Err()
		case err := <-exited:
			exited <- err
			return p0, fmt.Errorf("%w: exited (%v)", errNotQuiet, err)
		case <-time.After(time.Second):
		}
		p, err := readProc(cmd.Process.Pid)
		if err != nil {
			return p0, err
		}
		if p.cpu-p0.cpu < 20*time.Millisecond {
			return p, nil
		}
		p0 = p
	}
}

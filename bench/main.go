// Command bench measures rekey at fleet scale (issue 12) and reports each
// figure as a ratio to the ideal computed in the same run. It is its own
// module, like soak/, so that `make test` does not build it and the root
// module's dependencies stay as they are; `make bench` and `make
// bench-quick` run it, and its smoke test (go test in this directory) runs
// it at 5 credentials.
//
// What it does: it builds the real rekey binary once (as `make build`
// does), serves ApexVerify simulator accounts (apexsim) on 127.0.0.1 with
// an injected latency before every answer (default 5 ms), writes a config
// world of N credentials (three file sinks each, at most -per-account
// credentials per account, monitor window 1 s and interval 1 s against one
// local health endpoint, daemon.concurrency 64), and runs the binary:
//
//   - `rekey rotate` of one credential, first (adopting the key in the
//     sinks) and then steady-state rotations;
//   - `rekey run` over N credentials, all due, with its peak RSS (wait4);
//   - `rekey daemon` over N credentials with nothing due (the journal
//     `rekey run` left), idle for -idle once start-up is over: RSS and CPU
//     seconds from /proc;
//   - `rekey daemon` over N credentials, all due, until the audit log
//     shows every rotation ended; then idle for -idle with nothing due: RSS
//     and CPU seconds from /proc;
//   - the start-up of `rekey run` with nothing due, `rekey status` and
//     `rekey history NAME` at 1 and N credentials, and at one credential
//     with -history rotations written straight into its journal;
//   - TCP connections accepted per issuer host against requests.
//
// # The ideal
//
// Every simulator call waits the injected latency L before answering, and
// the monitoring window W is a wait the design requires, so one rotation
// cannot take less than the issuer calls it must make one after another,
// times L, plus W. A first rotation (nothing in the journal yet) must make
// five calls in sequence:
//
//  1. identify the key now in the sinks by its prefix (I7: GET /v1/api-keys);
//  2. create the new key (POST /v1/api-keys);
//  3. verify the new key authenticates (GET /v1/account);
//     then the monitoring window W: its probes (health check and the
//     issuer's verify of the new key) run inside the window, not after it;
//  4. identify the old value once more right before revoking (I8);
//  5. revoke the old key (DELETE /v1/api-keys/ID).
//
// so its critical path is 5·L + W (1.025 s by default). A later rotation
// knows its old key from the journal and skips step 1: 4·L + W. Sink
// writes, journal fsyncs, process start-up and everything else rekey does
// are orchestration, which the ratio wall/ideal shows. (rekey also lists
// the keys carrying the new label before creating one, which only a
// rotation resumed in `planned` needs; the benchmark counts that call as
// overhead and reports the calls it saw per rotation.)
//
// For N credentials at concurrency C the ideal is ceil(N/C) waves of one
// first rotation each: ceil(N/C)·(5·L + W). With the ApexVerify limit of
// 10 active keys, and two keys live per credential during its rotation, at
// most 5 credentials per account can rotate at once without hitting the
// limit, which is why -per-account defaults to 5.
//
// Commands that rotate nothing have no issuer calls or window to wait: their
// ideal is the process floor, the median wall time of `rekey --help`
// (exec, Go runtime start, command parsing).
//
// TCP connections: a client that keeps connections alive needs, per issuer
// host, as many connections as requests it has in flight at once; the ideal
// is the sum over hosts of the peak requests in flight at the simulator.
//
// Every loop is bounded in count and in time, only loopback addresses are
// used, and on return (or SIGINT/SIGTERM) every rekey process started is
// killed and the temporary directory removed (unless -keep).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the benchmark's knobs; flags, with defaults from the
// environment (REKEY_BENCH_N, _LATENCY, _CONCURRENCY, _IDLE).
type options struct {
	ns          []int // credential counts for run, daemon and start-up
	latency     time.Duration
	concurrency int
	idle        time.Duration
	perAccount  int
	window      time.Duration // monitor window; the interval is 1 s
	history     int           // rotations of one credential for history
	reps        int           // runs per start-up figure (median)
	rotations   int           // `rekey rotate` runs of one credential
	dir         string        // parent of the temporary directory
	keep        bool
	repo        string
}

func defaultOptions() options {
	return options{
		ns:          []int{1000, 10000},
		latency:     5 * time.Millisecond,
		concurrency: 64,
		idle:        60 * time.Second,
		perAccount:  5,
		window:      time.Second,
		history:     10000,
		reps:        5,
		rotations:   4,
		dir:         os.TempDir(),
		repo:        repoRoot(),
	}
}

// repoRoot is the repository's root, found from this file's place in it.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ".."
	}
	return filepath.Join(filepath.Dir(file), "..")
}

func main() { os.Exit(mainErr()) }

func mainErr() int {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string) (options, error) {
	o := defaultOptions()
	env := func(name string, set func(string) error) error {
		if v, ok := os.LookupEnv(name); ok {
			if err := set(v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	setNs := func(s string) error {
		var ns []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 100000 {
				return fmt.Errorf("credential count %q: want 1 to 100000", f)
			}
			ns = append(ns, n)
		}
		o.ns = ns
		return nil
	}
	setDur := func(d *time.Duration) func(string) error {
		return func(s string) error {
			v, err := time.ParseDuration(s)
			if err == nil && v < 0 {
				err = errors.New("negative")
			}
			*d = v
			return err
		}
	}
	setInt := func(p *int) func(string) error {
		return func(s string) error {
			v, err := strconv.Atoi(s)
			*p = v
			return err
		}
	}
	for _, e := range []error{
		env("REKEY_BENCH_N", setNs),
		env("REKEY_BENCH_LATENCY", setDur(&o.latency)),
		env("REKEY_BENCH_CONCURRENCY", setInt(&o.concurrency)),
		env("REKEY_BENCH_IDLE", setDur(&o.idle)),
	} {
		if e != nil {
			return o, e
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Func("n", "comma-separated credential counts (env REKEY_BENCH_N; default 1000,10000)", setNs)
	fs.DurationVar(&o.latency, "latency", o.latency, "latency the simulator adds to every call (env REKEY_BENCH_LATENCY)")
	fs.IntVar(&o.concurrency, "concurrency", o.concurrency, "daemon.concurrency (env REKEY_BENCH_CONCURRENCY)")
	fs.DurationVar(&o.idle, "idle", o.idle, "how long the idle daemon is watched (env REKEY_BENCH_IDLE)")
	fs.IntVar(&o.perAccount, "per-account", o.perAccount, "credentials per ApexVerify account (at most 5 keep the 10-key limit when all rotate at once)")
	fs.DurationVar(&o.window, "window", o.window, "monitor window of every credential (interval 1s)")
	fs.IntVar(&o.history, "history", o.history, "rotations of one credential written into its journal for `rekey history`")
	fs.IntVar(&o.reps, "reps", o.reps, "runs of each start-up figure (the median is reported)")
	fs.IntVar(&o.rotations, "rotations", o.rotations, "`rekey rotate` runs of one credential (the first adopts; the median of the rest is reported)")
	fs.StringVar(&o.dir, "dir", o.dir, "where the temporary directory is made")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, journals, logs)")
	fs.StringVar(&o.repo, "repo", o.repo, "the rekey repository to build")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.concurrency < 1:
		return o, errors.New("-concurrency must be at least 1")
	case o.perAccount < 1 || o.perAccount > 9:
		return o, errors.New("-per-account must be 1 to 9 (each account holds at most 10 active keys)")
	case o.window < time.Second:
		return o, errors.New("-window must be at least 1s (the monitor interval)")
	case o.reps < 1 || o.rotations < 1 || o.history < 0:
		return o, errors.New("-reps and -rotations must be at least 1, -history not negative")
	}
	return o, nil
}

// bench is one run of the benchmark.
type bench struct {
	o      options
	tmp    string
	logDir string
	binary string
	health *healthServer
	kids   children
	runs   int
	log    io.Writer
	rows   []row
	floor  time.Duration // median `rekey --help`
	failed []string      // figures that did not complete
}

// run runs the whole benchmark and writes the report to out, progress to
// logw. It returns the rows for tests.
func run(ctx context.Context, o options, out, logw io.Writer) ([]row, error) {
	b := &bench{o: o, log: logw}
	var err error
	if b.tmp, err = os.MkdirTemp(o.dir, "rekey-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		b.kids.kill()
		if o.keep {
			b.logf("kept %s", b.tmp)
		} else {
			_ = os.RemoveAll(b.tmp)
		}
	}()
	b.logDir = filepath.Join(b.tmp, "logs")
	if err := os.Mkdir(b.logDir, 0o700); err != nil {
		return nil, err
	}
	if b.health, err = startHealth(); err != nil {
		return nil, err
	}
	defer b.health.close()
	m := readMachine()
	if err := b.build(ctx); err != nil {
		return nil, err
	}
	if err := b.all(ctx); err != nil {
		return b.rows, err
	}
	m.loadEnd = loadavg()
	b.report(out, m)
	if len(b.failed) > 0 {
		return b.rows, fmt.Errorf("not every figure completed: %s", strings.Join(b.failed, "; "))
	}
	return b.rows, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// build compiles rekey as `make build` does, once.
func (b *bench) build(ctx context.Context) error {
	b.binary = filepath.Join(b.tmp, "rekey")
	b.logf("building rekey from %s", b.o.repo)
	cmd := execCommand(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.binary, "./cmd/rekey")
	cmd.Dir = b.o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build rekey: %w", err)
	}
	return nil
}

// all runs every figure in turn.
func (b *bench) all(ctx context.Context) error {
	floor, err := b.median(ctx, "", b.o.reps, "--help")
	if err != nil {
		return err
	}
	b.floor = floor
	b.add(row{figure: "process floor: rekey --help (median)", measured: fmtDur(floor), note: "the ideal of every start-up figure"})

	one, err := b.newWorld(ctx, 1)
	if err != nil {
		return err
	}
	defer one.close()
	if err := b.rotateOne(ctx, one); err != nil {
		return err
	}
	if err := b.startup(ctx, one, "1 credential"); err != nil {
		return err
	}
	for _, n := range b.o.ns {
		if err := b.fleet(ctx, n); err != nil {
			return err
		}
	}
	if b.o.history > 0 {
		if err := b.deepHistory(ctx, one); err != nil {
			return err
		}
	}
	return nil
}

// newWorld builds a world of n credentials with the latency set.
func (b *bench) newWorld(ctx context.Context, n int) (*world, error) {
	start := time.Now()
	w, err := newWorld(ctx, b.tmp, n, b.o, b.health.url)
	if err != nil {
		return nil, err
	}
	w.accounts.setLatency(b.o.latency)
	b.logf("world of %d credentials over %d accounts ready in %s", n, len(w.accounts), time.Since(start).Round(time.Millisecond))
	return w, nil
}

// fleet runs the N-credential figures on one world: run, start-up, daemon.
func (b *bench) fleet(ctx context.Context, n int) error {
	w, err := b.newWorld(ctx, n)
	if err != nil {
		return err
	}
	defer func() {
		w.close()
		if !b.o.keep {
			_ = os.RemoveAll(w.dir)
		}
	}()
	if err := b.runAll(ctx, w); err != nil {
		return err
	}
	if err := b.startup(ctx, w, fmt.Sprintf("%d credentials", n)); err != nil {
		return err
	}
	if err := b.idleDaemon(ctx, w); err != nil {
		return err
	}
	return b.daemon(ctx, w)
}

// critical is one rotation's critical path: calls issuer calls in sequence
// at the injected latency, plus the monitoring window.
func (b *bench) critical(calls int) time.Duration {
	return time.Duration(calls)*b.o.latency + b.o.window
}

// The issuer calls a rotation must make one after another (see the package
// comment): a first rotation identifies the key in the sinks, creates,
// verifies, identifies the old value again and revokes; a later one knows
// its old key from the journal.
const (
	callsFirst  = 5
	callsSteady = 4
)

// waves is ceil(n / concurrency).
func (b *bench) waves(n int) int { return (n + b.o.concurrency - 1) / b.o.concurrency }

// deadline bounds a command whose ideal is ideal.
func deadline(ideal time.Duration) time.Duration { return 10*ideal + time.Minute }

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func (b *bench) fail(figure string, err error) {
	b.failed = append(b.failed, figure+": "+err.Error())
	b.add(row{figure: figure, measured: "did not complete", note: err.Error()})
	b.logf("%s: %v", figure, err)
}

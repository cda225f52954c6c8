package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/server"
	"github.com/rekeyhq/rekey/internal/statuspage"
	"github.com/rekeyhq/rekey/notify"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/etcdstore"
)

func (a *app) daemonCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Long-running: rotate each credential when due, resume unfinished rotations, serve a status page and /healthz /readyz /metrics",
		Long: `rekey daemon resumes unfinished rotations, then sleeps until each credential
is due and rotates it. It serves a status page at /, and /healthz, /readyz
and /metrics, on daemon.listen. SIGHUP reloads the config (an invalid one is
logged and the running one kept); SIGTERM or SIGINT finishes the current
step, journals it and exits 0; a second signal exits at once (130).

With state.backend etcd any number of replicas run on one config: one,
elected in etcd, leads and rotates; the others stand by, serve the same
pages and take over within about state.etcd.lock_ttl of the leader's
death. /leader says which replica leads.`,
		Example: `  rekey daemon -c /etc/rekey/rekey.yaml
  curl -s localhost:9464/metrics | grep rekey_overdue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.daemon(cmd.Context())
		},
	}
}

// daemon runs until ctx ends. Only SIGHUP is handled here; INT and TERM
// cancel ctx in main.
func (a *app) daemon(ctx context.Context) error {
	rt, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()

	creds := make([]*rotation.Credential, 0, len(rt.names))
	for _, n := range rt.names {
		creds = append(creds, rt.creds[n])
	}
	m := metrics.New(a.clock)
	b := currentBuild()
	m.SetBuildInfo(b.Version, b.Commit, b.GoVersion)
	m.Init(rt.names)
	rt.engine.OnTransition = append(rt.engine.OnTransition, m.Transition)
	page := statuspage.New(rt.store, rt.engine, creds)
	rt.engine.Observe = page.Observe
	sched := &rotation.Scheduler{
		Engine:      rt.engine,
		Concurrency: rt.cfg.Daemon.Concurrency,
		OnSchedule: func(s rotation.Status) {
			m.Scheduled(s)
			page.Scheduled(s)
		},
		OnIdle: releaser(a.pools(rt.cfg)),
		OnOverdue: func(s rotation.Status) {
			msg := "no successful rotation within rotate_every plus grace (overdue since " + s.OverdueAt.UTC().Format(time.RFC3339) + ")"
			if s.Due.Failures > 0 {
				msg += fmt.Sprintf("; %d failed attempts since the last success", s.Due.Failures)
			}
			rt.notify.Notify(notify.Event{Kind: notify.Overdue, Credential: s.Credential, Time: a.clock.Now().UTC(), Error: msg})
		},
	}

	// The credentials hold what they need of the config: keep only what a
	// reload compares, so that the daemon does not also hold the config's
	// entries for as long as it runs.
	rt.cfg = &config.Config{Version: rt.cfg.Version, State: rt.cfg.State, Daemon: rt.cfg.Daemon, File: rt.cfg.File}

	lead := &leadership{self: newIdentity()}
	if es, ok := rt.store.(*etcdstore.Store); ok {
		lead.election = es.Election()
		// A new leader resumes a dead one's rotations soon after their
		// locks expire (each lock's lease ends up to a third of the TTL
		// after the dead leader's election lease), not a minute later.
		sched.BusyRetry = max(time.Duration(rt.cfg.State.Etcd.LockTTL)/3, time.Second)
	}
	if lead.election == nil {
		// The one daemon of a SQLite journal leads from the start: say so
		// before the first scrape can come.
		lead.set(true)
	} else {
		page.SetReplica(lead.describe)
	}
	m.SetLeader(lead.self.replica(), lead.election == nil)

	srv, err := server.Start(rt.cfg.Daemon.Listen, m.Handler(), server.WithPage(page), server.WithHandler("/leader", lead))
	if err != nil {
		return fail(exitFailed, fmt.Errorf("daemon: %w", err))
	}
	defer srv.Close()

	reload := a.reload
	if reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		ch := make(chan struct{}, 1)
		go func() {
			for range hup {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}()
		reload = ch
	}

	var current atomic.Pointer[[]*rotation.Credential]
	current.Store(&creds)
	// The journal opened: connected. lead.run says otherwise while etcd is
	// out of reach.
	srv.SetReady(true)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		lead.run(ctx, a.log, srv.SetReady, func(ctx context.Context) {
			sched.Run(ctx, *current.Load())
		}, func(leading bool) { m.SetLeader(lead.self.replica(), leading) })
	}()
	addr := srv.Addr()
	a.log.Info("daemon started", zap.String("listen", addr), zap.Int("credentials", len(creds)), zap.String("config", rt.cfg.File), zap.String("replica", lead.self.replica()))
	if a.listening != nil {
		a.listening(addr)
	}

	for {
		select {
		case <-ctx.Done():
			srv.SetReady(false)
			a.log.Info("stopping: rotations in flight finish their current step")
			<-stopped
			a.log.Info("daemon stopped")
			return nil
		case err := <-srv.Done():
			return fail(exitFailed, fmt.Errorf("daemon: http server: %w", err))
		case <-reload:
			if list := a.reloadConfig(rt, sched, m, page); list != nil {
				current.Store(&list)
			}
		}
	}
}

// releaser returns the daemon's Scheduler.OnIdle: when a burst of
// rotations is over it gives back what the burst left, so that an idle
// daemon holds the same whatever it did before: the issuers' and health
// checks' idle connections, and the heap the burst grew, returned to the
// OS at once (the runtime's background scavenger would spend about 1% of a
// core for minutes doing it). It runs in a goroutine of its own, one at a
// time, so that the scheduler never waits for it.
func releaser(p *pools) func() {
	var busy atomic.Bool
	return func() {
		if !busy.CompareAndSwap(false, true) {
			return
		}
		go func() {
			defer busy.Store(false)
			p.apex.CloseIdleConnections()
			if t, ok := http.DefaultTransport.(*http.Transport); ok {
				t.CloseIdleConnections()
			}
			debug.FreeOSMemory()
		}()
	}
}

// reloadConfig applies a changed config to a running daemon. A config that
// does not load or build is logged and the running one kept. The journal,
// listen address and concurrency are fixed for the process's life. It
// returns the new credentials, nil if it kept the running ones.
func (a *app) reloadConfig(rt *runtime, sched *rotation.Scheduler, m *metrics.Metrics, page *statuspage.Page) []*rotation.Credential {
	cfg, err := a.loadConfig()
	if err != nil {
		a.log.Error("reload: invalid config; keeping the running one", zap.Error(err))
		return nil
	}
	creds, names, closers, err := a.credentials(cfg)
	if err != nil {
		a.log.Error("reload: cannot build credentials; keeping the running config", zap.Error(err))
		return nil
	}
	targets, err := notifyTargets(cfg)
	if err != nil {
		for _, c := range closers {
			_ = c.Close()
		}
		a.log.Error("reload: cannot build notifiers; keeping the running config", zap.Error(err))
		return nil
	}
	if cfg.State != rt.cfg.State || cfg.Daemon != rt.cfg.Daemon {
		a.log.Warn("reload: state and daemon settings take effect on restart only")
	}
	for _, n := range rt.names {
		if _, ok := creds[n]; !ok {
			m.Forget(n)
		}
	}
	// Old sinks stay open until exit: a rotation in flight may use them.
	rt.closers = append(rt.closers, closers...)
	rt.notify.SetTargets(targets)
	rt.creds, rt.names = creds, names
	m.Init(names)
	list := make([]*rotation.Credential, 0, len(names))
	for _, n := range names {
		list = append(list, creds[n])
	}
	sched.Reload(list)
	page.SetCredentials(list)
	a.log.Info("config reloaded", zap.String("config", cfg.File), zap.Int("credentials", len(list)))
	return list
}

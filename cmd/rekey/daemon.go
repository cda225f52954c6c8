package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/internal/server"
	"github.com/rekeyhq/rekey/notify"
	"github.com/rekeyhq/rekey/rotation"
)

func (a *app) daemonCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Long-running: rotate each credential when due, resume unfinished rotations, serve /healthz /readyz /metrics",
		Long: `rekey daemon resumes unfinished rotations, then sleeps until each credential
is due and rotates it. It serves /healthz, /readyz and /metrics on
daemon.listen. SIGHUP reloads the config (an invalid one is logged and the
running one kept); SIGTERM or SIGINT finishes the current step, journals it
and exits 0; a second signal exits at once (130).`,
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

	m := metrics.New(a.clock)
	b := currentBuild()
	m.SetBuildInfo(b.Version, b.Commit, b.GoVersion)
	m.Init(rt.names)
	rt.engine.OnTransition = append(rt.engine.OnTransition, m.Transition)
	sched := &rotation.Scheduler{
		Engine:      rt.engine,
		Concurrency: rt.cfg.Daemon.Concurrency,
		OnSchedule:  m.Scheduled,
		OnOverdue: func(s rotation.Status) {
			msg := "no successful rotation within rotate_every plus grace (overdue since " + s.OverdueAt.UTC().Format(time.RFC3339) + ")"
			if s.Due.Failures > 0 {
				msg += fmt.Sprintf("; %d failed attempts since the last success", s.Due.Failures)
			}
			rt.notify.Notify(notify.Event{Kind: notify.Overdue, Credential: s.Credential, Time: a.clock.Now().UTC(), Error: msg})
		},
	}

	srv, err := server.Start(rt.cfg.Daemon.Listen, m.Handler())
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

	creds := make([]*rotation.Credential, 0, len(rt.names))
	for _, n := range rt.names {
		creds = append(creds, rt.creds[n])
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		sched.Run(ctx, creds)
	}()
	srv.SetReady(true)
	addr := srv.Addr()
	a.log.Info("daemon started", zap.String("listen", addr), zap.Int("credentials", len(creds)), zap.String("config", rt.cfg.File))
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
			a.reloadConfig(rt, sched, m)
		}
	}
}

// reloadConfig applies a changed config to a running daemon. A config that
// does not load or build is logged and the running one kept. The journal,
// listen address and concurrency are fixed for the process's life.
func (a *app) reloadConfig(rt *runtime, sched *rotation.Scheduler, m *metrics.Metrics) {
	cfg, err := a.loadConfig()
	if err != nil {
		a.log.Error("reload: invalid config; keeping the running one", zap.Error(err))
		return
	}
	creds, names, closers, err := a.credentials(cfg)
	if err != nil {
		a.log.Error("reload: cannot build credentials; keeping the running config", zap.Error(err))
		return
	}
	targets, err := notifyTargets(cfg)
	if err != nil {
		for _, c := range closers {
			_ = c.Close()
		}
		a.log.Error("reload: cannot build notifiers; keeping the running config", zap.Error(err))
		return
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
	a.log.Info("config reloaded", zap.String("config", cfg.File), zap.Int("credentials", len(list)))
}

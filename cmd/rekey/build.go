package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/awsiam"
	"github.com/rekeyhq/rekey/issuers/execissuer"
	"github.com/rekeyhq/rekey/issuers/httpissuer"
	"github.com/rekeyhq/rekey/notify"
	"github.com/rekeyhq/rekey/notify/slack"
	"github.com/rekeyhq/rekey/notify/webhook"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/ghactions"
	"github.com/rekeyhq/rekey/sinks/kubernetes"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

// loadConfig reads and fully validates the config, every issuer and sink
// entry included, without reading a secret; a problem is a usage error
// (exit 2).
func (a *app) loadConfig() (*config.Config, error) { return loadConfigAt(a.configPath) }

// loadConfigAt is loadConfig of the config at path.
func loadConfigAt(path string) (*config.Config, error) {
	// Each entry keeps only its decoded config: building decodes it again
	// from there, not from YAML.
	cfg, err := config.LoadWith(path, config.Backends{
		Issuer: func(spec *config.IssuerSpec) (any, error) { _, c, err := decodeIssuer(spec, nil, nil); return c, err },
		Sink:   func(spec *config.SinkSpec) (any, error) { _, c, err := decodeSink(spec, nil, nil); return c, err },
	})
	if err != nil {
		return nil, fail(exitUsage, err)
	}
	return cfg, nil
}

// decodeIssuer and decodeSink are the one place that knows every issuer
// and every sink type: adding a back-end adds a case here.

// decodeIssuer decodes one issuer entry and, if log is not nil, constructs
// the issuer (reading its secrets) over the shared connections of pools;
// with a nil log it only validates and returns a nil Issuer. It returns
// the entry's decoded file config either way.
func decodeIssuer(spec *config.IssuerSpec, log *zap.Logger, pools *pools) (issuers.Issuer, any, error) {
	switch spec.Type {
	case apexverify.Type:
		return buildIssuer(spec, log, apexverify.FileConfig.Resolve, func(c apexverify.Config, l *zap.Logger) (*apexverify.Issuer, error) {
			if pools != nil {
				c.Transport = pools.apex.For(c.BaseURL)
			}
			return apexverify.New(c, l)
		})
	case awsiam.Type:
		return buildIssuer(spec, log, awsiam.FileConfig.Resolve, func(c awsiam.Config, l *zap.Logger) (*awsiam.Issuer, error) { return awsiam.New(c, l) })
	case httpissuer.Type:
		return buildIssuer(spec, log, httpissuer.FileConfig.Resolve, func(c httpissuer.Config, l *zap.Logger) (issuers.Issuer, error) {
			if pools != nil {
				c.Transport = pools.apex.For(c.API.Expanded().BaseURL)
			}
			return httpissuer.New(c, l)
		})
	case execissuer.Type:
		hidden := withDefaultTokens(spec.SecretEnv())
		return buildIssuer(spec, log, execissuer.FileConfig.Resolve, func(c execissuer.Config, l *zap.Logger) (issuers.Issuer, error) {
			return execissuer.New(c, l, execissuer.WithoutEnv(hidden...))
		})
	}
	return nil, nil, spec.UnknownType()
}

// decodeSink decodes one sink entry and, if log is not nil, constructs
// the sink; with a nil log it only validates and returns a nil Sink. It
// returns the entry's decoded config either way.
//
// hidden lists the variables a sink's child processes must not inherit
// (hiddenEnv); it is shared by the config's sinks, read-only.
func decodeSink(spec *config.SinkSpec, log *zap.Logger, hidden []string) (sinks.Sink, any, error) {
	switch spec.Type {
	case file.Type:
		return build(spec, log, func(c file.Config, l *zap.Logger) (*file.Sink, error) {
			return file.New(c, l, file.WithoutEnv(hidden...))
		})
	case awssm.Type:
		return build(spec, log, func(c awssm.Config, l *zap.Logger) (*awssm.Sink, error) { return awssm.New(c, l) })
	case vaultkv.Type:
		return build(spec, log, vaultkv.New)
	case ghactions.Type:
		return build(spec, log, func(c ghactions.Config, l *zap.Logger) (*ghactions.Sink, error) { return ghactions.New(c, l) })
	case kubernetes.Type:
		return build(spec, log, func(c kubernetes.Config, l *zap.Logger) (*kubernetes.Sink, error) { return kubernetes.New(c, l) })
	}
	return nil, nil, spec.UnknownType()
}

// hiddenEnv is what on_change must not inherit of rekey's environment:
// the variables the config's env: references name, and those sinks read a
// token from by default.
func hiddenEnv(cfg *config.Config) []string { return withDefaultTokens(cfg.SecretEnv()) }

// withDefaultTokens is names and the variables sinks read a token from by
// default: what a process rekey starts (on_change, an exec issuer's
// command) must not inherit.
func withDefaultTokens(names []string) []string {
	return append(names, strings.TrimPrefix(ghactions.DefaultToken, "env:"), "VAULT_TOKEN")
}

// buildIssuer decodes spec into the issuer's file config F and, if log is
// not nil, resolves F's secrets into the issuer's Config C and builds it.
func buildIssuer[F, C any, I issuers.Issuer](spec *config.IssuerSpec, log *zap.Logger, resolve func(F) (C, error), newIssuer func(C, *zap.Logger) (I, error)) (issuers.Issuer, any, error) {
	var f F
	if err := spec.Decode(&f); err != nil {
		return nil, nil, err
	}
	if log == nil {
		return nil, f, nil
	}
	c, err := resolve(f)
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", spec.Field, err)
	}
	iss, err := newIssuer(c, log.WithLazy(zap.String("issuer", spec.Name)))
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", spec.Field, err)
	}
	return iss, f, nil
}

func build[C any, S sinks.Sink](spec *config.SinkSpec, log *zap.Logger, newSink func(C, *zap.Logger) (S, error)) (sinks.Sink, any, error) {
	var c C
	if err := spec.Decode(&c); err != nil {
		return nil, nil, err
	}
	if log == nil {
		return nil, c, nil
	}
	s, err := newSink(c, log) // each sink names itself in its log lines
	if err != nil {
		return nil, c, fmt.Errorf("%s: %w", spec.Field, err)
	}
	return s, c, nil
}

// pools are the connections the back-ends built from a config share, kept
// for the process's life so that a reloaded config reuses them.
type pools struct {
	apex *apexverify.Transports // one per API host (ApexVerify and http issuers)
}

// pools returns a's pools, creating them for cfg's concurrency on first use.
func (a *app) pools(cfg *config.Config) *pools {
	if a.shared == nil {
		a.shared = &pools{apex: &apexverify.Transports{IdlePerHost: cfg.Daemon.Concurrency}}
	}
	return a.shared
}

// runtime is everything a rotating command needs, built from the config.
type runtime struct {
	cfg     *config.Config
	store   journal
	engine  *rotation.Engine
	creds   map[string]*rotation.Credential
	names   []string // sorted
	closers []sinks.Closer
	audit   *audit.Log
	notify  *notify.Dispatcher
}

// closeTimeout bounds how long Close waits for queued notifications.
const closeTimeout = 30 * time.Second

func (rt *runtime) Close() {
	if rt.notify != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		_ = rt.notify.Close(ctx)
		cancel()
	}
	for _, c := range rt.closers {
		_ = c.Close()
	}
	if rt.audit != nil {
		_ = rt.audit.Close()
	}
	if rt.store != nil {
		_ = rt.store.Close()
	}
}

// auditPath is where the audit log lives: next to the journal, or with
// the etcd backend, where state.path says (no journal file is made there).
func auditPath(cfg *config.Config) string { return cfg.State.Path + ".audit.jsonl" }

// open loads the config, opens the journal and builds every credential.
// Nothing here talks to an issuer or sink, and nothing is written until a
// rotation runs (the audit log is created on its first line).
func (a *app) open(ctx context.Context) (*runtime, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rt := &runtime{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			rt.Close()
		}
	}()
	key, err := stateKey(cfg)
	if err != nil {
		return nil, err
	}
	if rt.creds, rt.names, rt.closers, err = a.credentials(cfg); err != nil {
		return nil, err
	}
	targets, err := notifyTargets(cfg)
	if err != nil {
		return nil, err
	}
	if rt.store, err = a.openStore(ctx, cfg, key); err != nil {
		return nil, err
	}
	rt.audit = audit.New(auditPath(cfg))
	rt.notify = notify.NewDispatcher(targets, notify.Retry{}, a.clock, a.log.Named("notify"))
	// Every durable phase change goes to the audit log and notifications,
	// whichever command runs the engine and whatever it sets as Observe.
	rt.engine = &rotation.Engine{Store: rt.store, Clock: a.clock, Log: a.log,
		OnTransition: []func(rotation.TransitionEvent){a.auditPhase(rt.audit), notifyPhase(rt.notify)}}
	ok = true
	return rt, nil
}

// openJournal is open for the commands that only read the journal (status,
// history): each credential gets its schedule but no issuer or sink, so
// that they need the state key and none of the issuers' or sinks' tokens,
// and talk to nothing upstream.
func (a *app) openJournal(ctx context.Context) (*runtime, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rt := &runtime{cfg: cfg, creds: make(map[string]*rotation.Credential, len(cfg.Credentials))}
	for _, name := range cfg.CredentialNames() {
		c, err := schedule(cfg.Credentials[name])
		if err != nil {
			return nil, err
		}
		rt.creds[name] = c
		rt.names = append(rt.names, name)
	}
	key, err := stateKey(cfg)
	if err != nil {
		return nil, err
	}
	if rt.store, err = a.openStore(ctx, cfg, key); err != nil {
		return nil, err
	}
	rt.engine = &rotation.Engine{Store: rt.store, Clock: a.clock, Log: a.log}
	return rt, nil
}

// credentials builds every credential of cfg with its issuer and sinks,
// and returns them with their sorted names and the sinks to close.
func (a *app) credentials(cfg *config.Config) (map[string]*rotation.Credential, []string, []sinks.Closer, error) {
	iss := map[string]issuers.Issuer{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Issuers)) {
		i, _, err := decodeIssuer(cfg.Issuers[name], a.log, a.pools(cfg))
		if err != nil {
			return nil, nil, nil, fail(exitUsage, err)
		}
		iss[name] = i
	}
	creds := map[string]*rotation.Credential{}
	var names []string
	var closers []sinks.Closer
	hidden := hiddenEnv(cfg)
	for _, name := range cfg.CredentialNames() {
		cc := cfg.Credentials[name]
		c, err := a.buildCredential(cc, iss[cc.Issuer], hidden, &closers)
		if err == nil {
			err = checkFields(cc, iss[cc.Issuer])
		}
		if err != nil {
			for _, cl := range closers {
				_ = cl.Close()
			}
			return nil, nil, nil, err
		}
		c.Setup = setupOf(c.Issuer, cfg.Issuers[cc.Issuer].Type, c.Sinks)
		creds[name] = c
		names = append(names, name)
	}
	sort.Strings(names)
	return creds, names, closers, nil
}

// checkFields checks a credential's sinks against the fields its issuer's
// values carry, when the issuer says (issuers.Fielded): every sink must map
// exactly those fields, or hold a single value when there are none. An
// issuer that does not say decides per value; a sink then refuses a value
// of the wrong shape before writing anything.
func checkFields(cc *config.Credential, iss issuers.Issuer) error {
	fi, ok := iss.(issuers.Fielded)
	if !ok || len(cc.Sinks) == 0 {
		return nil
	}
	want := slices.Sorted(slices.Values(fi.Fields()))
	got := cc.Fields()
	s := cc.Sinks[0]
	switch {
	case slices.Equal(got, want):
		return nil
	case len(want) == 0:
		return fail(exitUsage, &config.Error{File: s.File, Line: s.Line, Field: "credentials." + cc.Name + ".sinks",
			Msg: fmt.Sprintf("issuer %s's keys are single values: the sinks hold them with key:, not fields:", cc.Issuer)})
	case got == nil:
		return fail(exitUsage, &config.Error{File: s.File, Line: s.Line, Field: "credentials." + cc.Name + ".sinks",
			Msg: fmt.Sprintf("issuer %s's keys have the fields %s: map each of them in every sink with fields: (key: holds a single value)", cc.Issuer, strings.Join(want, ", "))})
	}
	return fail(exitUsage, &config.Error{File: s.File, Line: s.Line, Field: "credentials." + cc.Name + ".sinks",
		Msg: fmt.Sprintf("the sinks map the fields %s, but issuer %s's keys have the fields %s", strings.Join(got, ", "), cc.Issuer, strings.Join(want, ", "))})
}

// setupOf names a credential's setup for the journal (I8): the issuer's
// account (issuers.Account, e.g. "apexverify https://api.apexverify.com";
// its type when it names none), and the sorted names of its sinks. A
// history written for another setup is refused, so that one config can
// never revoke another config's keys through a shared state file.
func setupOf(iss issuers.Issuer, issuerType string, ss []sinks.Sink) string {
	account := issuerType
	if a, ok := iss.(issuers.Account); ok {
		account = a.Account()
	}
	names := make([]string, 0, len(ss))
	for _, s := range ss {
		names = append(names, s.Name())
	}
	sort.Strings(names)
	return account + "; sinks: " + strings.Join(names, ", ")
}

// notifyTargets builds the notifiers of cfg.notify; only here are their
// URLs resolved.
func notifyTargets(cfg *config.Config) ([]notify.Target, error) {
	var targets []notify.Target
	for i, n := range cfg.Notify {
		field := fmt.Sprintf("notify[%d]", i)
		u, err := n.URL.Resolve()
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("%s.url: %w", field, err))
		}
		t := notify.Target{Name: field + " (" + n.Type + ")"}
		switch n.Type {
		case "slack":
			t.Notifier = slack.New(u, nil)
		case "webhook":
			t.Notifier = webhook.New(u, nil)
		default:
			return nil, fail(exitUsage, fmt.Errorf("%s.type: unknown notifier type %q", field, n.Type))
		}
		for _, on := range n.On {
			t.On = append(t.On, notify.Kind(on))
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// auditPhase writes one audit line per phase change. A failed write is
// logged: the journal, which holds the same facts, has already landed.
func (a *app) auditPhase(l *audit.Log) func(rotation.TransitionEvent) {
	return func(ev rotation.TransitionEvent) {
		if err := l.Write(audit.EntryFor(ev)); err != nil {
			a.log.Error("audit log", zap.String("credential", ev.Credential), zap.String("rotation_id", ev.RotationID), zap.Error(err))
		}
	}
}

// notifyPhase queues a notification for each rotation that ends.
func notifyPhase(d *notify.Dispatcher) func(rotation.TransitionEvent) {
	return func(ev rotation.TransitionEvent) {
		if n, ok := notify.EventFor(ev); ok {
			d.Notify(n)
		}
	}
}

// schedule builds what of a credential its schedule and its journal
// need: everything but its issuer, sinks and health checks.
func schedule(cc *config.Credential) (*rotation.Credential, error) {
	c := &rotation.Credential{
		Name:          cc.Name,
		Label:         config.LabelFunc(cc.Label), // not cc.LabelFor, which would keep cc
		KeyID:         cc.KeyID,
		RotateEvery:   cc.RotateEvery.Std(),
		StageTimeout:  cc.StageTimeout.Std(),
		VerifyTimeout: cc.Verify.Timeout.Std(),
		Monitor: rotation.Monitor{
			Window:           cc.Monitor.Window.Std(),
			Interval:         cc.Monitor.Interval.Std(),
			FailureThreshold: cc.Monitor.FailureThreshold,
		},
	}
	if cc.Window != "" {
		w, err := rotation.ParseWindow(cc.Window, cc.Location())
		if err != nil {
			return nil, fail(exitUsage, err)
		}
		c.Window = w
	}
	if cc.Drain != nil {
		c.Drain = &rotation.Drain{IdleFor: cc.Drain.IdleFor.Std(), MaxWait: cc.Drain.MaxWait.Std()}
	}
	return c, nil
}

func (a *app) buildCredential(cc *config.Credential, iss issuers.Issuer, hidden []string, closers *[]sinks.Closer) (*rotation.Credential, error) {
	c, err := schedule(cc)
	if err != nil {
		return nil, err
	}
	c.Issuer = iss
	for i, ch := range cc.Monitor.Checks {
		hc, err := buildCheck(ch)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("credentials.%s.monitor.checks[%d]: %w", cc.Name, i, err))
		}
		c.Monitor.Checks = append(c.Monitor.Checks, hc)
	}
	// Lazy, as each sink's own: a logger's fields are encoded on its first
	// line, so that an idle credential holds no encoded copy of them.
	log := a.log.WithLazy(zap.String("credential", cc.Name))
	for i := range cc.Sinks {
		s, _, err := decodeSink(&cc.Sinks[i], log, hidden)
		if err != nil {
			return nil, fail(exitUsage, err)
		}
		c.Sinks = append(c.Sinks, s)
		if cl, ok := s.(sinks.Closer); ok {
			*closers = append(*closers, cl)
		}
	}
	return c, nil
}

// checkClients holds one health-check client per timeout: the checks of a
// fleet share a handful, not one each.
var checkClients struct {
	sync.Mutex
	m map[time.Duration]*http.Client
}

func checkClient(timeout time.Duration) *http.Client {
	checkClients.Lock()
	defer checkClients.Unlock()
	if c, ok := checkClients.m[timeout]; ok {
		return c
	}
	if checkClients.m == nil {
		checkClients.m = map[time.Duration]*http.Client{}
	}
	c := &http.Client{Timeout: timeout}
	checkClients.m[timeout] = c
	return c
}

func buildCheck(ch config.Check) (rotation.Check, error) {
	hc := &rotation.HTTPCheck{
		Name:         ch.Name,
		Method:       ch.Method,
		URL:          ch.URL,
		ExpectStatus: ch.ExpectStatus,
		BodyContains: ch.BodyContains,
		Timeout:      ch.Timeout.Std(),
		Client:       checkClient(max(ch.Timeout.Std(), time.Second)),
	}
	if len(ch.Headers) > 0 {
		hc.Header = http.Header{}
	}
	for k, v := range ch.Headers {
		val, err := v.Resolve()
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", k, err)
		}
		hc.Header.Set(k, val.Reveal())
	}
	if ch.BodyRegex != "" {
		re, err := regexp.Compile(ch.BodyRegex)
		if err != nil {
			return nil, fmt.Errorf("body_regex: %w", err)
		}
		hc.BodyRegex = re
	}
	return hc, nil
}

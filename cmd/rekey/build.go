package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/issuers"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/sqlite"
	"github.com/rekeyhq/rekey/sinks"
	"github.com/rekeyhq/rekey/sinks/awssm"
	"github.com/rekeyhq/rekey/sinks/file"
	"github.com/rekeyhq/rekey/sinks/ghactions"
	"github.com/rekeyhq/rekey/sinks/vaultkv"
)

// loadConfig reads and fully validates the config, including every sink
// entry; a problem is a usage error (exit 2).
func (a *app) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return nil, fail(exitUsage, err)
	}
	var errs config.Errors
	for _, name := range cfg.CredentialNames() {
		for i := range cfg.Credentials[name].Sinks {
			if _, err := decodeSink(&cfg.Credentials[name].Sinks[i], nil); err != nil {
				errs = append(errs, asConfigErrors(err)...)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fail(exitUsage, errs)
	}
	return cfg, nil
}

func asConfigErrors(err error) config.Errors {
	var es config.Errors
	if errors.As(err, &es) {
		return es
	}
	var e *config.Error
	if errors.As(err, &e) {
		return config.Errors{e}
	}
	return config.Errors{{Msg: err.Error()}}
}

// decodeSink decodes one sink entry and, if log is not nil, constructs
// the sink; with a nil log it only validates and returns a nil Sink. This
// switch is the one place that knows every sink type.
func decodeSink(spec *config.SinkSpec, log *zap.Logger) (sinks.Sink, error) {
	switch spec.Type {
	case "file":
		return build(spec, log, file.New)
	case "aws-secretsmanager":
		return build(spec, log, func(c awssm.Config, l *zap.Logger) (*awssm.Sink, error) { return awssm.New(c, l) })
	case "vault-kv":
		return build(spec, log, vaultkv.New)
	case "github-actions":
		return build(spec, log, ghactions.New)
	}
	return nil, &config.Error{File: spec.File, Line: spec.Line, Field: spec.Field + ".type", Msg: fmt.Sprintf("unknown sink type %q", spec.Type)}
}

func build[C any, S sinks.Sink](spec *config.SinkSpec, log *zap.Logger, newSink func(C, *zap.Logger) (S, error)) (sinks.Sink, error) {
	var c C
	if err := spec.Decode(&c); err != nil {
		return nil, err
	}
	if log == nil {
		return nil, nil
	}
	s, err := newSink(c, log.With(zap.String("sink", spec.Type)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Field, err)
	}
	return s, nil
}

// runtime is everything a rotating command needs, built from the config.
type runtime struct {
	cfg     *config.Config
	store   *sqlite.Store
	engine  *rotation.Engine
	creds   map[string]*rotation.Credential
	names   []string // sorted
	closers []sinks.Closer
}

func (rt *runtime) Close() {
	for _, c := range rt.closers {
		_ = c.Close()
	}
	if rt.store != nil {
		_ = rt.store.Close()
	}
}

// open loads the config, opens the journal and builds every credential.
// Nothing here talks to an issuer or sink.
func (a *app) open(ctx context.Context) (*runtime, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rt := &runtime{cfg: cfg, creds: map[string]*rotation.Credential{}}
	ok := false
	defer func() {
		if !ok {
			rt.Close()
		}
	}()
	keyText, err := cfg.State.EncryptionKey.Resolve()
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("state.encryption_key: %w", err))
	}
	key, err := sqlite.DecodeKey(keyText.Reveal())
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("state.encryption_key (%s): %w", cfg.State.EncryptionKey, err))
	}
	if rt.store, err = sqlite.Open(ctx, cfg.State.Path, key); err != nil {
		return nil, fail(exitFailed, err)
	}
	iss := map[string]issuers.Issuer{}
	for name, ic := range cfg.Issuers {
		token, err := ic.ManagementToken.Resolve()
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("issuers.%s.management_token: %w", name, err))
		}
		iss[name], err = apexverify.New(apexverify.Config{BaseURL: ic.BaseURL, ManagementToken: token, Timeout: ic.Timeout.Std()}, a.log.With(zap.String("issuer", name)))
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("issuers.%s: %w", name, err))
		}
	}
	for _, name := range cfg.CredentialNames() {
		c, err := a.buildCredential(cfg.Credentials[name], iss[cfg.Credentials[name].Issuer], rt)
		if err != nil {
			return nil, err
		}
		rt.creds[name] = c
		rt.names = append(rt.names, name)
	}
	sort.Strings(rt.names)
	rt.engine = &rotation.Engine{Store: rt.store, Clock: a.clock, Log: a.log}
	ok = true
	return rt, nil
}

func (a *app) buildCredential(cc *config.Credential, iss issuers.Issuer, rt *runtime) (*rotation.Credential, error) {
	c := &rotation.Credential{
		Name:          cc.Name,
		Issuer:        iss,
		Label:         cc.LabelFor,
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
	for i, ch := range cc.Monitor.Checks {
		hc, err := buildCheck(ch)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("credentials.%s.monitor.checks[%d]: %w", cc.Name, i, err))
		}
		c.Monitor.Checks = append(c.Monitor.Checks, hc)
	}
	log := a.log.With(zap.String("credential", cc.Name))
	for i := range cc.Sinks {
		s, err := decodeSink(&cc.Sinks[i], log)
		if err != nil {
			return nil, fail(exitUsage, err)
		}
		c.Sinks = append(c.Sinks, s)
		if cl, ok := s.(sinks.Closer); ok {
			rt.closers = append(rt.closers, cl)
		}
	}
	return c, nil
}

func buildCheck(ch config.Check) (rotation.Check, error) {
	hc := &rotation.HTTPCheck{
		Name:         ch.Name,
		Method:       ch.Method,
		URL:          ch.URL,
		Header:       http.Header{},
		ExpectStatus: ch.ExpectStatus,
		BodyContains: ch.BodyContains,
		Timeout:      ch.Timeout.Std(),
		Client:       &http.Client{Timeout: max(ch.Timeout.Std(), time.Second)},
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

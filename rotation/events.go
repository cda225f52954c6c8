package rotation

// Journal writes and progress events: every phase change is durable
// before the side effect that follows it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/secret"
)

// Event reports progress to an Observer (the CLI's live output, the demo).
// It never carries a key value.
type Event struct {
	Time       time.Time
	Credential string
	RotationID string
	Phase      Phase
	// Sink is set for per-sink steps.
	Sink string
	// Msg is a short human description of what just happened; empty for a
	// phase transition.
	Msg string
	Err error
	// Transition is set when the event is a journaled phase change; the
	// fields below are filled for transitions only.
	Transition bool
	OldKeyID   string
	NewKeyID   string
	// Sinks names the credential's sinks written so far.
	Sinks []string
	// Error is the rotation's recorded error, for rolling_back, rolled_back
	// and failed.
	Error string
	// Probe is set on the event that follows each probe of the monitoring
	// window (live progress); such events are not logged.
	Probe *Probe
}

// Probe is the monitoring window's progress after one probe.
type Probe struct {
	Passed, Failed int           // probes so far in this window
	Left           time.Duration // until the window ends
	Err            error         // this probe's failure, if any
}

// Hooks let tests stop the engine around journal writes, as a crash would.
// A hook that returns an error makes the engine return that error at once,
// with no further side effect.
type Hooks struct {
	BeforeSave func(r *Record) error
	AfterSave  func(r *Record) error
}

// advance journals rec in phase p. The hooks model a crash on either side
// of the write.
func (e *Engine) advance(ctx context.Context, rec *Record, p Phase, cause error) error {
	rec.Phase = p
	t := Transition{Phase: p, At: e.Clock.Now().UTC()}
	if cause != nil {
		t.Error = cause.Error()
	}
	rec.Transitions = append(rec.Transitions, t)
	rec.unreported++
	if err := e.save(ctx, rec); err != nil {
		return err
	}
	e.Log.Info("phase "+string(p), zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID), zap.String("phase", string(p)),
		zap.String("key_id", rec.NewKeyID))
	if e.Observe != nil {
		ev := Event{Time: t.At, Credential: rec.Credential, RotationID: rec.ID, Phase: p, Transition: true,
			OldKeyID: rec.OldKeyID, NewKeyID: rec.NewKeyID, Error: rec.Error}
		for _, r := range rec.Receipts {
			ev.Sinks = append(ev.Sinks, r.Sink)
		}
		e.Observe(ev)
	}
	return nil
}

var errHook = errors.New("rotation: stopped by test hook")

func isHookErr(err error) bool { return errors.Is(err, errHook) }

func (e *Engine) save(ctx context.Context, rec *Record) error {
	rec.UpdatedAt = e.Clock.Now().UTC()
	if h := e.Hooks.BeforeSave; h != nil {
		if err := h(rec); err != nil {
			return fmt.Errorf("%w: %w", errHook, err)
		}
	}
	// The journal write must land even if ctx was just cancelled: the side
	// effect it records has happened.
	if err := e.Store.Save(context.WithoutCancel(ctx), rec); err != nil {
		return fmt.Errorf("rotation: journal %s/%s: %w", rec.Credential, rec.ID, err)
	}
	e.transitioned(rec)
	if h := e.Hooks.AfterSave; h != nil {
		if err := h(rec); err != nil {
			return fmt.Errorf("%w: %w", errHook, err)
		}
	}
	return nil
}

func (e *Engine) emit(rec *Record, sink, msg string, err error) {
	fields := []zap.Field{zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID), zap.String("phase", string(rec.Phase))}
	if sink != "" {
		fields = append(fields, zap.String("sink", sink))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	text := msg
	if text == "" {
		text = "phase " + string(rec.Phase)
	}
	if err != nil {
		e.Log.Warn(text, fields...)
	} else {
		e.Log.Info(text, fields...)
	}
	if e.Observe != nil {
		e.Observe(Event{Time: e.Clock.Now(), Credential: rec.Credential, RotationID: rec.ID, Phase: rec.Phase, Sink: sink, Msg: msg, Err: err})
	}
}

func (e *Engine) warn(rec *Record, msg string) {
	e.Log.Warn(msg, logFields(rec)...)
	if e.Observe != nil {
		e.Observe(Event{Time: e.Clock.Now(), Credential: rec.Credential, RotationID: rec.ID, Phase: rec.Phase, Msg: "warning: " + msg})
	}
}

func logFields(rec *Record) []zap.Field {
	return []zap.Field{zap.String("credential", rec.Credential), zap.String("rotation_id", rec.ID)}
}

func fingerprint(v secret.Value) string {
	if v.IsZero() {
		return "nothing"
	}
	return v.Fingerprint()
}

func interrupted(err error) error {
	if errors.Is(err, errHook) {
		return err
	}
	return ErrInterrupted
}

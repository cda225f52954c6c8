package sinktest

import (
	"context"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Fake is an in-memory sink for tests that inject faults, built from
// function fields: a nil field behaves like a healthy back-end. Fake itself
// has only Put; wrap it in FakeReader or FakeConfirmer to give it the
// optional ability under test, since the engine finds abilities by type
// assertion.
type Fake struct {
	SinkName string
	// PutFunc, if set, replaces the store: it is called with the value and
	// the rotation ID and its error is returned; the value is kept only if
	// it returns nil.
	PutFunc func(ctx context.Context, v secret.Value, rotationID string) error

	mu    sync.Mutex
	value secret.Value
	puts  int
}

var _ sinks.Sink = (*Fake)(nil)

// Name implements sinks.Sink.
func (f *Fake) Name() string { return f.SinkName }

// Put implements sinks.Sink.
func (f *Fake) Put(ctx context.Context, v secret.Value, rotationID string) (sinks.Receipt, error) {
	if f.PutFunc != nil {
		if err := f.PutFunc(ctx, v, rotationID); err != nil {
			return sinks.Receipt{}, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	created := f.value.IsZero()
	f.value = v
	f.puts++
	return sinks.Receipt{Sink: f.SinkName, RotationID: rotationID, Created: created, At: time.Now()}, nil
}

// Value returns what the sink holds now.
func (f *Fake) Value() secret.Value {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value
}

// Set stores v behind the engine's back, as a person or config management
// would.
func (f *Fake) Set(v secret.Value) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = v
}

// Puts counts the successful Puts.
func (f *Fake) Puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// FakeReader is a Fake that can be read back.
type FakeReader struct {
	*Fake
	// GetFunc, if set, is called first; a non-nil error is returned.
	GetFunc func(ctx context.Context) error
}

var _ sinks.Reader = (*FakeReader)(nil)

// Get implements sinks.Reader.
func (f *FakeReader) Get(ctx context.Context) (secret.Value, error) {
	if f.GetFunc != nil {
		if err := f.GetFunc(ctx); err != nil {
			return secret.Value{}, err
		}
	}
	if v := f.Value(); !v.IsZero() {
		return v, nil
	}
	return secret.Value{}, sinks.ErrNotFound
}

// FakeConfirmer is a write-only Fake that can confirm its writes.
type FakeConfirmer struct {
	*Fake
	// ConfirmFunc, if set, decides; it sees what the sink holds. Nil
	// confirms every write.
	ConfirmFunc func(ctx context.Context, held secret.Value, r sinks.Receipt) error
}

var _ sinks.Confirmer = (*FakeConfirmer)(nil)

// Confirm implements sinks.Confirmer.
func (f *FakeConfirmer) Confirm(ctx context.Context, r sinks.Receipt) error {
	if f.ConfirmFunc == nil {
		return nil
	}
	return f.ConfirmFunc(ctx, f.Value(), r)
}

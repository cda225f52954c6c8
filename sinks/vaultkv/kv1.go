package vaultkv

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// SinkV1 is a key in a KV version 1 secret. KV v1 keeps no versions and has
// no check-and-set: Put reads the secret, sets the field and writes the
// whole secret back, so a concurrent writer of another field of the same
// secret can be lost. It is not a Rollbacker: the engine rolls it back with
// a Put of the old value from the journal. Receipts carry no versions.
type SinkV1 struct{ *conn }

func (s *SinkV1) dataPath() string { return s.cfg.Mount + "/" + s.cfg.Path }

func (s *SinkV1) read(ctx context.Context) (map[string]any, error) {
	sec, err := s.client.Logical().ReadWithContext(ctx, s.dataPath())
	if err != nil {
		return nil, s.classify("read", s.dataPath(), err)
	}
	if sec == nil {
		return nil, nil
	}
	return sec.Data, nil
}

// Put sets the field to value, keeping the secret's other fields. A repeat
// finds its value in place and writes nothing; since KV v1 keeps no history,
// its receipt then says Created false even if the first Put created the
// field.
func (s *SinkV1) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	if err := s.ready(ctx); err != nil {
		return sinks.Receipt{}, err
	}
	if err := s.cfg.checkShape(s.dataPath(), value); err != nil {
		return sinks.Receipt{}, err
	}
	cur, err := s.read(ctx)
	if err != nil {
		return sinks.Receipt{}, err
	}
	r := sinks.Receipt{Sink: s.name, RotationID: rotationID, At: time.Now().UTC()}
	if s.cfg.holds(cur, value) {
		return r, nil
	}
	r.Created = !s.cfg.hadAny(cur)
	data := copyData(cur)
	s.cfg.set(data, value)
	if _, err := s.client.Logical().WriteWithContext(ctx, s.dataPath(), data); err != nil {
		return sinks.Receipt{}, secret.Scrub(s.classify("write", s.dataPath(), err), value)
	}
	return r, nil
}

// Get returns the field, or sinks.ErrNotFound when the secret or the field
// does not exist.
func (s *SinkV1) Get(ctx context.Context) (secret.Value, error) {
	if err := s.ready(ctx); err != nil {
		return secret.Value{}, err
	}
	cur, err := s.read(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	if cur == nil {
		return secret.Value{}, sinks.ErrNotFound
	}
	return s.cfg.valueOf(cur, s.dataPath())
}

// Preflight logs in, checks the mount and its KV version, reads the secret
// and checks that the token may write it.
func (s *SinkV1) Preflight(ctx context.Context) error {
	return preflight(ctx, s.conn, s.dataPath(), func(ctx context.Context) (bool, error) {
		cur, err := s.read(ctx)
		return cur != nil, err
	})
}

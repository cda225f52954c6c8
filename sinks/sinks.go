// Package sinks defines where rekey puts a key: the Sink interface every
// back-end implements, and the optional abilities the rotation engine looks
// for by type assertion. Each back-end lives in its own package (sinks/file,
// sinks/awssm, sinks/vaultkv, sinks/ghactions) and is checked by the shared
// contract suite in sinks/sinktest.
package sinks

import (
	"context"
	"errors"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

// ErrNotFound is returned by Reader.Get when the sink holds no value yet.
var ErrNotFound = errors.New("sinks: no value")

// Receipt records one Put. It is journaled in plain text, so it must never
// hold a key value: only version IDs, hashes and timestamps.
type Receipt struct {
	// Sink is the Name of the sink that wrote.
	Sink string `json:"sink"`
	// RotationID is the rotation the value belongs to.
	RotationID string `json:"rotation_id"`
	// Version identifies what Put wrote, when the back-end versions values
	// (AWS version ID, Vault version number); empty otherwise.
	Version string `json:"version,omitempty"`
	// Previous identifies what Put replaced, in the back-end's terms, so
	// that a Rollbacker can restore it; empty when the sink held nothing or
	// keeps no versions.
	Previous string `json:"previous,omitempty"`
	// Created is true when the sink held no value before Put.
	Created bool `json:"created,omitempty"`
	// At is when the write was acknowledged (write-only sinks compare it
	// with the back-end's updated_at).
	At time.Time `json:"at"`
}

// Sink is one place that holds a credential's key.
type Sink interface {
	// Name identifies the sink among a credential's sinks, stably across
	// restarts (e.g. "file:/etc/crm/app.env#APEXVERIFY_API_KEY"). It holds
	// no secret.
	Name() string

	// Put makes value the sink's current value and returns what it replaced.
	// It is idempotent per rotationID: repeating a Put with the same value
	// and rotation ID after a crash changes nothing further and returns a
	// receipt equal to the first one's. Errors never contain the value;
	// permanent errors (bad permissions, missing resources) are wrapped with
	// backoff.Permanent. A permanent error means Put changed nothing: an
	// error that comes after the value landed (a failed reload hook) must
	// not be permanent.
	Put(ctx context.Context, value secret.Value, rotationID string) (Receipt, error)
}

// Reader is a sink that can be read back.
type Reader interface {
	// Get returns the sink's current value, or ErrNotFound.
	Get(ctx context.Context) (secret.Value, error)
}

// Confirmer is a write-only sink that can still prove a write landed, e.g.
// by the back-end's updated_at having moved past Receipt.At.
type Confirmer interface {
	Confirm(ctx context.Context, r Receipt) error
}

// Rollbacker is a sink that can undo a Put from its receipt alone, without
// the old value (e.g. by moving a version stage back). Sinks that are not
// Rollbackers are rolled back by a Put of the old value, which the journal
// keeps encrypted. Rollback is idempotent.
type Rollbacker interface {
	Rollback(ctx context.Context, r Receipt) error
}

// Settler is a sink whose readers must act before they use a new value:
// a Kubernetes Secret whose pods are restarted to read it again. The engine
// calls Settle once every sink holds the new value and has been read back
// (or confirmed), before the deployed phase and its monitoring window; an
// error there fails the deploy, which rolls back. After a rollback has
// restored the sink it calls Settle again, with rotationID+".rollback", so
// that the readers move back to the old value before the new key is
// revoked; an error there leaves the new key valid and the rotation failed.
//
// Settle is idempotent per rotationID and bounds its own wait: the
// engine's step timeout does not apply to it.
type Settler interface {
	Settle(ctx context.Context, rotationID string) error
}

// Preflighter is a sink that can check, without writing, that Put would be
// allowed (used by `rekey plan`).
type Preflighter interface {
	Preflight(ctx context.Context) error
}

// Closer is a sink that holds resources (token renewers, connections).
type Closer interface {
	Close() error
}

package rotation

import (
	"context"
	"errors"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// Phase is a step of the rotation sequence (ARCHITECTURE.md §1).
type Phase string

const (
	Planned     Phase = "planned"
	Minted      Phase = "minted"
	Verified    Phase = "verified"
	Deployed    Phase = "deployed"
	Monitoring  Phase = "monitoring"
	Draining    Phase = "draining"
	Revoking    Phase = "revoking"
	Done        Phase = "done"
	RollingBack Phase = "rolling_back"
	RolledBack  Phase = "rolled_back"
	Failed      Phase = "failed"
)

// Terminal reports whether no further step follows p.
func (p Phase) Terminal() bool { return p == Done || p == RolledBack || p == Failed }

// Outcomes of a finished rotation, as Phase.Outcome names them: the values
// of the audit log's outcome, the metrics' outcome label and the
// notification kinds.
const (
	OutcomeSuccess  = "success"  // Done: new key live, old key revoked
	OutcomeRollback = "rollback" // RolledBack: every sink restored, the old key still in use
	OutcomeFailure  = "failure"  // Failed: needs a person
)

// Outcome names how a rotation that ended in p ended: OutcomeSuccess,
// OutcomeRollback or OutcomeFailure; empty for a phase that is not terminal.
func (p Phase) Outcome() string {
	switch p {
	case Done:
		return OutcomeSuccess
	case RolledBack:
		return OutcomeRollback
	case Failed:
		return OutcomeFailure
	}
	return ""
}

// Transition is one journaled phase change.
type Transition struct {
	Phase Phase     `json:"phase"`
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// Record is the journal entry of one rotation of one credential. The
// store keeps OldValue and NewValue encrypted; every other field is plain
// text and must never hold a key value.
type Record struct {
	Credential string
	ID         string // rotation ID, unique per credential
	Phase      Phase
	Label      string // the new key's label at the issuer

	// OldKeyID is the issuer's ID of the key being replaced; empty when it
	// could not be identified (I7: then nothing is revoked).
	OldKeyID string
	OldValue secret.Value
	NewKeyID string
	NewValue secret.Value

	// Receipts of the sinks written so far, in write order.
	Receipts []sinks.Receipt
	// Staged is set by `rotate --stage`: the rotation waits in Deployed
	// until --finish or its stage timeout.
	Staged bool
	// Forced is set by `rotate --force`.
	Forced bool

	// Setup identifies the issuer and sinks the rotation ran against (see
	// Credential.Setup); a credential's history belongs to one setup (I8).
	Setup string
	// Kept is set on a Failed rotation whose new key was kept live in every
	// sink (rolling back would have restored a dead key): the new key is the
	// credential's current key from then on.
	Kept bool
	// Reverts counts how often a sink was found holding something other
	// than the new key right before the old key's revocation (I8).
	Reverts int
	// Left lists keys that rekey left valid for a person. The newest
	// record of a credential carries every such key still outstanding: a
	// new rotation copies them forward, and a successful one revokes those
	// no sink holds any more.
	Left []LeftKey
	// Untouched names sinks whose Put failed permanently, which by the
	// Sink contract changed nothing: rollback has nothing to undo there.
	Untouched []string
	// Unreadable is set by a Store on a record it cannot authenticate or
	// decrypt; then only Credential, ID and Unreadable are meaningful, and
	// the engine goes on from the newest readable record.
	Unreadable string

	Error       string
	Transitions []Transition
	StartedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  time.Time

	// unreported counts the newest Transitions not yet passed to the
	// engine's OnTransition observers: appended, but not yet durable.
	unreported int
	// planned is set on a record this process planned: its label is new, so
	// no key can carry it before this process's own create.
	planned bool
}

// LeftKey is a key rekey left valid at the issuer for a person to look at.
type LeftKey struct {
	KeyID      string    `json:"key_id"`
	RotationID string    `json:"rotation_id"` // the rotation that left it
	Reason     string    `json:"reason"`
	HeldBy     []string  `json:"held_by,omitempty"` // sink names holding it when left
	At         time.Time `json:"at"`
}

// ErrBusy is returned by Store.Lock when another process or goroutine is
// rotating the credential.
var ErrBusy = errors.New("rotation: credential is busy")

// ErrLockLost is returned (wrapped) by Store.Save when the Store does not,
// or no longer, hold the credential's lock: the lock was never taken through
// this Store, was released, or its lease expired and another process may
// hold it now. Nothing was written. A Store that fences writes (etcd) returns
// it; the engine stops the rotation at once, without acting, because every
// side effect is journaled before it happens (I6): the lock's new holder
// resumes from the journal.
var ErrLockLost = errors.New("rotation: the credential's lock is not held (lost or released): nothing was journaled")

// LockWatcher is an optional ability of a Store whose locks can be lost
// while held (lease-backed locks). LockLost returns a channel that is
// closed once the lock on credential held through this Store is lost or
// released, or nil if this Store holds none. The engine ends a rotation's
// calls in flight when it closes, as their journal writes would fail anyway.
type LockWatcher interface {
	LockLost(credential string) <-chan struct{}
}

// ChangeWatcher is an optional ability of a Store that several processes
// share (etcd): it tells of records saved by any process as they are
// saved. A daemon's Scheduler watches while it runs, so that it looks at a
// credential again when another process changes its journal (a `rekey
// rotate` on another host that was killed mid-way, a deploy hook's
// --finish), not only at the credential's next wake time.
type ChangeWatcher interface {
	// WatchChanges calls changed, from one goroutine, with the credential
	// of each record saved from now on, until ctx ends; and with "" when it
	// may have missed changes (the watch broke and started again), meaning
	// every credential. It returns when ctx ends.
	WatchChanges(ctx context.Context, changed func(credential string))
}

// ErrNotFound is returned by Store.Get for an unknown rotation.
var ErrNotFound = errors.New("rotation: no such rotation")

// Store is the journal. Every write is durable (fsynced) when it returns.
//
// A Store authenticates each record whole (I8): a record it cannot
// authenticate or decrypt (edited, moved, or written with another key) is
// returned by the read methods (Get, Unfinished, History, Recent, RecentAll)
// as an unreadable record, with only Credential, ID and Unreadable (a short
// reason, never a key value) set, in place of the record and without failing
// the call. Only a failure of the whole read (I/O, the database) is an error.
// Callers skip unreadable records for decisions and show them to people.
//
// A credential's records are ordered by StartedAt, then ID; "newest first"
// below means by that order, descending.
type Store interface {
	// Save inserts or replaces the record (credential, ID). It refuses a
	// record whose Unreadable is set. The caller holds the credential's
	// lock, taken with Lock on this Store; a Store that can tell (etcd)
	// refuses a Save without it with an error wrapping ErrLockLost, and
	// writes nothing.
	Save(ctx context.Context, r *Record) error
	// Get returns one rotation, possibly unreadable, or ErrNotFound.
	Get(ctx context.Context, credential, id string) (*Record, error)
	// Unfinished returns the rotations in flight, oldest first: for each
	// credential, its newest readable record if its phase is not terminal,
	// and every unreadable record newer than that one (its phase is
	// unknown). Only a credential's newest record can be in flight: the
	// engine never resumes an older one.
	Unfinished(ctx context.Context) ([]*Record, error)
	// History returns a credential's rotations, newest first, unreadable
	// ones in their place. limit counts readable records only: History
	// returns the newest limit readable records and the unreadable ones
	// among and newer than them, so History(ctx, c, 1) ends with the newest
	// readable record if there is one. limit <= 0 means all.
	History(ctx context.Context, credential string, limit int) ([]*Record, error)
	// Recent returns the part of a credential's history that decisions
	// need, newest first: every record down to and including the newest
	// readable one in phase Done (the last success), unreadable ones among
	// them in their place; the whole history when no readable record is
	// Done; none for an unknown credential. It is RecentOf(History(ctx,
	// credential, 0)), read without reading older records. It holds the
	// newest readable record, the unfinished rotation, the record whose
	// new key is the current key (the newest readable one that
	// holdsCurrent: that Done record or a newer Failed one that kept its
	// key), and every failure since the last success.
	Recent(ctx context.Context, credential string) ([]*Record, error)
	// RecentAll returns Recent of every credential in the journal, keyed by
	// credential, in one read. A credential without records is absent.
	RecentAll(ctx context.Context) (map[string][]*Record, error)
	// Lock takes the credential's lock, which excludes every other holder
	// in this and any other process on the machine (I5). It returns ErrBusy
	// at once if the lock is held. The lock is released by unlock or by the
	// process's death (for a lease-backed lock, once its lease expires).
	Lock(ctx context.Context, credential string) (unlock func(), err error)
	Close() error
}

// RecentOf returns the part of a newest-first history that Store.Recent
// returns: hist up to and including its first readable Done record, or all
// of hist when none is. A Store without a faster way may implement Recent
// as RecentOf(History(ctx, credential, 0)).
func RecentOf(hist []*Record) []*Record {
	for i, r := range hist {
		if r.Unreadable == "" && r.Phase == Done {
			return hist[:i+1]
		}
	}
	return hist
}

// Package issuers defines who mints and revokes keys: the Issuer interface,
// its optional abilities, and the errors every issuer returns. Each issuer
// lives in its own package (issuers/apexverify) and is checked by the
// contract suite in issuers/issuertest.
package issuers

import (
	"context"
	"errors"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
)

var (
	// ErrNotFound: no key with that ID, label or prefix.
	ErrNotFound = errors.New("issuer: key not found")
	// ErrUnauthorized: the key (or management token) was refused.
	ErrUnauthorized = errors.New("issuer: unauthorized")
	// ErrKeyLimit: the account holds the maximum number of active keys.
	ErrKeyLimit = errors.New("issuer: key limit reached")
	// ErrInvalidLabel: the issuer rejects the label.
	ErrInvalidLabel = errors.New("issuer: invalid label")
	// ErrMaybeCreated: Create failed after an attempt of unknown outcome:
	// a key carrying its label may exist, or may still appear (a request
	// whose answer was lost can land after a clean-up looked).
	ErrMaybeCreated = errors.New("issuer: a key carrying the label may have been created")
)

// Status of a key at the issuer.
type Status string

const (
	Active  Status = "active"
	Revoked Status = "revoked"
)

// Key is an issuer's public record of a key; it never holds the value.
type Key struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	Prefix    string    `json:"prefix"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// LastUsedAt is zero if the key was never used.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Issuer mints, checks and revokes keys. Every method is safe to call again
// after a crash; errors never contain a key value. Transient failures are
// retried inside the issuer with backoff; what comes out is final for this
// attempt, and permanent errors are wrapped with backoff.Permanent.
type Issuer interface {
	// Create mints a key labelled label and returns it with its value,
	// which the issuer shows only once. Create is never retried blindly: if
	// the outcome of a request is unknown, the keys carrying label are
	// looked up and revoked (their values are lost) before trying again.
	// An error wrapping ErrMaybeCreated means a key carrying label may
	// exist or still appear; any other error means none does.
	Create(ctx context.Context, label string) (Key, secret.Value, error)
	// Find returns every key, active or revoked, labelled exactly label,
	// newest first.
	Find(ctx context.Context, label string) ([]Key, error)
	// Get returns one key, or ErrNotFound.
	Get(ctx context.Context, id string) (Key, error)
	// List returns the active keys, newest first.
	List(ctx context.Context) ([]Key, error)
	// Verify checks that value authenticates; ErrUnauthorized if refused.
	Verify(ctx context.Context, value secret.Value) error
	// Revoke revokes a key. Revoking a revoked key succeeds.
	Revoke(ctx context.Context, id string) error
}

// Identifier is an issuer that can tell which key a value is without the
// value leaving rekey, e.g. by its public prefix (invariant I7).
type Identifier interface {
	// Identify returns the active key whose public part matches value, or
	// ErrNotFound if none or more than one does.
	Identify(ctx context.Context, value secret.Value) (Key, error)
}

// Matcher is an Identifier that can also tell whether a value could be a
// given key from the key's public part alone: a value whose public prefix
// several active keys share identifies none of them, yet it still matches
// the one a journal names. The engine asks it before revoking, so that a
// new key that happens to share the old one's prefix does not stop the
// revocation.
type Matcher interface {
	Matches(k Key, value secret.Value) bool
}

// UsageReporter is an issuer whose keys carry a last-used time, so the
// engine can wait for the old key to drain before revoking it.
type UsageReporter interface {
	// LastUsed returns when the key last authenticated; zero if never.
	LastUsed(ctx context.Context, id string) (time.Time, error)
}

// KeyLimiter is an issuer whose account holds at most MaxActiveKeys active
// keys at once. A rotation needs one free slot: the new key is minted while
// the old one is still active. An issuer without a known limit does not
// implement it.
type KeyLimiter interface {
	MaxActiveKeys() int
}

// SlotHolder is a KeyLimiter whose limit also counts keys List leaves out
// because they no longer authenticate: IAM counts inactive access keys
// against its quota of two. HeldKeys returns the ones a rotation started
// now would still find holding a slot, so that `rekey plan` does not
// promise a slot Create cannot have.
type SlotHolder interface {
	HeldKeys(ctx context.Context) ([]HeldKey, error)
}

// HeldKey is a key that holds a slot of the account's limit without
// authenticating.
type HeldKey struct {
	ID string
	// Until is when rekey frees the slot (IAM: delete_after after the
	// revocation); zero when only a person can.
	Until time.Time
}

// Account is an issuer that names the account it acts on, e.g.
// "apexverify https://api.apexverify.com". The journal binds a credential's
// history to it (invariant I8), so the name must stay the same, byte for
// byte, for the same account across versions of rekey: a changed name makes
// every existing history another setup's.
type Account interface {
	Account() string
}

// Fielded is an issuer that knows the shape of every value it creates.
// Fields returns the field names every value carries (secret.NewFields:
// an AWS access key ID and its secret, a Twilio SID and secret), sorted;
// or nil when every value is a single value (an http issuer without
// key.fields). rekey checks, before any rotation, that each sink of a
// credential maps exactly these fields, or holds a single value (key:)
// when there are none. An issuer that decides per value (exec) does not
// implement it.
type Fielded interface {
	Fields() []string
}

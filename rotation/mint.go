package rotation

// Mint and verify: the first two steps, and the clean-up of keys whose
// values were lost.

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rekeyhq/rekey/internal/retry"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// mint creates the new key. A rotation resumed in Planned may have created
// a key whose value was lost with the crash: those are revoked first (I2).
// A mint that fails changed nothing, so the rotation ends at once in
// RolledBack with nothing to undo; unless the issuer says a key may have
// been made after all (ErrMaybeCreated), which the rollback cleans up.
func (e *Engine) mint(ctx context.Context, c *Credential, rec *Record) error {
	// A freshly planned label cannot be on any key yet: only a resumed
	// rotation needs the clean-up. If it fails, a key may exist: roll back,
	// which retries the clean-up until it is done.
	if !rec.planned {
		if err := e.revokeOrphans(ctx, c, rec); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return e.fail(ctx, rec, fmt.Errorf("clean up before mint: %w", err))
		}
	}
	var key issuers.Key
	value, err := call(e, ctx, func(ctx context.Context) (secret.Value, error) {
		k, v, err := c.Issuer.Create(ctx, rec.Label)
		key = k
		return v, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, issuers.ErrMaybeCreated) {
			// A key may exist: the rollback revokes it, resumably (I2).
			return e.fail(ctx, rec, fmt.Errorf("mint: %w", err))
		}
		return e.abandon(ctx, rec, fmt.Errorf("mint: %w", err))
	}
	rec.NewKeyID, rec.NewValue = key.ID, value
	e.emit(rec, "", fmt.Sprintf("new key %s (%s)", key.ID, key.Label), nil)
	return e.advance(ctx, rec, Minted, nil)
}

// abandon ends a rotation that changed nothing: no key was minted, no sink
// written. There is nothing to roll back.
func (e *Engine) abandon(ctx context.Context, rec *Record, cause error) error {
	rec.Error = cause.Error() + " (nothing was changed)"
	rec.FinishedAt = e.Clock.Now().UTC()
	e.emit(rec, "", "failed before mint: nothing to undo", cause)
	return e.advance(ctx, rec, RolledBack, cause)
}

// revokeOrphans revokes every active key labelled like this rotation,
// except the current key: keys whose values were lost with a crash or a
// lost answer (I2).
func (e *Engine) revokeOrphans(ctx context.Context, c *Credential, rec *Record) error {
	keys, err := call(e, ctx, func(ctx context.Context) ([]issuers.Key, error) { return c.Issuer.Find(ctx, rec.Label) })
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Status != issuers.Active || k.ID == rec.OldKeyID || k.ID == rec.NewKeyID ||
			slices.ContainsFunc(rec.Left, func(l LeftKey) bool { return l.KeyID == k.ID }) {
			continue
		}
		e.emit(rec, "", "revoking orphan key "+k.ID+" left by an interrupted mint", nil)
		if err := callErr(e, ctx, func(ctx context.Context) error { return c.Issuer.Revoke(ctx, k.ID) }); err != nil {
			return err
		}
	}
	return nil
}

// failed ends a rotation that needs a person. The keys it leaves valid
// are named in the record; a key carrying its label that the record cannot
// name (a create that landed late) is revoked first, so no valid key goes
// unnamed (I2). If that check fails, the error says so.
func (e *Engine) failed(ctx context.Context, c *Credential, rec *Record, cause error) error {
	if err := e.revokeOrphans(ctx, c, rec); err != nil {
		if ctx.Err() != nil {
			return err
		}
		rec.Error += fmt.Sprintf("; other keys labelled %s may remain valid at the issuer (looking for them failed: %v)", rec.Label, err)
	}
	rec.FinishedAt = e.Clock.Now().UTC()
	return e.advance(ctx, rec, Failed, cause)
}

// verify waits until the new key authenticates at the issuer.
func (e *Engine) verify(ctx context.Context, c *Credential, rec *Record) error {
	_, err := retry.Policy{
		Initial: 500 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.5, For: c.VerifyTimeout, Clock: e.Clock,
		// A refusal is what a key not yet active gets: keep trying.
		Permanent: func(err error) bool { return !errors.Is(err, issuers.ErrUnauthorized) && isPermanent(err) },
	}.Do(ctx, func(ctx context.Context) error {
		return callErr(e, ctx, func(ctx context.Context) error { return c.Issuer.Verify(ctx, rec.NewValue) })
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return e.fail(ctx, rec, fmt.Errorf("verify new key: %w", err))
	}
	e.emit(rec, "", "new key authenticates", nil)
	return e.advance(ctx, rec, Verified, nil)
}

// newID returns a short random rotation ID: 8 lowercase base32 characters.
func newID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

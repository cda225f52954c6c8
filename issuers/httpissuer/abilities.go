package httpissuer

import (
	"context"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers"
)

// The optional abilities, each a thin adapter over *Issuer, combined by
// withAbilities into a value that has exactly those the config supports:
// rekey's engine finds abilities by type assertion, so an issuer must not
// claim one it cannot deliver.

type identifier struct{ i *Issuer }

// Identify returns the one active key whose public part (identify.field)
// matches value's, or an error wrapping issuers.ErrNotFound (permanent) if
// none or several do. The value itself is never sent.
func (a identifier) Identify(ctx context.Context, v secret.Value) (issuers.Key, error) {
	return a.i.identify(ctx, v)
}

type usage struct{ i *Issuer }

// LastUsed returns when the key last authenticated; zero if never.
func (a usage) LastUsed(ctx context.Context, id string) (time.Time, error) {
	return a.i.lastUsed(ctx, id)
}

type limiter struct{ n int }

// MaxActiveKeys is the account's limit of active keys (max_active_keys).
func (a limiter) MaxActiveKeys() int { return a.n }

func (i *Issuer) withAbilities() issuers.Issuer {
	id, lu, lim := identifier{i}, usage{i}, limiter{i.api.MaxActiveKeys}
	switch hasID, hasLU, hasLim := i.api.Identify.Match != "", i.api.Key.LastUsedAt != "", lim.n > 0; {
	case hasID && hasLU && hasLim:
		return struct {
			*Issuer
			identifier
			usage
			limiter
		}{i, id, lu, lim}
	case hasID && hasLU:
		return struct {
			*Issuer
			identifier
			usage
		}{i, id, lu}
	case hasID && hasLim:
		return struct {
			*Issuer
			identifier
			limiter
		}{i, id, lim}
	case hasLU && hasLim:
		return struct {
			*Issuer
			usage
			limiter
		}{i, lu, lim}
	case hasID:
		return struct {
			*Issuer
			identifier
		}{i, id}
	case hasLU:
		return struct {
			*Issuer
			usage
		}{i, lu}
	case hasLim:
		return struct {
			*Issuer
			limiter
		}{i, lim}
	}
	return i
}

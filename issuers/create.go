package issuers

import (
	"context"
	"errors"
	"fmt"
)

// AfterUnknownCreate ends a create attempt whose outcome is unknown (its
// answer was lost or unusable, so a key may exist whose value nobody
// holds). err is the attempt's error; revokeLabelled revokes every active
// key labelled label. It returns the attempt's final error and whether the
// attempts must stop:
//
//   - ctx ended: nothing is cleaned up and the error wraps ErrMaybeCreated.
//     The clean-up is the caller's, under its lock: a rekey whose rotation
//     lost its lock (paused past its lease) must not revoke by this label,
//     since whoever took the rotation over may since have minted under it.
//   - the clean-up failed: the error says so and wraps ErrMaybeCreated.
//   - otherwise err, and the caller may try again.
func AfterUnknownCreate(ctx context.Context, err error, label string, revokeLabelled func(context.Context, string) error) (_ error, stop bool) {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ErrMaybeCreated), true
	}
	if cerr := revokeLabelled(ctx, label); cerr != nil {
		return fmt.Errorf("%w; cleanup of keys labelled %s: %v (%w)", err, label, cerr, ErrMaybeCreated), true
	}
	return err, false
}

// MaybeCreated wraps a create's final error in ErrMaybeCreated when an
// attempt went unanswered (inFlight): the clean-up may have found nothing,
// but a request whose answer was lost can still land after it looked.
func MaybeCreated(err error, inFlight bool) error {
	if err != nil && inFlight && !errors.Is(err, ErrMaybeCreated) {
		return fmt.Errorf("%w (%w)", err, ErrMaybeCreated)
	}
	return err
}

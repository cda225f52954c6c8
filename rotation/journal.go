package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
)

// ErrSetupMismatch is returned when a credential's journal history was
// written for another setup (another issuer, or other sinks) than the
// credential now configured under the same name (I8). Acting on it could
// revoke a key of the other setup.
var ErrSetupMismatch = errors.New("rotation: the journal belongs to another setup")

// state is what the engine needs from a credential's history: the newest
// readable record, the unfinished rotation if there is one, the record that
// put the current key in place, and (for schedule) the records since the
// last success. It is read with Store.Recent, never the whole history.
type state struct {
	hist       []*Record // Recent, newest first, unreadable ones left out
	latest     *Record
	unfinished *Record
	current    *Record
	unreadable int // among the records Recent returned
}

func (e *Engine) state(ctx context.Context, name string) (state, error) {
	all, err := e.Store.Recent(ctx, name)
	if err != nil {
		return state{}, err
	}
	return e.stateOf(all), nil
}

// stateOf builds the state from a credential's Recent records.
func (e *Engine) stateOf(all []*Record) state {
	var st state
	for _, r := range all {
		if r.Unreadable != "" {
			st.unreadable++
			e.Log.Debug("journal record unreadable: skipped", append(logFields(r), zap.String("error", r.Unreadable))...)
			continue
		}
		st.hist = append(st.hist, r)
	}
	if len(st.hist) > 0 {
		st.latest = st.hist[0]
		if !st.latest.Phase.Terminal() {
			st.unfinished = st.latest
		}
	}
	for _, r := range st.hist {
		if r.holdsCurrent() {
			st.current = r
			break
		}
	}
	return st
}

// holdsCurrent reports whether r's new key became the credential's
// current key: it was rotated in, or kept in every sink by a failed
// rotation that could not safely roll back.
func (r *Record) holdsCurrent() bool {
	return r.Phase == Done || (r.Phase == Failed && r.Kept)
}

// checkSetup refuses to act on a history that belongs to another setup.
func checkSetup(c *Credential, st state) error {
	if c.Setup == "" || st.latest == nil || st.latest.Setup == "" || st.latest.Setup == c.Setup {
		return nil
	}
	return backoff.Permanent(fmt.Errorf("%w: credential %s was rotated against %q, but the config now has %q; "+
		"refusing to act on the other setup's keys (if the change is deliberate, run: rekey resolve %s --accept-setup)",
		ErrSetupMismatch, c.Name, st.latest.Setup, c.Setup, c.Name))
}

// Inspection is what `rekey plan` reports about a credential's keys,
// without changing anything.
type Inspection struct {
	// CurrentKeyID is the key rekey will replace (and revoke); empty when
	// it cannot be identified.
	CurrentKeyID string
	// Note says in plain words how the current key was found, or why it
	// cannot be and what will happen then.
	Note string
	// Problem is set when a rotation would be refused (key_id mismatch,
	// another setup's history).
	Problem error
	// Left lists keys left valid for a person by earlier rotations.
	Left []LeftKey
	// Unfinished is the rotation in flight, if any.
	Unfinished *Record
	// Unreadable counts journal records that failed to authenticate.
	Unreadable int
}

// Inspect reports which key a rotation of c would replace, and anything
// that would stop it, reading the journal and the sinks only.
func (e *Engine) Inspect(ctx context.Context, c *Credential) (Inspection, error) {
	st, err := e.state(ctx, c.Name)
	if err != nil {
		return Inspection{}, err
	}
	in := Inspection{Unfinished: st.unfinished, Unreadable: st.unreadable}
	if st.latest != nil {
		in.Left = st.latest.Left
	}
	if err := checkSetup(c, st); err != nil {
		in.Problem = err
		return in, nil
	}
	if st.current != nil {
		in.CurrentKeyID = st.current.NewKeyID
		in.Note = "current key " + st.current.NewKeyID + " was put in place by rotation " + st.current.ID
		return in, nil
	}
	rec := &Record{Credential: c.Name}
	note, err := e.adopt(ctx, c, rec)
	switch {
	case isPermanent(err):
		in.Problem = err
	case err != nil:
		return Inspection{}, err
	}
	in.CurrentKeyID, in.Note = rec.OldKeyID, note
	return in, nil
}

// Resolve records what a person did about a credential: each of keyIDs
// is removed from the keys left valid for a person, and with acceptSetup
// the journal's history is bound to the setup now configured. It returns
// the keys still left.
func (e *Engine) Resolve(ctx context.Context, c *Credential, keyIDs []string, acceptSetup bool) ([]LeftKey, error) {
	ctx, unlock, err := e.lock(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := e.state(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	rec := st.latest
	if rec == nil {
		return nil, fmt.Errorf("rotation: %s has no journal history to resolve", c.Name)
	}
	for _, id := range keyIDs {
		i := slices.IndexFunc(rec.Left, func(l LeftKey) bool { return l.KeyID == id })
		if i < 0 {
			return rec.Left, fmt.Errorf("rotation: %s: key %s is not among the keys left for a person", c.Name, id)
		}
		rec.Left = slices.Delete(rec.Left, i, i+1)
		e.warn(rec, "key "+id+" marked as handled by a person")
	}
	if acceptSetup && rec.Setup != c.Setup {
		e.warn(rec, fmt.Sprintf("journal history rebound from setup %q to %q", rec.Setup, c.Setup))
		rec.Setup = c.Setup
	}
	if err := e.Store.Save(context.WithoutCancel(ctx), rec); err != nil {
		return nil, fmt.Errorf("rotation: journal %s/%s: %w", rec.Credential, rec.ID, err)
	}
	return rec.Left, nil
}

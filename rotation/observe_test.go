package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rekeyhq/rekey/rotation"
)

// TestOnTransitionOnceAcrossCrash crashes the engine right before and
// right after each journal write of a successful and of a rolled-back
// rotation, resumes twice with a fresh engine and store (a new process),
// and checks that the observers of both processes together saw each
// journaled transition exactly once, in order, and nothing that was not
// journaled.
func TestOnTransitionOnceAcrossCrash(t *testing.T) {
	for _, scenario := range []struct {
		name    string
		failing bool
	}{
		{"success", false},
		{"rollback", true},
	} {
		// Count the journal writes of an uninterrupted run first.
		w := newWorld(t)
		w.seed()
		if scenario.failing {
			w.healthy = func() error { return errors.New("app unhealthy") }
		}
		saves := 0
		_, err := w.engine(rotation.Hooks{AfterSave: func(*rotation.Record) error { saves++; return nil }}).
			Rotate(context.Background(), w.cred, rotation.Options{Force: true})
		must(t, err)
		for i := 1; i <= saves; i++ {
			for _, when := range []string{"before", "after"} {
				t.Run(fmt.Sprintf("%s/%s-write-%d", scenario.name, when, i), func(t *testing.T) {
					w := newWorld(t)
					w.seed()
					if scenario.failing {
						w.healthy = func() error { return errors.New("app unhealthy") }
					}
					var seen []rotation.TransitionEvent
					observe := func(e *rotation.Engine) *rotation.Engine {
						e.OnTransition = append(e.OnTransition, func(ev rotation.TransitionEvent) { seen = append(seen, ev) })
						return e
					}
					n := 0
					hook := func(*rotation.Record) error {
						if n++; n == i {
							return errCrash
						}
						return nil
					}
					h := rotation.Hooks{AfterSave: hook}
					if when == "before" {
						h = rotation.Hooks{BeforeSave: hook}
					}
					_, err := observe(w.engine(h)).Rotate(context.Background(), w.cred, rotation.Options{Force: true})
					if !errors.Is(err, errCrash) {
						t.Fatalf("crash at write %d did not stop the engine: %v", i, err)
					}
					w.store.Close()
					w.store = w.openStore()
					for range 2 {
						_, err := observe(w.engine(rotation.Hooks{})).Resume(context.Background(), w.cred)
						must(t, err)
					}
					hist, err := w.store.History(context.Background(), "prod", 0)
					must(t, err)
					var want []rotation.Transition
					if len(hist) > 0 {
						if !hist[0].Phase.Terminal() {
							t.Fatalf("resumed rotation ended in %s", hist[0].Phase)
						}
						want = hist[0].Transitions
					}
					if len(seen) != len(want) {
						t.Fatalf("observed %d transitions %v, journaled %d %v", len(seen), seen, len(want), want)
					}
					for k, ev := range seen {
						if ev.Credential != "prod" || ev.RotationID != hist[0].ID || !ev.Transition.At.Equal(want[k].At) ||
							ev.Transition.Phase != want[k].Phase || ev.Transition.Error != want[k].Error {
							t.Errorf("transition %d: observed %+v, journaled %+v", k, ev, want[k])
						}
						if (k == 0) != (ev.Prev == nil) || k > 0 && ev.Prev.Phase != want[k-1].Phase {
							t.Errorf("transition %d (%s): Prev %+v, want %+v", k, ev.Transition.Phase, ev.Prev, want[max(k-1, 0)])
						}
					}
					if len(seen) == 0 {
						return // crashed before the first write: nothing happened
					}
					last := seen[len(seen)-1]
					if last.NewKeyID != hist[0].NewKeyID || last.OldKeyID != hist[0].OldKeyID || last.Error != hist[0].Error {
						t.Errorf("last event %+v does not match the record", last)
					}
				})
			}
		}
	}
}

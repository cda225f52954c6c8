package audit_test

import (
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/audit"
	"github.com/rekeyhq/rekey/rotation"
)

func TestEntryFor(t *testing.T) {
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	ev := func(p rotation.Phase, cause string) rotation.TransitionEvent {
		return rotation.TransitionEvent{Credential: "prod", RotationID: "r1", Transition: rotation.Transition{Phase: p, At: at, Error: cause},
			OldKeyID: "k1", NewKeyID: "k2", Sinks: []string{"file:/a"}, Error: "health: 503"}
	}
	for _, c := range []struct {
		in             rotation.TransitionEvent
		outcome, error string
	}{
		{ev(rotation.Minted, ""), audit.InProgress, ""},
		{ev(rotation.RollingBack, "health: 503"), audit.InProgress, "health: 503"},
		{ev(rotation.Done, ""), "success", "health: 503"},
		{ev(rotation.RolledBack, ""), "rollback", "health: 503"},
		{ev(rotation.Failed, "rollback incomplete"), "failure", "rollback incomplete"},
	} {
		e := audit.EntryFor(c.in)
		if e.Outcome != c.outcome || e.Error != c.error || e.Phase != string(c.in.Transition.Phase) || !e.Time.Equal(at) ||
			e.Credential != "prod" || e.RotationID != "r1" || e.OldKeyID != "k1" || e.NewKeyID != "k2" || len(e.Sinks) != 1 {
			t.Errorf("%s: %+v, want outcome %q error %q", c.in.Transition.Phase, e, c.outcome, c.error)
		}
	}
}

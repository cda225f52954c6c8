package notify_test

import (
	"slices"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/config"
	"github.com/rekeyhq/rekey/notify"
	"github.com/rekeyhq/rekey/rotation"
)

func TestEventFor(t *testing.T) {
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	tr := func(p, prev rotation.Phase) rotation.TransitionEvent {
		ev := rotation.TransitionEvent{Credential: "prod", RotationID: "r1", Transition: rotation.Transition{Phase: p, At: at},
			OldKeyID: "k1", NewKeyID: "k2", Error: "health: 503"}
		if prev != "" {
			ev.Prev = &rotation.Transition{Phase: prev, At: at.Add(-time.Minute)}
		}
		return ev
	}
	for _, c := range []struct {
		in    rotation.TransitionEvent
		kind  notify.Kind
		phase string
	}{
		{tr(rotation.Planned, ""), "", ""},
		{tr(rotation.Monitoring, rotation.Deployed), "", ""},
		{tr(rotation.RollingBack, rotation.Monitoring), "", ""},
		{tr(rotation.Done, rotation.Revoking), notify.Success, "done"},
		{tr(rotation.RolledBack, rotation.RollingBack), notify.Rollback, "rolling_back"},
		{tr(rotation.RolledBack, rotation.Planned), notify.Rollback, "planned"},
		{tr(rotation.Failed, rotation.Revoking), notify.Failure, "revoking"},
	} {
		ev, ok := notify.EventFor(c.in)
		if ok != (c.kind != "") || ev.Kind != c.kind || ev.Phase != c.phase {
			t.Errorf("%s after %v: %v %+v, want kind %q in phase %q", c.in.Transition.Phase, c.in.Prev, ok, ev, c.kind, c.phase)
			continue
		}
		if ok && (ev.Credential != "prod" || ev.RotationID != "r1" || !ev.Time.Equal(at) || ev.OldKeyID != "k1" || ev.NewKeyID != "k2" || ev.Error != "health: 503") {
			t.Errorf("%s: %+v", c.in.Transition.Phase, ev)
		}
	}
}

// TestKindsAreConfigEvents keeps the config's notify.on vocabulary and the
// kinds notifications carry one and the same.
func TestKindsAreConfigEvents(t *testing.T) {
	kinds := []string{string(notify.Success), string(notify.Rollback), string(notify.Failure), string(notify.Overdue)}
	if !slices.Equal(kinds, config.Events) {
		t.Errorf("notify kinds %v, config events %v", kinds, config.Events)
	}
}

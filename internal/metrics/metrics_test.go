package metrics_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/rekeyhq/rekey/internal/metrics"
	"github.com/rekeyhq/rekey/rotation"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// transition is the event of credential entering phase at at, ending
// prev (entered at prevAt); an empty prev ends nothing.
func transition(credential string, phase rotation.Phase, at time.Time, prev rotation.Phase, prevAt time.Time) rotation.TransitionEvent {
	ev := rotation.TransitionEvent{Credential: credential, Transition: rotation.Transition{Phase: phase, At: at}}
	if prev != "" {
		ev.Prev = &rotation.Transition{Phase: prev, At: prevAt}
	}
	return ev
}

func TestTransitionsAndSchedule(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
	m := metrics.New(clock)
	t0 := clock.Now()
	m.Transition(transition("prod", "planned", t0, "", time.Time{}))
	m.Transition(transition("prod", "monitoring", t0.Add(time.Second), "deployed", t0))
	body := scrape(t, m)
	for _, want := range []string{
		`rekey_rotation_in_flight{credential="prod"} 1`,
		`rekey_phase_duration_seconds_sum{phase="deployed"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	m.Transition(transition("prod", "done", t0.Add(11*time.Minute), "revoking", t0.Add(10*time.Minute)))
	m.Transition(transition("other", "rolled_back", t0, "rolling_back", t0))
	m.SetSchedule("other", metrics.Schedule{NextDue: t0.Add(time.Minute), Overdue: true})
	clock.Advance(time.Hour)
	body = scrape(t, m)
	for _, want := range []string{
		`rekey_rotations_total{credential="prod",outcome="success"} 1`,
		`rekey_rotations_total{credential="other",outcome="rollback"} 1`,
		`rekey_rotation_in_flight{credential="prod"} 0`,
		`rekey_key_age_seconds{credential="prod"} 2940`,
		`rekey_overdue{credential="other"} 1`,
		`rekey_next_due_timestamp_seconds{credential="other"} 1.79557566e+09`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %s in\n%s", want, grep(body, "rekey_"))
		}
	}
	if strings.Contains(body, `rekey_key_age_seconds{credential="other"}`) {
		t.Error("key age for a credential never rotated")
	}
	m.Forget("other")
	if body = scrape(t, m); strings.Contains(body, `credential="other"`) {
		t.Error("series of a forgotten credential remain")
	}
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A credential costs a fixed handful of series (its outcomes and schedule
// gauges), whatever it has done: a fleet of 10,000 must not hold, or make
// Prometheus scrape, a histogram per credential and phase.
func TestSeriesPerCredentialAreFew(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
	count := func(m *metrics.Metrics) int {
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fams {
			if strings.HasPrefix(f.GetName(), "rekey_") {
				n += len(f.GetMetric())
			}
		}
		return n
	}
	one, many := metrics.New(clock), metrics.New(clock)
	one.Init([]string{"c0"})
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	many.Init(names)
	t0 := clock.Now()
	for _, c := range names { // every credential rotates once
		many.Transition(transition(c, "monitoring", t0.Add(time.Second), "deployed", t0))
		many.Transition(transition(c, "done", t0.Add(2*time.Second), "revoking", t0))
	}
	if per := (count(many) - count(one)) / (len(names) - 1); per > 8 {
		t.Errorf("%d series per credential, want at most 8 (3 outcomes, 4 schedule gauges, key age)", per)
	}
}

// Package metrics holds rekey's Prometheus metrics in a registry of its
// own (never the global one). Labels carry credential names, phases and
// outcomes only: nothing secret.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rekeyhq/rekey/rotation"
)

// Metrics is the set of rekey metrics. It is safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	rotations   *prometheus.CounterVec
	phases      *prometheus.HistogramVec
	nextDue     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	overdue     *prometheus.GaugeVec
	inFlight    *prometheus.GaugeVec
	age         *keyAge
	buildInfo   *prometheus.GaugeVec
	leader      *prometheus.GaugeVec
}

// Phases are the phases whose time rekey_phase_duration_seconds observes:
// every phase a rotation can leave.
var Phases = []rotation.Phase{rotation.Planned, rotation.Minted, rotation.Verified, rotation.Deployed,
	rotation.Monitoring, rotation.Draining, rotation.Revoking, rotation.RollingBack}

// Outcomes are the values of rekey_rotations_total's outcome label.
var Outcomes = []string{rotation.OutcomeSuccess, rotation.OutcomeRollback, rotation.OutcomeFailure}

// New builds the metrics; key age is computed from clock at each scrape.
func New(clock clockwork.Clock) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rekey_rotations_total",
			Help: "Finished rotations by credential and outcome (success, rollback, failure).",
		}, []string{"credential", "outcome"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rekey_phase_duration_seconds",
			Help: "Time spent in each rotation phase across the fleet, observed when the phase ends.",
			// From sub-second steps to day-long drains and stages.
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"phase"}), // not by credential: 15 series per phase and credential would be most of a fleet's memory and scrape
		nextDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_next_due_timestamp_seconds",
			Help: "When the credential is next due for rotation (Unix time).",
		}, []string{"credential"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_last_success_timestamp_seconds",
			Help: "When the credential's last successful rotation finished (Unix time).",
		}, []string{"credential"}),
		overdue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_overdue",
			Help: "1 if the credential's key is older than rotate_every plus the grace period.",
		}, []string{"credential"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rekey_rotation_in_flight",
			Help: "1 while the credential has an unfinished rotation (including a staged one).",
		}, []string{"credential"}),
		age: &keyAge{clock: clock, since: map[string]time.Time{}, desc: prometheus.NewDesc(
			"rekey_key_age_seconds",
			"Age of the credential's current key, counted from the rotation that put it in place.",
			[]string{"credential"}, nil)},
	}
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rekey_build_info",
		Help: "Always 1; the labels name the running binary's version, commit and Go version.",
	}, []string{"version", "commit", "goversion"})
	m.leader = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rekey_leader",
		Help: "1 while this replica leads (schedules rotations), 0 while it stands by; replica is host:pid.",
	}, []string{"replica"})
	m.reg.MustRegister(m.rotations, m.phases, m.nextDue, m.lastSuccess, m.overdue, m.inFlight, m.age, m.buildInfo, m.leader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetBuildInfo sets rekey_build_info to 1 for the running binary (and
// drops any earlier labels).
func (m *Metrics) SetBuildInfo(version, commit, goVersion string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, commit, goVersion).Set(1)
}

// SetLeader sets rekey_leader{replica} to 1 while leading, else 0.
func (m *Metrics) SetLeader(replica string, leading bool) {
	v := 0.0
	if leading {
		v = 1
	}
	m.leader.WithLabelValues(replica).Set(v)
}

// Init creates every series of each credential at zero, as Prometheus
// exporters do, so that a query or alert sees a series from the first
// scrape rather than only after the first event: rotations_total for each
// outcome, the schedule gauges, and phase_duration_seconds for each phase
// (a last_success timestamp of 0 means never). Key age has no series until
// the age is known. Series already present keep their values.
func (m *Metrics) Init(credentials []string) {
	for _, p := range Phases {
		m.phases.WithLabelValues(string(p))
	}
	for _, c := range credentials {
		for _, o := range Outcomes {
			m.rotations.WithLabelValues(c, o)
		}
		m.nextDue.WithLabelValues(c)
		m.lastSuccess.WithLabelValues(c)
		m.overdue.WithLabelValues(c)
		m.inFlight.WithLabelValues(c)
	}
}

// Registry is the registry holding every rekey metric.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Transition records a durable phase change (an Engine.OnTransition
// observer): the time spent in the phase it ended, if known, and for a
// phase that ends the rotation (done, rolled_back, failed) the rotation's
// outcome; it sets the in-flight flag until then.
func (m *Metrics) Transition(ev rotation.TransitionEvent) {
	credential, at := ev.Credential, ev.Transition.At
	if p := ev.Prev; p != nil && !p.At.IsZero() && !at.Before(p.At) {
		m.phases.WithLabelValues(string(p.Phase)).Observe(at.Sub(p.At).Seconds())
	}
	outcome := ev.Transition.Phase.Outcome()
	if outcome == "" {
		m.inFlight.WithLabelValues(credential).Set(1)
		return
	}
	if ev.Transition.Phase == rotation.Done {
		m.lastSuccess.WithLabelValues(credential).Set(float64(at.UnixNano()) / 1e9)
		m.age.set(credential, at)
	}
	m.rotations.WithLabelValues(credential, outcome).Inc()
	m.inFlight.WithLabelValues(credential).Set(0)
}

// Schedule is what the scheduler knows of one credential.
type Schedule struct {
	NextDue time.Time
	// LastSuccess is when the current key was put in place; zero if rekey
	// never rotated the credential.
	LastSuccess time.Time
	Overdue     bool
	InFlight    bool
}

// SetSchedule records a credential's schedule.
func (m *Metrics) SetSchedule(credential string, s Schedule) {
	m.nextDue.WithLabelValues(credential).Set(float64(s.NextDue.UnixNano()) / 1e9)
	if !s.LastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(credential).Set(float64(s.LastSuccess.UnixNano()) / 1e9)
		m.age.set(credential, s.LastSuccess)
	}
	m.overdue.WithLabelValues(credential).Set(b2f(s.Overdue))
	m.inFlight.WithLabelValues(credential).Set(b2f(s.InFlight))
}

// Scheduled records what the scheduler reports of a credential (a
// Scheduler.OnSchedule observer).
func (m *Metrics) Scheduled(s rotation.Status) {
	m.SetSchedule(s.Credential, Schedule{NextDue: s.Due.At, LastSuccess: s.Due.LastRotated,
		Overdue: s.Overdue, InFlight: s.InFlight != "" || s.Running})
}

// Forget drops every series of a credential no longer in the config.
func (m *Metrics) Forget(credential string) {
	l := prometheus.Labels{"credential": credential}
	m.rotations.DeletePartialMatch(l)
	m.nextDue.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.overdue.DeletePartialMatch(l)
	m.inFlight.DeletePartialMatch(l)
	m.age.forget(credential)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// keyAge computes each key's age at scrape time, so the gauge never goes
// stale between rotations.
type keyAge struct {
	clock clockwork.Clock
	desc  *prometheus.Desc
	mu    sync.Mutex
	since map[string]time.Time
}

func (k *keyAge) set(credential string, t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t.After(k.since[credential]) {
		k.since[credential] = t
	}
}

func (k *keyAge) forget(credential string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.since, credential)
}

func (k *keyAge) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *keyAge) Collect(ch chan<- prometheus.Metric) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.clock.Now()
	for name, t := range k.since {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, max(now.Sub(t).Seconds(), 0), name)
	}
}

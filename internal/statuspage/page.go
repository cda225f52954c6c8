// Package statuspage renders the daemon's status page: every credential
// with its key age against rotate_every, next due time, last outcome, the
// rotation in flight (with its monitoring-window countdown), the keys left
// valid for a person, and a timeline of recent rotations.
//
// The page is server-rendered HTML with its style and a tiny countdown
// script embedded; it renders fully without JavaScript and reloads itself.
// It shows key IDs and labels, never a key value: the view it renders
// (View) has no field that could hold one.
//
// Each request reads the journal once (Store.RecentAll: every credential's
// records since its last success) and takes the due times the scheduler
// last computed (Page.Scheduled): its work does not grow with history.
package statuspage

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/rotation"
)

// DefaultRefresh is how often the page reloads itself.
const DefaultRefresh = 10 * time.Second

// Page is the status page's http.Handler and the state it keeps between
// requests: the credentials configured, the scheduler's latest status of
// each and the live progress of monitoring windows. Its methods are safe
// for concurrent use.
type Page struct {
	store   rotation.Store
	engine  *rotation.Engine
	refresh time.Duration

	mu      sync.Mutex
	replica func(context.Context) string
	creds   []*rotation.Credential
	sched   map[string]scheduled
	probes  map[string]Probe
}

type scheduled struct {
	status rotation.Status
	at     time.Time // when the scheduler computed it
}

// New returns a page over the journal store, showing creds. engine gives
// the clock and computes a credential's schedule when the scheduler's is
// older than the journal.
func New(store rotation.Store, engine *rotation.Engine, creds []*rotation.Credential) *Page {
	p := &Page{store: store, engine: engine, refresh: DefaultRefresh, sched: map[string]scheduled{}, probes: map[string]Probe{}}
	p.SetCredentials(creds)
	return p
}

// SetReplica makes the header say what f returns at each request (e.g.
// "this replica leads" or "standby (leader: host pid 42)").
func (p *Page) SetReplica(f func(context.Context) string) {
	p.mu.Lock()
	p.replica = f
	p.mu.Unlock()
}

// SetCredentials replaces the credentials shown, after a config reload;
// what the page kept about the others is dropped.
func (p *Page) SetCredentials(creds []*rotation.Credential) {
	creds = slices.Clone(creds)
	slices.SortFunc(creds, func(a, b *rotation.Credential) int { return strings.Compare(a.Name, b.Name) })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creds = creds
	keep := map[string]bool{}
	for _, c := range creds {
		keep[c.Name] = true
	}
	for n := range p.sched {
		if !keep[n] {
			delete(p.sched, n)
		}
	}
	for n := range p.probes {
		if !keep[n] {
			delete(p.probes, n)
		}
	}
}

// Scheduled records the scheduler's status of a credential; pass it as
// (or call it from) rotation.Scheduler.OnSchedule.
func (p *Page) Scheduled(s rotation.Status) {
	now := p.engine.Clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sched[s.Credential] = scheduled{status: s, at: now}
}

// Observe records the monitoring window's live progress from the engine's
// probe events; pass it as (or call it from) rotation.Engine.Observe.
func (p *Page) Observe(ev rotation.Event) {
	switch {
	case ev.Probe != nil:
		p.mu.Lock()
		p.probes[ev.Credential] = Probe{RotationID: ev.RotationID, End: ev.Time.Add(ev.Probe.Left), Passed: ev.Probe.Passed, Failed: ev.Probe.Failed}
		p.mu.Unlock()
	case ev.Transition:
		p.mu.Lock()
		if pr, ok := p.probes[ev.Credential]; ok && (pr.RotationID != ev.RotationID || ev.Phase != rotation.Monitoring) {
			delete(p.probes, ev.Credential)
		}
		p.mu.Unlock()
	}
}

// View reads the journal once and builds the page's view now.
func (p *Page) View(r *http.Request) (View, error) {
	recent, err := p.store.RecentAll(r.Context())
	if err != nil {
		return View{}, err
	}
	now := p.engine.Clock.Now()
	p.mu.Lock()
	creds := p.creds
	in := make([]Input, 0, len(creds))
	for _, c := range creds {
		hist := recent[c.Name]
		i := Input{Name: c.Name, RotateEvery: c.RotateEvery, MonitorWindow: c.Monitor.Window, Recent: hist}
		if s, ok := p.sched[c.Name]; ok && fresh(s, hist) {
			i.Due = s.status.Due
			i.Overdue = !s.status.OverdueAt.IsZero() && !now.Before(s.status.OverdueAt)
		} else {
			i.Due = p.engine.DueOf(c, hist)
			i.Overdue = !i.Due.LastRotated.IsZero() && !now.Before(i.Due.LastRotated.Add(c.RotateEvery+rotation.Grace(c.RotateEvery)))
		}
		if pr, ok := p.probes[c.Name]; ok {
			i.Probe = &pr
		}
		in = append(in, i)
	}
	replica := p.replica
	p.mu.Unlock()
	v := Build(now, p.refresh, in)
	if replica != nil {
		v.Replica = replica(r.Context())
	}
	return v, nil
}

// fresh reports whether the scheduler computed s after the newest journal
// write it can know of; a rotation run by another process (rekey rotate,
// a deploy hook) makes it stale until the scheduler looks again.
func fresh(s scheduled, hist []*rotation.Record) bool {
	for _, r := range hist {
		if r.UpdatedAt.After(s.at) {
			return false
		}
	}
	return true
}

// ServeHTTP renders the page. A journal that cannot be read is a 503
// naming the error (the store's errors hold no key value).
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	v, err := p.View(r)
	if err != nil {
		http.Error(w, "rekey status: read journal: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := Render(&buf, v); err != nil {
		http.Error(w, "rekey status: render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

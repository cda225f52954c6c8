package statuspage

import (
	"cmp"
	"slices"
	"time"

	"github.com/rekeyhq/rekey/rotation"
)

// View is everything the page shows, built by Build from rotation types.
// It holds key IDs and labels, never a key value.
type View struct {
	Now time.Time
	// Refresh is how often the page reloads itself.
	Refresh     time.Duration
	Credentials []Row
	// Timeline is the newest rotations across every credential, newest
	// first: each credential's last success and every rotation since.
	Timeline []Entry
	// Summary counts credentials by state, for the header.
	Summary Summary
	// Replica says whether this replica leads or stands by, for the
	// header; empty with a single daemon.
	Replica string
}

// Summary counts the page's credentials by what needs attention.
type Summary struct {
	Total, InFlight, Overdue, Failing, LeftKeys int
}

// Row is one credential.
type Row struct {
	Name string
	// KeyID and Label name the current key: the new key of the last
	// success (or of a failed rotation that kept its key); empty when
	// rekey never rotated the credential.
	KeyID, Label string
	RotatedAt    time.Time
	Age          time.Duration
	RotateEvery  time.Duration
	// AgePercent is Age as a share of RotateEvery, 0 to 100 (clamped);
	// AgeState is "ok" (under 75%), "warn" (75% to 100%), "due" (past
	// rotate_every), "overdue" (past rotate_every plus grace) or "unknown"
	// (no key rotated by rekey).
	AgePercent float64
	AgeState   string

	NextDue   time.Time
	Due       bool
	DueReason string
	Overdue   bool

	// LastOutcome is the phase the newest finished rotation ended in
	// (done, rolled_back, failed); LastError its error.
	LastOutcome string
	LastError   string
	LastAt      time.Time
	Failures    int

	InFlight *InFlight
	// Left lists keys rekey left valid for a person.
	Left []rotation.LeftKey
	// Unreadable counts journal records that fail to authenticate.
	Unreadable int
}

// InFlight is a rotation not yet finished.
type InFlight struct {
	RotationID string
	Phase      rotation.Phase
	Staged     bool
	// Since is when the rotation entered Phase.
	Since time.Time
	// Monitor is set in the monitoring phase.
	Monitor *Countdown
}

// Countdown is the monitoring window of a rotation in flight.
type Countdown struct {
	Window time.Duration
	// End is when the window ends; Left is End less the page's time, at
	// least 0.
	End  time.Time
	Left time.Duration
	// Elapsed is the share of the window gone, 0 to 100.
	Elapsed float64
	// Live is set when End comes from the engine's probes in this daemon;
	// otherwise it is estimated from the journal (the window restarts when
	// a rotation is resumed, so the estimate may end early).
	Live           bool
	Passed, Failed int
}

// Entry is one rotation in the timeline.
type Entry struct {
	Credential string
	RotationID string
	Phase      rotation.Phase
	// Outcome is rotation.Phase.Outcome: success, rollback, failure, or
	// empty while in flight.
	Outcome    string
	Label      string
	OldKeyID   string
	NewKeyID   string
	StartedAt  time.Time
	FinishedAt time.Time
	Duration   time.Duration
	Error      string
	Steps      []rotation.Transition
	// Unreadable is set on a record that fails to authenticate; only
	// Credential and RotationID are known then.
	Unreadable string
}

// Input is what Build needs of one credential.
type Input struct {
	Name          string
	RotateEvery   time.Duration
	MonitorWindow time.Duration
	// Recent is the credential's records as Store.Recent returns them,
	// newest first.
	Recent []*rotation.Record
	// Due is the credential's schedule.
	Due rotation.Due
	// Overdue is set once the key is past rotate_every plus grace (the
	// scheduler's rotation.Status.Overdue).
	Overdue bool
	// Probe is the newest live monitoring progress of the rotation in
	// flight, if the engine reported any.
	Probe *Probe
}

// Probe is live monitoring progress, from rotation.Event.Probe.
type Probe struct {
	RotationID     string
	End            time.Time
	Passed, Failed int
}

// TimelineLimit is how many rotations the timeline shows.
const TimelineLimit = 20

// Build makes the page's view at now from each credential's input. Its
// work is linear in the records given: it never reads a journal.
func Build(now time.Time, refresh time.Duration, in []Input) View {
	v := View{Now: now, Refresh: refresh}
	var all []Entry
	for _, c := range in {
		r := row(now, c)
		v.Credentials = append(v.Credentials, r)
		v.Summary.Total++
		if r.InFlight != nil {
			v.Summary.InFlight++
		}
		if r.Overdue {
			v.Summary.Overdue++
		}
		if r.LastOutcome != "" && r.LastOutcome != string(rotation.Done) {
			v.Summary.Failing++
		}
		v.Summary.LeftKeys += len(r.Left)
		for _, rec := range c.Recent {
			all = append(all, entry(rec))
		}
	}
	slices.SortStableFunc(all, func(a, b Entry) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(b.RotationID, a.RotationID), cmp.Compare(a.Credential, b.Credential))
	})
	if len(all) > TimelineLimit {
		all = all[:TimelineLimit]
	}
	v.Timeline = all
	return v
}

func row(now time.Time, c Input) Row {
	d := c.Due
	r := Row{Name: c.Name, RotateEvery: c.RotateEvery, NextDue: d.At, Due: d.Due || !d.At.After(now), DueReason: d.Reason,
		Failures: d.Failures, Overdue: c.Overdue, AgeState: "unknown"}
	first := true
	for _, rec := range c.Recent { // newest first
		if rec.Unreadable != "" {
			r.Unreadable++
			continue
		}
		if first {
			first = false
			r.Left = rec.Left
			if !rec.Phase.Terminal() {
				r.InFlight = inFlight(now, rec, c)
			}
		}
		if rec.Phase.Terminal() && r.LastOutcome == "" {
			r.LastOutcome, r.LastError, r.LastAt = string(rec.Phase), rec.Error, rec.FinishedAt
		}
		if (rec.Phase == rotation.Done || rec.Phase == rotation.Failed && rec.Kept) && r.KeyID == "" {
			r.KeyID, r.Label, r.RotatedAt = rec.NewKeyID, rec.Label, rec.FinishedAt
		}
	}
	if !r.RotatedAt.IsZero() {
		r.Age = max(now.Sub(r.RotatedAt), 0)
		r.AgeState = "ok"
		if c.RotateEvery > 0 {
			share := float64(r.Age) / float64(c.RotateEvery)
			r.AgePercent = min(share*100, 100)
			switch {
			case r.Overdue:
				r.AgeState = "overdue"
			case share >= 1:
				r.AgeState = "due"
			case share >= 0.75:
				r.AgeState = "warn"
			}
		}
	}
	return r
}

func inFlight(now time.Time, rec *rotation.Record, c Input) *InFlight {
	f := &InFlight{RotationID: rec.ID, Phase: rec.Phase, Staged: rec.Staged, Since: rec.UpdatedAt}
	if n := len(rec.Transitions); n > 0 {
		f.Since = rec.Transitions[n-1].At
	}
	if rec.Phase != rotation.Monitoring {
		return f
	}
	cd := &Countdown{Window: c.MonitorWindow, End: f.Since.Add(c.MonitorWindow)}
	if p := c.Probe; p != nil && p.RotationID == rec.ID {
		cd.End, cd.Live, cd.Passed, cd.Failed = p.End, true, p.Passed, p.Failed
	}
	cd.Left = max(cd.End.Sub(now), 0)
	if cd.Window > 0 {
		cd.Elapsed = min(max(100*float64(cd.Window-cd.Left)/float64(cd.Window), 0), 100)
	}
	f.Monitor = cd
	return f
}

func entry(rec *rotation.Record) Entry {
	e := Entry{Credential: rec.Credential, RotationID: rec.ID, Unreadable: rec.Unreadable}
	if rec.Unreadable != "" {
		return e
	}
	e.Phase, e.Outcome, e.Label = rec.Phase, rec.Phase.Outcome(), rec.Label
	e.OldKeyID, e.NewKeyID, e.Error = rec.OldKeyID, rec.NewKeyID, rec.Error
	e.StartedAt, e.FinishedAt, e.Steps = rec.StartedAt, rec.FinishedAt, rec.Transitions
	if !rec.FinishedAt.IsZero() {
		e.Duration = rec.FinishedAt.Sub(rec.StartedAt)
	}
	return e
}

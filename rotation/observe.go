package rotation

// TransitionEvent is one durable phase change of a rotation, as passed to
// the Engine's OnTransition observers. It carries key IDs and sink names,
// never a key value.
type TransitionEvent struct {
	Credential string
	RotationID string
	// Transition is the phase entered, when, and the error that caused it.
	Transition Transition
	// Prev is the transition this one ended; nil for Planned.
	Prev     *Transition
	OldKeyID string
	NewKeyID string
	// Sinks names the sinks written so far, in write order.
	Sinks []string
	// Error is the rotation's recorded error (Record.Error).
	Error string
}

// transitioned passes every transition of rec that has just become
// durable to the OnTransition observers, in order, and marks it reported.
// It is called by save right after the journal write lands: a transition
// loaded from the journal was reported by the process that wrote it, so a
// resumed rotation never reports it again, and a transition whose write
// failed is not reported (a later write that lands reports it then). A
// crash between the write and this call loses that one report: each report
// stands for a durable transition, at most once.
func (e *Engine) transitioned(rec *Record) {
	n := rec.unreported
	rec.unreported = 0
	if len(e.OnTransition) == 0 {
		return
	}
	var sinks []string
	for _, r := range rec.Receipts {
		sinks = append(sinks, r.Sink)
	}
	for i := len(rec.Transitions) - n; i < len(rec.Transitions); i++ {
		ev := TransitionEvent{Credential: rec.Credential, RotationID: rec.ID, Transition: rec.Transitions[i],
			OldKeyID: rec.OldKeyID, NewKeyID: rec.NewKeyID, Sinks: sinks, Error: rec.Error}
		if i > 0 {
			prev := rec.Transitions[i-1]
			ev.Prev = &prev
		}
		for _, f := range e.OnTransition {
			f(ev)
		}
	}
}

package e2etest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

// HistoryEntry is one rotation as `rekey history NAME -o json` prints it.
type HistoryEntry struct {
	ID          string       `json:"rotation_id"`
	Phase       string       `json:"phase"`
	OldKeyID    string       `json:"old_key_id"`
	NewKeyID    string       `json:"new_key_id"`
	Error       string       `json:"error"`
	StartedAt   time.Time    `json:"started_at"`
	Transitions []Transition `json:"transitions"`
}

// Transition is one phase change of a HistoryEntry.
type Transition struct {
	Phase string    `json:"phase"`
	At    time.Time `json:"at"`
}

// At is when h last entered phase, zero if it never did.
func (h HistoryEntry) At(phase string) time.Time {
	var at time.Time
	for _, tr := range h.Transitions {
		if tr.Phase == phase {
			at = tr.At
		}
	}
	return at
}

// ParseHistory decodes the output of `rekey history NAME -o json`.
func ParseHistory(out []byte) ([]HistoryEntry, error) {
	var h []HistoryEntry
	err := json.Unmarshal(out, &h)
	return h, err
}

// RevokedEarly reports whether done rotation h broke I1 (never early): its
// old key, whose record is old, must have been revoked only after the new
// key was monitored for the whole window and the rotation journaled
// revoking.
func (h HistoryEntry) RevokedEarly(old apexsim.KeyRecord, window time.Duration) bool {
	return h.RevokedEarlyAt(old.Revoked, window)
}

// RevokedEarlyAt is RevokedEarly for any issuer: revoked is when the
// issuer revoked (or deleted) the old key, zero if it did not.
func (h HistoryEntry) RevokedEarlyAt(revoked time.Time, window time.Duration) bool {
	monitoring, revoking := h.At("monitoring"), h.At("revoking")
	return monitoring.IsZero() || revoked.IsZero() ||
		revoking.Sub(monitoring) < window || revoked.Sub(monitoring) < window || revoked.Before(revoking)
}

// NoRefusals checks I3 (never dark) for clients of sim: no call with a
// key was refused, except inside a new key's activation delay.
func NoRefusals(t testing.TB, sim *apexsim.Sim) {
	t.Helper()
	for _, r := range sim.Refusals() {
		if r.Reason != apexsim.RefusedNotYetActive {
			t.Errorf("I3: a client was refused: %+v", r)
		}
	}
}

// OnlyActive checks I2 (never lost): the key whose value the sinks hold is
// the only active key at sim.
func OnlyActive(t testing.TB, sim *apexsim.Sim, inSinks secret.Value) {
	t.Helper()
	active := 0
	for _, k := range sim.Keys() {
		if k.Status != "active" {
			continue
		}
		active++
		if k.Prefix != apexverify.Prefix(inSinks) {
			t.Errorf("I2: orphan key %s (%s) is active but not the one in the sinks", k.ID, k.Label)
		}
	}
	if active != 1 {
		t.Errorf("I2: %d active keys, want 1", active)
	}
}

// Invariants checks I1–I3 for one credential whose rotations have all
// ended: NoRefusals, OnlyActive, every rotation in hist ended done or
// rolled_back, and no done rotation revoked its old key early for a
// monitoring window of window.
func Invariants(t testing.TB, sim *apexsim.Sim, inSinks secret.Value, hist []HistoryEntry, window time.Duration) {
	t.Helper()
	NoRefusals(t, sim)
	OnlyActive(t, sim, inSinks)
	keys := map[string]apexsim.KeyRecord{}
	for _, k := range sim.Keys() {
		keys[k.ID] = k
	}
	for _, h := range hist {
		if h.Phase != "done" && h.Phase != "rolled_back" {
			t.Errorf("I2: rotation %s ended %s", h.ID, h.Phase)
		}
		if h.Phase != "done" || h.OldKeyID == "" {
			continue
		}
		if old := keys[h.OldKeyID]; h.RevokedEarly(old, window) {
			t.Errorf("I1: rotation %s: monitoring %v, revoking %v, old key revoked %v (window %v)", h.ID, h.At("monitoring"), h.At("revoking"), old.Revoked, window)
		}
	}
}

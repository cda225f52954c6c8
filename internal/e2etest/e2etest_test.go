package e2etest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/issuers/apexverify/apexsim"
)

func TestValuesLeaks(t *testing.T) {
	var s Values
	a, b := secret.New("avk_aaaaaaaaaaaaaaaaaaaa"), secret.New("avk_bbbbbbbbbbbbbbbbbbbb")
	s.Add(a, b, a, secret.Value{})
	if s.Len() != 2 {
		t.Fatalf("Len %d, want 2 (duplicates and the empty value skipped)", s.Len())
	}
	if got := s.Leaks("log line " + b.Reveal() + " end"); len(got) != 1 || !got[0].Equal(b) {
		t.Errorf("Leaks found %d values, want b only", len(got))
	}
	if got := s.Leaks("nothing here"); len(got) != 0 {
		t.Errorf("Leaks found %d values in clean text", len(got))
	}
}

func TestSyncBufferConcurrent(t *testing.T) {
	var buf SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&buf, "%d\n", i)
				_ = buf.String()
			}
		}()
	}
	wg.Wait()
	if buf.Len() != 8*100*2 {
		t.Errorf("Len %d, want %d", buf.Len(), 8*100*2)
	}
}

func TestRevokedEarly(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h, err := ParseHistory([]byte(fmt.Sprintf(`[{"rotation_id":"r1","phase":"done","old_key_id":"k1","transitions":[
		{"phase":"monitoring","at":%q},{"phase":"revoking","at":%q},{"phase":"done","at":%q}]}]`,
		t0.Format(time.RFC3339Nano), t0.Add(2*time.Second).Format(time.RFC3339Nano), t0.Add(3*time.Second).Format(time.RFC3339Nano))))
	if err != nil || len(h) != 1 || !h[0].At("revoking").Equal(t0.Add(2*time.Second)) {
		t.Fatalf("ParseHistory: %v %+v", err, h)
	}
	for _, c := range []struct {
		name    string
		revoked time.Time
		window  time.Duration
		early   bool
	}{
		{"after revoking, whole window", t0.Add(2500 * time.Millisecond), 2 * time.Second, false},
		{"before revoking was journaled", t0.Add(1900 * time.Millisecond), time.Second, true},
		{"window longer than monitored", t0.Add(2500 * time.Millisecond), 3 * time.Second, true},
		{"never revoked", time.Time{}, time.Second, true},
	} {
		if got := h[0].RevokedEarly(apexsim.KeyRecord{ID: "k1", Revoked: c.revoked}, c.window); got != c.early {
			t.Errorf("%s: RevokedEarly %v, want %v", c.name, got, c.early)
		}
	}
	if !(HistoryEntry{}).RevokedEarly(apexsim.KeyRecord{Revoked: t0}, time.Second) {
		t.Error("a rotation that never monitored is not early")
	}
}

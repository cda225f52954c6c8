package journalcrypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func testSealer(t *testing.T) *Sealer {
	t.Helper()
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The record MAC is on disk in every journal: this pins its encoding (the
// value is what rotation/sqlite computed before the code moved here).
func TestMACKnownAnswer(t *testing.T) {
	s := testSealer(t)
	r := &Row{Credential: "c", ID: "r-1", Phase: "done", Started: int64(1), Updated: nil, Finished: int64(-1),
		Record: `{"label":"x"}`, OldEnc: []byte{1, 2}, NewEnc: nil}
	mac, err := s.MAC(r)
	if err != nil {
		t.Fatal(err)
	}
	const want = "98179ce8d6644d96d1df03db8746323f897093cd11bc37a150ff1567a1c7553e"
	if got := hex.EncodeToString(mac); got != want {
		t.Errorf("MAC = %s, want %s: the encoding changed, which makes every stored record unreadable", got, want)
	}
	if !s.Verify(r, mac) {
		t.Error("Verify rejects its own MAC")
	}
	r.Phase = "failed"
	if s.Verify(r, mac) {
		t.Error("Verify accepts an edited row")
	}
	if _, err := s.MAC(&Row{Started: "yesterday"}); err == nil {
		t.Error("MAC of a text time succeeded")
	}
}

func TestSealBindsField(t *testing.T) {
	s := testSealer(t)
	blob, err := s.Seal([]byte("value"), ValueAAD("c", "1", "old"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(blob, ValueAAD("c", "1", "old")); err != nil || string(got) != "value" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(blob, ValueAAD("c", "1", "new")); !errors.Is(err, ErrOpen) {
		t.Errorf("Open under another field: %v, want ErrOpen", err)
	}
	if _, err := s.Open(blob[:5], nil); err == nil {
		t.Error("Open of a truncated blob succeeded")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}

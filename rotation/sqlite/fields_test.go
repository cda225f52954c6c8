package sqlite

import (
	"bytes"
	"context"
	"testing"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation/storetest"
)

// TestPairEncryptedWhole: a multi-field value is journaled as one
// encrypted value: it comes back with every field, and no field is in any
// of the database's files in plain text.
func TestPairEncryptedWhole(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const oldID, oldSec, newID, newSec = "AKIAOLDPAIRID0001", "old-pair-secret-Zq81", "AKIANEWPAIRID0002", "new-pair-secret-Wx52"
	r := storetest.FullRecord()
	r.OldValue = secret.NewFields(map[string]string{"id": oldID, "secret": oldSec})
	r.NewValue = secret.NewFields(map[string]string{"id": newID, "secret": newSec})
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.Credential, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OldValue.Equal(r.OldValue) || !got.NewValue.Equal(r.NewValue) || got.NewValue.Field("secret").Reveal() != newSec {
		t.Errorf("pair did not round-trip: fields %v / %v", got.OldValue.FieldNames(), got.NewValue.FieldNames())
	}
	for name, b := range dbFiles(t, path) {
		for _, v := range []string{oldID, oldSec, newID, newSec} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a field of a pair in plain text", name)
			}
		}
	}
}

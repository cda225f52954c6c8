package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
)

// Test values: distinctive so a grep of the database files cannot match by
// accident.
const (
	oldSecret = "av_live_OLDSECRETVALUE_3f9a1c2e7b"
	newSecret = "av_live_NEWSECRETVALUE_8d4e6b0a1f"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, testKey(1))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func statePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state", "state.db")
}

// fullRecord sets every field of a Record.
func fullRecord() *rotation.Record {
	t0 := time.Date(2026, 3, 2, 3, 0, 0, 123456789, time.UTC)
	return &rotation.Record{
		Credential: "production-api",
		ID:         "r-01",
		Phase:      rotation.Monitoring,
		Label:      "production-api-2026-03-02-r01",
		OldKeyID:   "key_old",
		OldValue:   secret.New(oldSecret),
		NewKeyID:   "key_new",
		NewValue:   secret.New(newSecret),
		Receipts: []sinks.Receipt{
			{Sink: "file:/etc/crm/app.env#KEY", RotationID: "r-01", Previous: "sha256:abc", At: t0.Add(time.Second)},
			{Sink: "aws-secretsmanager:prod/crm", RotationID: "r-01", Version: "v2", Previous: "v1", Created: true, At: t0.Add(2 * time.Second)},
		},
		Staged:  true,
		Forced:  true,
		Setup:   "issuer=apexverify-prod;sinks=file:/etc/crm/app.env#KEY,aws-secretsmanager:prod/crm",
		Kept:    true,
		Reverts: 2,
		Left: []rotation.LeftKey{
			{KeyID: "key_older", RotationID: "r-00", Reason: "a sink still held it", HeldBy: []string{"file:/etc/crm/app.env#KEY"}, At: t0.Add(-time.Hour)},
			{KeyID: "key_oldest", RotationID: "r-000", Reason: "rollback restored a dead key", At: t0.Add(-2 * time.Hour)},
		},
		Untouched: []string{"vault-kv:secret/crm"},
		Error:     "health check https://crm/healthz: 503",
		Transitions: []rotation.Transition{
			{Phase: rotation.Planned, At: t0},
			{Phase: rotation.Minted, At: t0.Add(time.Second)},
			{Phase: rotation.Verified, At: t0.Add(2 * time.Second), Error: "retry 1: 401"},
		},
		StartedAt:  t0,
		UpdatedAt:  t0.Add(3 * time.Second),
		FinishedAt: t0.Add(4 * time.Second),
	}
}

func TestRoundTripEveryField(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, statePath(t))
	want := fullRecord()
	if err := s.Save(ctx, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Get(ctx, want.Credential, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.OldValue.Equal(want.OldValue) || !got.NewValue.Equal(want.NewValue) {
		t.Errorf("values did not round-trip (fingerprints old %s/%s new %s/%s)",
			got.OldValue.Fingerprint(), want.OldValue.Fingerprint(), got.NewValue.Fingerprint(), want.NewValue.Fingerprint())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Upsert replaces every field, including clearing ones.
	want.Phase = rotation.Done
	want.Receipts = nil
	want.Error = ""
	want.Staged = false
	want.OldValue = secret.Value{}
	if err := s.Save(ctx, want); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	got, err = s.Get(ctx, want.Credential, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after upsert:\n got %+v\nwant %+v", got, want)
	}
}

func TestTimesInOtherZonesAndZeroTimes(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, statePath(t))
	loc := time.FixedZone("X", 5*3600+1800)
	started := time.Now().In(loc) // with a monotonic reading
	r := &rotation.Record{Credential: "c", ID: "1", Phase: rotation.Planned, StartedAt: started,
		Transitions: []rotation.Transition{{Phase: rotation.Planned, At: started}}}
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(started) || !got.Transitions[0].At.Equal(started) {
		t.Errorf("times: got %v / %v, want %v", got.StartedAt, got.Transitions[0].At, started)
	}
	if !got.UpdatedAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("zero times came back as %v, %v", got.UpdatedAt, got.FinishedAt)
	}
	if !got.OldValue.IsZero() || !got.NewValue.IsZero() {
		t.Error("empty values came back non-empty")
	}
}

func TestGetNotFound(t *testing.T) {
	s := openTest(t, statePath(t))
	_, err := s.Get(context.Background(), "nope", "r-1")
	if !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
}

func TestSaveRejectsIncompleteRecord(t *testing.T) {
	s := openTest(t, statePath(t))
	for _, r := range []*rotation.Record{nil, {ID: "1"}, {Credential: "c"}} {
		if err := s.Save(context.Background(), r); err == nil {
			t.Errorf("Save(%+v) succeeded", r)
		}
	}
}

// dbFiles returns the contents of the database and every file SQLite keeps
// beside it (-wal, -shm, -journal).
func dbFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	matches, err := filepath.Glob(path + "*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(m)] = b
	}
	return out
}

func TestValuesEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	r := fullRecord()
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}

	check := func(stage string, wantWAL bool) {
		files := dbFiles(t, path)
		if wantWAL && len(files[filepath.Base(path)+"-wal"]) == 0 {
			t.Fatalf("%s: no WAL content; files: %v", stage, keys(files))
		}
		labelSeen := false
		for name, b := range files {
			for _, v := range []string{oldSecret, newSecret} {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("%s: %s contains a key value in plain text", stage, name)
				}
			}
			labelSeen = labelSeen || bytes.Contains(b, []byte(r.Label))
		}
		// The plain fields are there in clear, so the grep above can find
		// text in these files: the absence of the values means something.
		if !labelSeen {
			t.Errorf("%s: label not found in %v; the grep proves nothing", stage, keys(files))
		}
	}
	check("while open", true)

	// The raw BLOBs are nonce || ciphertext, not the value.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var oldEnc, newEnc []byte
	if err := raw.QueryRow("SELECT old_value_enc, new_value_enc FROM rotations").Scan(&oldEnc, &newEnc); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if len(oldEnc) != 12+len(oldSecret)+16 || bytes.Contains(oldEnc, []byte(oldSecret)) || bytes.Contains(newEnc, []byte(newSecret)) {
		t.Errorf("blob lengths %d/%d or contents unexpected", len(oldEnc), len(newEnc))
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close", false)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestWrongKeyFailsAtOpen(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, testKey(2))
	if err == nil || !strings.Contains(err.Error(), "wrong encryption key") {
		t.Fatalf("Open with wrong key: %v", err)
	}
	// The right key still works.
	s, err = Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatalf("Open with right key: %v", err)
	}
	s.Close()
}

func TestOpenRejectsBadKeyLength(t *testing.T) {
	if _, err := Open(context.Background(), statePath(t), make([]byte, 16)); err == nil {
		t.Fatal("Open with a 16-byte key succeeded")
	}
}

// rawExec changes the database behind the store's back.
func rawExec(t *testing.T, path, query string, args ...any) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	res, err := raw.Exec(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 && strings.HasPrefix(query, "UPDATE") {
		t.Fatalf("%s: no rows changed", query)
	}
}

// tamper rewrites one value column of one row behind the store's back.
func tamper(t *testing.T, path, credential, id, column string, f func(b []byte) []byte) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var b []byte
	q := fmt.Sprintf("SELECT %s FROM rotations WHERE credential = ? AND id = ?", column)
	if err := raw.QueryRow(q, credential, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	q = fmt.Sprintf("UPDATE rotations SET %s = ? WHERE credential = ? AND id = ?", column)
	if _, err := raw.Exec(q, f(b), credential, id); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedOrMovedValuesFail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		mutate    func(t *testing.T, path string)
		wantField string
	}{
		{"flipped byte in new value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "new_value_enc", func(b []byte) []byte { b[20] ^= 1; return b })
		}, "new value"},
		{"flipped nonce byte in old value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "old_value_enc", func(b []byte) []byte { b[0] ^= 0x80; return b })
		}, "old value"},
		{"truncated old value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "old_value_enc", func(b []byte) []byte { return b[:10] })
		}, "old value"},
		{"old and new swapped", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET old_value_enc = new_value_enc, new_value_enc = old_value_enc WHERE id = 'r-01'`)
		}, "old value"},
		{"value moved from another rotation", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET new_value_enc = (SELECT new_value_enc FROM rotations WHERE id = 'r-02') WHERE id = 'r-01'`)
		}, "new value"},
		{"value moved from another credential", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET old_value_enc = (SELECT old_value_enc FROM rotations WHERE credential = 'other') WHERE id = 'r-01'`)
		}, "old value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			s := openTest(t, path)
			r1 := fullRecord()
			r2 := fullRecord()
			r2.ID = "r-02"
			r3 := fullRecord()
			r3.Credential = "other"
			r3.ID = "r-03"
			for _, r := range []*rotation.Record{r1, r2, r3} {
				if err := s.Save(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			tc.mutate(t, path)

			_, err := s.Get(ctx, "production-api", "r-01")
			want := "sqlite: decrypt rotation r-01 of production-api: " + tc.wantField
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Get after tampering: %v, want %q", err, want)
			}
			assertNoValue(t, err.Error())
			// Listing fails the same way rather than skipping the row.
			if _, err := s.History(ctx, "production-api", 0); err == nil {
				t.Error("History after tampering succeeded")
			}
			// Untouched rows still read.
			if _, err := s.Get(ctx, "production-api", "r-02"); err != nil {
				t.Errorf("Get untouched row: %v", err)
			}
		})
	}
}

func assertNoValue(t *testing.T, s string) {
	t.Helper()
	for _, v := range []string{oldSecret, newSecret} {
		if strings.Contains(s, v) {
			t.Errorf("output contains a key value")
		}
	}
}

func TestFileModes(t *testing.T) {
	ctx := context.Background()
	path := statePath(t) // its directory does not exist yet
	s := openTest(t, path)
	if err := s.Save(ctx, fullRecord()); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, "production-api")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Dir(path), 0o700 | os.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
		{path + ".locks", 0o700 | os.ModeDir},
		{filepath.Join(path+".locks", "production-api.lock"), 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.Mode() != tc.want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(tc.path), fi.Mode(), tc.want)
		}
	}
}

func TestOpenRefusesReadableStateFile(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	s.Close()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, path, testKey(1))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Open of a %04o file: %v, want a refusal", mode, err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatalf("Open after chmod 600: %v", err)
	}
	s2.Close()
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	want := fullRecord()
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	got, err := s.Get(ctx, want.Credential, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", got, want)
	}
}

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	s.Close()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if v != SchemaVersion {
		t.Fatalf("user_version %d, want %d", v, SchemaVersion)
	}

	rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1))
	_, err = Open(ctx, path, testKey(1))
	if err == nil || !strings.Contains(err.Error(), "newer than this rekey supports") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenRejectsNonDatabase(t *testing.T) {
	path := statePath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path, testKey(1)); err == nil {
		t.Fatal("Open of a non-database succeeded")
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "we?ird #dir%20", "state&x=1.db")
	s := openTest(t, path)
	if err := s.Save(ctx, fullRecord()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}

func ids(rs []*rotation.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Credential+"/"+r.ID)
	}
	return out
}

func TestUnfinishedAndHistoryOrder(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, statePath(t))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		cred, id string
		phase    rotation.Phase
		startMin int
	}{
		{"a", "3", rotation.Monitoring, 30},
		{"a", "1", rotation.Done, 10},
		{"b", "1", rotation.Planned, 5},
		{"a", "2", rotation.RolledBack, 20},
		{"b", "2", rotation.Failed, 25},
		{"c", "1", rotation.RollingBack, 1},
		{"a", "5", rotation.Draining, 40},
		{"a", "4", rotation.Done, 40}, // same start as a/5: ID breaks the tie
	} {
		rec := &rotation.Record{Credential: r.cred, ID: r.id, Phase: r.phase,
			StartedAt: t0.Add(time.Duration(r.startMin) * time.Minute), NewValue: secret.New(newSecret)}
		if err := s.Save(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}

	un, err := s.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(un), []string{"c/1", "b/1", "a/3", "a/5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Unfinished = %v, want %v", got, want)
	}
	if !un[0].NewValue.Equal(secret.New(newSecret)) {
		t.Error("Unfinished did not decrypt values")
	}

	h, err := s.History(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(h), []string{"a/5", "a/4", "a/3", "a/2", "a/1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("History(a, 0) = %v, want %v", got, want)
	}
	h, err = s.History(ctx, "a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(h), []string{"a/5", "a/4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("History(a, 2) = %v, want %v", got, want)
	}
	h, err = s.History(ctx, "nobody", 0)
	if err != nil || len(h) != 0 {
		t.Errorf("History(nobody) = %v, %v", ids(h), err)
	}
}

func TestConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	// Two stores on one file stand in for two processes.
	stores := []*Store{openTest(t, path), openTest(t, path)}
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%len(stores)]
			for i := 0; i < each; i++ {
				r := &rotation.Record{Credential: fmt.Sprintf("cred-%d", w), ID: fmt.Sprintf("%03d", i),
					Phase: rotation.Planned, StartedAt: time.Unix(int64(i), 0), NewValue: secret.New(newSecret)}
				if err := s.Save(ctx, r); err != nil {
					errs <- err
					return
				}
				// Every writer also updates one shared row.
				shared := &rotation.Record{Credential: "shared", ID: "1", Phase: rotation.Minted,
					Label: fmt.Sprintf("w%d-%d", w, i), NewValue: secret.New(newSecret)}
				if err := s.Save(ctx, shared); err != nil {
					errs <- err
					return
				}
				if _, err := s.Get(ctx, "shared", "1"); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := 0; w < writers; w++ {
		h, err := stores[0].History(ctx, fmt.Sprintf("cred-%d", w), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != each {
			t.Errorf("cred-%d: %d records, want %d", w, len(h), each)
		}
	}
	un, err := stores[1].Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != writers*each+1 {
		t.Errorf("Unfinished: %d records, want %d", len(un), writers*each+1)
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := statePath(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := Open(context.Background(), path, testKey(1))
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(250 - i) // produces + / in std and - _ in URL alphabet
	}
	for name, s := range map[string]string{
		"std":            base64.StdEncoding.EncodeToString(key),
		"url":            base64.URLEncoding.EncodeToString(key),
		"raw std":        base64.RawStdEncoding.EncodeToString(key),
		"raw url":        base64.RawURLEncoding.EncodeToString(key),
		"trailing space": base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := DecodeKey(s)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: DecodeKey = %x, %v", name, got, err)
		}
	}
	for name, s := range map[string]string{
		"empty":      "",
		"short":      base64.StdEncoding.EncodeToString(key[:16]),
		"long":       base64.StdEncoding.EncodeToString(append(key, 1)),
		"not base64": "SECRETKEYMATERIAL!!notbase64@@@@@@@@@@@@@@@",
		"hex":        strings.Repeat("ab", KeySize),
	} {
		_, err := DecodeKey(s)
		if err == nil {
			t.Errorf("%s: DecodeKey succeeded", name)
			continue
		}
		if s != "" && strings.Contains(err.Error(), strings.TrimSpace(s)) || strings.Contains(err.Error(), "SECRETKEY") {
			t.Errorf("%s: error echoes the input: %v", name, err)
		}
	}
}

func TestDurabilitySettings(t *testing.T) {
	s := openTest(t, statePath(t))
	var mode string
	var sync, busy int
	// One connection, so all three PRAGMAs read the same connection's settings.
	conn, err := s.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for q, dest := range map[string]any{
		"PRAGMA journal_mode": &mode, "PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
	} {
		if err := conn.QueryRowContext(context.Background(), q).Scan(dest); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if mode != "wal" || sync != 2 || busy != int(busyTimeout.Milliseconds()) {
		t.Errorf("journal_mode=%s synchronous=%d busy_timeout=%d, want wal, 2 (FULL), %d", mode, sync, busy, busyTimeout.Milliseconds())
	}
}

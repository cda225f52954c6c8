package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/rotation/storetest"
	"github.com/rekeyhq/rekey/sinks"
)

// Test values: distinctive so a grep of the database files cannot match by
// accident.
const ()

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
		if err != nil || !fi.Mode().IsRegular() {
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
	r := storetest.FullRecord()
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
			for _, v := range []string{storetest.OldSecret, storetest.NewSecret} {
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
	if len(oldEnc) != 12+len(storetest.OldSecret)+16 || bytes.Contains(oldEnc, []byte(storetest.OldSecret)) || bytes.Contains(newEnc, []byte(storetest.NewSecret)) {
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
		name   string
		mutate func(t *testing.T, path string)
	}{
		{"flipped byte in new value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "new_value_enc", func(b []byte) []byte { b[20] ^= 1; return b })
		}},
		{"flipped nonce byte in old value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "old_value_enc", func(b []byte) []byte { b[0] ^= 0x80; return b })
		}},
		{"truncated old value", func(t *testing.T, path string) {
			tamper(t, path, "production-api", "r-01", "old_value_enc", func(b []byte) []byte { return b[:10] })
		}},
		{"old and new swapped", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET old_value_enc = new_value_enc, new_value_enc = old_value_enc WHERE id = 'r-01'`)
		}},
		{"value moved from another rotation", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET new_value_enc = (SELECT new_value_enc FROM rotations WHERE id = 'r-02') WHERE id = 'r-01'`)
		}},
		{"value moved from another credential", func(t *testing.T, path string) {
			rawExec(t, path, `UPDATE rotations SET old_value_enc = (SELECT old_value_enc FROM rotations WHERE credential = 'other') WHERE id = 'r-01'`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			s := openTest(t, path)
			r1 := storetest.FullRecord()
			r2 := storetest.FullRecord()
			r2.ID = "r-02"
			r3 := storetest.FullRecord()
			r3.Credential = "other"
			r3.ID = "r-03"
			for _, r := range []*rotation.Record{r1, r2, r3} {
				if err := s.Save(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			tc.mutate(t, path)

			assertUnreadable(t, s, "production-api", "r-01")
			// Listing returns the row as unreadable rather than failing or
			// skipping it.
			h, err := s.History(ctx, "production-api", 0)
			if err != nil {
				t.Fatalf("History after tampering: %v", err)
			}
			if got, want := ids(h), []string{"production-api/r-02", "production-api/r-01"}; !reflect.DeepEqual(got, want) && !reflect.DeepEqual(got, []string{want[1], want[0]}) {
				t.Errorf("History = %v, want both rows", got)
			}
			// Untouched rows still read.
			if r, err := s.Get(ctx, "production-api", "r-02"); err != nil || r.Unreadable != "" {
				t.Errorf("Get untouched row: %v %q", err, r.Unreadable)
			}
		})
	}
}

// assertUnreadable checks that Get returns (credential, id) as an unreadable
// record naming the credential and rotation and nothing else, and returns
// its reason.
func assertUnreadable(t *testing.T, s *Store, credential, id string) string {
	t.Helper()
	got, err := s.Get(context.Background(), credential, id)
	if err != nil {
		t.Fatalf("Get %s/%s: %v, want an unreadable record", credential, id, err)
	}
	if got.Unreadable == "" {
		t.Fatalf("Get %s/%s: readable (phase %s), want unreadable", credential, id, got.Phase)
	}
	want := &rotation.Record{Credential: credential, ID: id, Unreadable: got.Unreadable}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unreadable record has fields beyond credential, ID and reason: %+v", got)
	}
	assertNoValue(t, got.Unreadable)
	return got.Unreadable
}

func assertNoValue(t *testing.T, s string) {
	t.Helper()
	for _, v := range []string{storetest.OldSecret, storetest.NewSecret} {
		if strings.Contains(s, v) {
			t.Errorf("output contains a key value")
		}
	}
}

func TestFileModes(t *testing.T) {
	ctx := context.Background()
	path := statePath(t) // its directory does not exist yet
	s := openTest(t, path)
	if err := s.Save(ctx, storetest.FullRecord()); err != nil {
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
	want := storetest.FullRecord()
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
	if err := s.Save(ctx, storetest.FullRecord()); err != nil {
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

// threeRotations saves three rotations of production-api an hour apart
// (r-01 oldest) and one of another credential, and returns them by ID.
func threeRotations(t *testing.T, s *Store) map[string]*rotation.Record {
	t.Helper()
	out := map[string]*rotation.Record{}
	for i, tc := range []struct {
		cred, id string
		phase    rotation.Phase
	}{
		{"production-api", "r-01", rotation.Done},
		{"production-api", "r-02", rotation.Monitoring},
		{"production-api", "r-03", rotation.Done},
		{"other", "r-09", rotation.Deployed},
	} {
		r := storetest.FullRecord()
		r.Credential, r.ID, r.Phase = tc.cred, tc.id, tc.phase
		r.StartedAt = r.StartedAt.Add(time.Duration(i) * time.Hour)
		for j := range r.Receipts {
			r.Receipts[j].RotationID = tc.id
		}
		if err := s.Save(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		out[tc.cred+"/"+tc.id] = r
	}
	return out
}

func TestEditedRowIsUnreadable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, set string
		reason    string // part of the Unreadable reason
	}{
		{"phase", `phase = 'done'`, "fails authentication"},
		{"phase to an unfinished one", `phase = 'revoking'`, "fails authentication"},
		{"old key ID", `record = json_set(record, '$.old_key_id', 'key_someone_elses')`, "fails authentication"},
		{"new key ID", `record = json_set(record, '$.new_key_id', 'key_other')`, "fails authentication"},
		{"receipt", `record = json_set(record, '$.receipts[0].previous', 'sha256:other')`, "fails authentication"},
		{"receipts dropped", `record = json_remove(record, '$.receipts')`, "fails authentication"},
		{"setup", `record = json_set(record, '$.setup', 'issuer=elsewhere;sinks=file:/tmp/x')`, "fails authentication"},
		{"left keys", `record = json_remove(record, '$.left')`, "fails authentication"},
		{"staged", `record = json_set(record, '$.staged', json('false'))`, "fails authentication"},
		{"record made unparsable", `record = 'not json'`, "fails authentication"},
		{"started at", `started_at = started_at + 1`, "fails authentication"},
		{"finished at cleared", `finished_at = NULL`, "fails authentication"},
		{"updated at as text", `updated_at = 'yesterday'`, "wrong type"},
		{"new value", `new_value_enc = old_value_enc`, "fails authentication"},
		{"mac flipped", `mac = zeroblob(32)`, "fails authentication"},
		{"mac removed", `mac = x''`, "not authenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			s := openTest(t, path)
			saved := threeRotations(t, s)
			rawExec(t, path, `UPDATE rotations SET `+tc.set+` WHERE credential = 'production-api' AND id = 'r-02'`)

			if reason := assertUnreadable(t, s, "production-api", "r-02"); !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", reason, tc.reason)
			}
			h, err := s.History(ctx, "production-api", 0)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			ok, bad := storetest.Readable(t, h, saved)
			if want := []string{"production-api/r-03", "production-api/r-01"}; !reflect.DeepEqual(ok, want) {
				t.Errorf("History readable = %v, want the newer and the older row %v", ok, want)
			}
			if !reflect.DeepEqual(bad, []string{"production-api/r-02"}) {
				t.Errorf("History unreadable = %v, want r-02", bad)
			}
			// The limit counts readable records only, so the newest
			// readable one is always within reach.
			h, err = s.History(ctx, "production-api", 2)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := storetest.Readable(t, h, saved); !reflect.DeepEqual(ok, []string{"production-api/r-03", "production-api/r-01"}) {
				t.Errorf("History(2) readable = %v", ok)
			}
			// r-02 is older than the readable r-03, so it is not in flight
			// whatever it claims (TestUnfinishedUnreadableNewest).
			un, err := s.Unfinished(ctx)
			if err != nil {
				t.Fatalf("Unfinished: %v", err)
			}
			ok, bad = storetest.Readable(t, un, saved)
			if !reflect.DeepEqual(ok, []string{"other/r-09"}) || len(bad) != 0 {
				t.Errorf("Unfinished = readable %v, unreadable %v; want other/r-09", ok, bad)
			}
			// An unreadable record cannot be saved over its row.
			r, _ := s.Get(ctx, "production-api", "r-02")
			if err := s.Save(ctx, r); err == nil {
				t.Error("Save of an unreadable record succeeded")
			}
		})
	}
}

// Whatever phase a credential's newest row claims once edited, Unfinished
// reports it, and goes on to the newest readable record (r-02, in flight).
func TestUnfinishedUnreadableNewest(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, set string
		bad       []string
	}{
		{"another terminal phase", `phase = 'failed'`, []string{"production-api/r-03"}},
		{"an unfinished phase", `phase = 'revoking'`, []string{"production-api/r-03"}},
		// Then it is older than the newest readable row: out of sight,
		// as the engine never resumes it.
		{"moved to look oldest", `started_at = 0`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			s := openTest(t, path)
			saved := threeRotations(t, s)
			rawExec(t, path, `UPDATE rotations SET `+tc.set+` WHERE id = 'r-03'`)
			un, err := s.Unfinished(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ok, bad := storetest.Readable(t, un, saved)
			if want := []string{"production-api/r-02", "other/r-09"}; !reflect.DeepEqual(ok, want) {
				t.Errorf("Unfinished readable = %v, want %v", ok, want)
			}
			if !reflect.DeepEqual(bad, tc.bad) {
				t.Errorf("Unfinished unreadable = %v, want %v", bad, tc.bad)
			}
		})
	}
}

func TestHistoryLimitSkipsUnreadable(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	s := openTest(t, path)
	saved := threeRotations(t, s)
	rawExec(t, path, `UPDATE rotations SET phase = 'failed' WHERE id = 'r-03'`) // the newest
	h, err := s.History(ctx, "production-api", 1)
	if err != nil {
		t.Fatal(err)
	}
	ok, bad := storetest.Readable(t, h, saved)
	if !reflect.DeepEqual(ok, []string{"production-api/r-02"}) || !reflect.DeepEqual(bad, []string{"production-api/r-03"}) {
		t.Errorf("History(1) = readable %v, unreadable %v; want r-02 after the unreadable r-03", ok, bad)
	}
}

func TestRowsMovedOrSwappedAreUnreadable(t *testing.T) {
	ctx := context.Background()
	t.Run("record columns swapped", func(t *testing.T) {
		path := statePath(t)
		s := openTest(t, path)
		saved := threeRotations(t, s)
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		var rec1, rec2 string
		if err := raw.QueryRow(`SELECT record FROM rotations WHERE id = 'r-01'`).Scan(&rec1); err != nil {
			t.Fatal(err)
		}
		if err := raw.QueryRow(`SELECT record FROM rotations WHERE id = 'r-02'`).Scan(&rec2); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		rawExec(t, path, `UPDATE rotations SET record = ? WHERE id = 'r-01'`, rec2)
		rawExec(t, path, `UPDATE rotations SET record = ? WHERE id = 'r-02'`, rec1)
		assertUnreadable(t, s, "production-api", "r-01")
		assertUnreadable(t, s, "production-api", "r-02")
		if r, err := s.Get(ctx, "production-api", "r-03"); err != nil || !reflect.DeepEqual(r, saved["production-api/r-03"]) {
			t.Errorf("untouched r-03: %v", err)
		}
	})
	t.Run("whole row moved to another rotation ID", func(t *testing.T) {
		path := statePath(t)
		s := openTest(t, path)
		threeRotations(t, s)
		rawExec(t, path, `UPDATE rotations SET id = 'r-04' WHERE id = 'r-02'`)
		assertUnreadable(t, s, "production-api", "r-04")
		if _, err := s.Get(ctx, "production-api", "r-02"); !errors.Is(err, rotation.ErrNotFound) {
			t.Errorf("Get r-02 after the move: %v, want ErrNotFound", err)
		}
	})
	t.Run("whole row moved to another credential", func(t *testing.T) {
		path := statePath(t)
		s := openTest(t, path)
		threeRotations(t, s)
		rawExec(t, path, `UPDATE rotations SET credential = 'other' WHERE credential = 'production-api' AND id = 'r-02'`)
		assertUnreadable(t, s, "other", "r-02")
	})
}

// v1Record is schema 1's plainRecord.
type v1Record struct {
	Label       string                `json:"label,omitempty"`
	OldKeyID    string                `json:"old_key_id,omitempty"`
	NewKeyID    string                `json:"new_key_id,omitempty"`
	Receipts    []sinks.Receipt       `json:"receipts,omitempty"`
	Staged      bool                  `json:"staged,omitempty"`
	Forced      bool                  `json:"forced,omitempty"`
	Error       string                `json:"error,omitempty"`
	Transitions []rotation.Transition `json:"transitions,omitempty"`
}

// writeV1Journal writes a schema 1 journal as the rekey of schema 1 did:
// migration 1, the v1 key check, and each record with its values sealed
// under the v1 additional data.
func writeV1Journal(t *testing.T, path string, key []byte, recs []*rotation.Record) {
	t.Helper()
	seal, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(migrations[0] + `; PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	check, err := seal.seal(keyCheckPlain, keyCheckAAD)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO meta (name, value) VALUES ('key_check', ?)`, check); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		plain, err := json.Marshal(v1Record{Label: r.Label, OldKeyID: r.OldKeyID, NewKeyID: r.NewKeyID, Receipts: r.Receipts,
			Staged: r.Staged, Forced: r.Forced, Error: r.Error, Transitions: r.Transitions})
		if err != nil {
			t.Fatal(err)
		}
		oldEnc, err := seal.seal([]byte(r.OldValue.Reveal()), []byte("rekey/v1|"+r.Credential+"|"+r.ID+"|old"))
		if err != nil {
			t.Fatal(err)
		}
		newEnc, err := seal.seal([]byte(r.NewValue.Reveal()), []byte("rekey/v1|"+r.Credential+"|"+r.ID+"|new"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`INSERT INTO rotations (credential, id, phase, started_at, updated_at, finished_at, record, old_value_enc, new_value_enc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Credential, r.ID, string(r.Phase),
			timeToDB(r.StartedAt), timeToDB(r.UpdatedAt), timeToDB(r.FinishedAt), string(plain), oldEnc, newEnc); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUpgradeFromV1(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	var recs []*rotation.Record
	saved := map[string]*rotation.Record{}
	for i, id := range []string{"r-01", "r-02", "r-03", "r-04"} {
		r := storetest.FullRecord()
		r.ID = id
		r.StartedAt = r.StartedAt.Add(time.Duration(i) * time.Hour)
		r.Setup, r.Kept, r.Reverts, r.Left, r.Untouched = "", false, 0, nil, nil // not in schema 1
		recs = append(recs, r)
		saved[r.Credential+"/"+id] = r
	}
	empty := &rotation.Record{Credential: "other", ID: "1", Phase: rotation.Planned} // zero times, empty values
	recs = append(recs, empty)
	saved["other/1"] = empty
	writeV1Journal(t, path, testKey(1), recs)
	// r-03's value was altered while the journal was at schema 1: the
	// upgrade must not bless it.
	tamper(t, path, "production-api", "r-03", "new_value_enc", func(b []byte) []byte { b[15] ^= 1; return b })

	s := openTest(t, path)
	if v := schemaVersion(t, path); v != SchemaVersion || v < 2 {
		t.Fatalf("schema version after upgrade %d, want %d", v, SchemaVersion)
	}
	for key, want := range saved {
		if key == "production-api/r-03" {
			continue
		}
		got, err := s.Get(ctx, want.Credential, want.ID)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after upgrade:\n got %+v\nwant %+v", key, got, want)
		}
	}
	assertUnreadable(t, s, "production-api", "r-03")
	h, err := s.History(ctx, "production-api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, bad := storetest.Readable(t, h, saved); !reflect.DeepEqual(ok, []string{"production-api/r-04", "production-api/r-02", "production-api/r-01"}) ||
		!reflect.DeepEqual(bad, []string{"production-api/r-03"}) {
		t.Errorf("History after upgrade: readable %v, unreadable %v", ok, bad)
	}
	// The upgraded journal is a schema 2 journal like any other: writes
	// work, edits are caught, and it reopens.
	r := saved["production-api/r-04"]
	r.Setup = "issuer=apexverify-prod"
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	rawExec(t, path, `UPDATE rotations SET phase = 'done' WHERE id = 'r-02'`)
	assertUnreadable(t, s, "production-api", "r-02")
	s.Close()
	s = openTest(t, path)
	if got, err := s.Get(ctx, r.Credential, r.ID); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("after reopen: %v\n got %+v\nwant %+v", err, got, r)
	}
	assertUnreadable(t, s, "production-api", "r-02")
	s.Close()

	// Dressing the journal up as schema 1 again, to have an edited row
	// authenticated by a second upgrade, is refused.
	rawExec(t, path, `ALTER TABLE rotations DROP COLUMN mac; PRAGMA user_version = 1`)
	_, err = Open(ctx, path, testKey(1))
	if err == nil || !strings.Contains(err.Error(), "does not match its key check") {
		t.Fatalf("Open of a journal downgraded to schema 1: %v, want a refusal", err)
	}
}

func TestUpgradeFromV1WrongKey(t *testing.T) {
	path := statePath(t)
	writeV1Journal(t, path, testKey(1), []*rotation.Record{storetest.FullRecord()})
	_, err := Open(context.Background(), path, testKey(2))
	if err == nil || !strings.Contains(err.Error(), "wrong encryption key") {
		t.Fatalf("Open of a schema 1 journal with another key: %v", err)
	}
	if v := schemaVersion(t, path); v != 1 {
		t.Errorf("schema version %d after a refused open, want 1 (untouched)", v)
	}
}

func TestOpenRefusesNonJournalFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"empty file", func(t *testing.T, path string) {
			writeFile(t, path, nil)
		}, "is empty (0 bytes), not a rekey journal; move it away to start a new journal"},
		{"text file", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte("not a database "), 100))
		}, "not an SQLite database, so not a rekey journal; move it away"},
		{"short file", func(t *testing.T, path string) {
			writeFile(t, path, []byte("SQLite"))
		}, "not an SQLite database"},
		{"another program's SQLite database", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')`)
			os.Chmod(path, 0o600)
		}, "an SQLite database but not a rekey journal (no rekey schema); move it away"},
		{"rekey's tables without a key check", func(t *testing.T, path string) {
			rawExec(t, path, migrations[0]+`; PRAGMA user_version = 1`)
			os.Chmod(path, 0o600)
		}, "not a rekey journal (no key check); move it away"},
		{"named pipe", func(t *testing.T, path string) {
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is a named pipe (FIFO), not a regular file"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.make(t, path)
			before := dbFiles(t, path)
			done := make(chan error, 1)
			go func() {
				s, err := Open(context.Background(), path, testKey(1))
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Open hangs")
			}
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v\nwant the path and %q", err, tc.want)
			}
			if after := dbFiles(t, path); !reflect.DeepEqual(after, before) {
				t.Errorf("the refused file changed: %v -> %v", keys(before), keys(after))
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCreate: stores opened at once on a missing path all share
// one journal, and the directory holds nothing but that journal after.
func TestConcurrentCreate(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, path, testKey(1))
			if err == nil {
				err = s.Save(ctx, &rotation.Record{Credential: "c", ID: fmt.Sprint(i), Phase: rotation.Planned})
			}
			errs[i], stores[i] = err, s
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	for i, s := range stores {
		h, err := s.History(ctx, "c", 0)
		if err != nil || len(h) != n {
			t.Errorf("store %d sees %d rotations (%v), want %d", i, len(h), err, n)
		}
	}
	assertOnlyJournal(t, path)
}

func assertOnlyJournal(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, filepath.Base(path)) {
			t.Errorf("left behind in the state directory: %s", name)
		}
	}
}

// TestConcurrentCreateAcrossProcesses: processes creating the journal at
// once all succeed and write to one journal.
func TestConcurrentCreateAcrossProcesses(t *testing.T) {
	if os.Getenv("REKEY_TEST_CREATE") != "" {
		return // in a child: TestHelperCreate does the work
	}
	path := statePath(t)
	const n = 4
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperCreate$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "REKEY_TEST_CREATE="+path, "REKEY_TEST_ID="+fmt.Sprint(i))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	s := openTest(t, path)
	h, err := s.History(context.Background(), "c", 0)
	if err != nil || len(h) != n {
		t.Errorf("journal holds %d rotations (%v), want %d", len(h), err, n)
	}
	assertOnlyJournal(t, path)
}

func TestHelperCreate(t *testing.T) {
	path := os.Getenv("REKEY_TEST_CREATE")
	if path == "" {
		t.Skip("run by TestConcurrentCreateAcrossProcesses")
	}
	ctx := context.Background()
	s, err := Open(ctx, path, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(ctx, &rotation.Record{Credential: "c", ID: os.Getenv("REKEY_TEST_ID"), Phase: rotation.Planned}); err != nil {
		t.Fatal(err)
	}
}

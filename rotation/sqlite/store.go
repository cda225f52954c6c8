// Package sqlite is rekey's embedded journal: a rotation.Store kept in one
// SQLite file on local disk, shared safely by the daemon, one-shot runs and
// deploy hooks on the same machine.
//
// Key values are stored only encrypted (AES-256-GCM, see crypto.go); every
// other field is plain text. Per-credential locks are flock(2) locks on files
// beside the database (see lock.go).
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/rekeyhq/rekey/internal/fsutil"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/rotation"
	"github.com/rekeyhq/rekey/sinks"
)

var _ rotation.Store = (*Store)(nil)

// Store is a rotation.Store in one SQLite file. It is safe for concurrent
// use by goroutines and by several processes sharing the file.
type Store struct {
	db      *sql.DB
	seal    *sealer
	path    string
	lockDir string
}

// migrations[i] takes the schema from version i to i+1. Append only: never
// edit a released migration. PRAGMA user_version holds the current version.
var migrations = []string{
	// 1: the rotations table and the meta table holding the key check.
	`CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value BLOB NOT NULL
	);
	CREATE TABLE rotations (
		credential    TEXT NOT NULL,
		id            TEXT NOT NULL,
		phase         TEXT NOT NULL,
		started_at    INTEGER,          -- Unix nanoseconds, NULL when zero
		updated_at    INTEGER,
		finished_at   INTEGER,
		record        TEXT NOT NULL,    -- plainRecord as JSON; never a key value
		old_value_enc BLOB NOT NULL,    -- nonce || AES-256-GCM(old value)
		new_value_enc BLOB NOT NULL,
		PRIMARY KEY (credential, id)
	);
	CREATE INDEX rotations_started ON rotations (started_at, credential, id);
	CREATE INDEX rotations_history ON rotations (credential, started_at);`,
}

// SchemaVersion is the journal schema this package reads and writes.
var SchemaVersion = len(migrations)

// busyTimeout is how long a statement waits for another connection or
// process to release the database before failing with SQLITE_BUSY. Journal
// writes are tiny, so a wait this long means something is wrong.
const busyTimeout = 10 * time.Second

// Open opens the journal at path, creating it (mode 0600) and its parent
// directory (mode 0700) if missing, and migrating its schema forward. key is
// the 32-byte AES-256 key (see DecodeKey); Open fails with "wrong encryption
// key" if the journal was created with another key.
//
// Open refuses a state file that group or others may read or write: its
// plain fields name credentials and key IDs, and the file must be as private
// as the key that protects its values. It refuses a schema newer than this
// build knows.
func Open(ctx context.Context, path string, key []byte) (*Store, error) {
	seal, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqlite: open: state path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s := &Store{db: db, seal: seal, path: abs, lockDir: abs + ".locks"}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	return s, nil
}

// dsn builds the driver's data source name. The path goes in as a file: URI
// so that any character in it is escaped rather than parsed.
//
// Journal mode WAL with synchronous=FULL: every commit fsyncs the WAL before
// it returns, so a Save is durable when it returns (rotation.Store's
// contract, DESIGN §2: "every phase change is durable before the side effect
// that follows it"), and readers (`rekey status` while the daemon writes)
// never block the writer or each other. WAL needs every process on one
// machine with the file on a local disk, which the embedded store requires
// anyway (the locks are flock(2)). busy_timeout lets several processes share
// the file: a writer waits for another's short transaction instead of
// failing. _txlock=immediate makes transactions take the write lock at
// BEGIN, so two processes migrating at once serialize instead of deadlocking.
func dsn(path string) string {
	u := url.URL{Scheme: "file", Path: path}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	return u.String() + "?" + q.Encode()
}

// prepareFile creates the state file (0600) and its directory (0700) if
// missing, and refuses a file others may read or write. SQLite creates its
// -wal and -shm files with the database file's mode.
func prepareFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("state file has mode %04o, but group and others must have no access; run: chmod 600 %s", perm, path)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%s has mode %04o, but group and others must have no access; run: chmod 600 %s", filepath.Base(path+suffix), fi.Mode().Perm(), path+suffix)
		}
	}
	if fi.Size() == 0 {
		// Newly created (or never written): make its directory entry durable.
		return fsutil.SyncDir(dir)
	}
	return nil
}

// init migrates the schema and checks the key, in one write transaction so
// that two processes opening a new journal at once cannot both create it.
func (s *Store) init(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > SchemaVersion {
		return fmt.Errorf("journal schema version %d is newer than this rekey supports (%d); upgrade rekey", version, SchemaVersion)
	}
	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if version < SchemaVersion {
		// PRAGMA takes no bound parameters; SchemaVersion is a constant int.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}

	var check []byte
	err = tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = 'key_check'").Scan(&check)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		check, err = s.seal.seal(keyCheckPlain, keyCheckAAD)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (name, value) VALUES ('key_check', ?)", check); err != nil {
			return fmt.Errorf("write key check: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read key check: %w", err)
	default:
		if _, err := s.seal.open(check, keyCheckAAD); err != nil {
			return errors.New("wrong encryption key: this journal was created with another key")
		}
	}
	return tx.Commit()
}

// Close closes the database. Locks taken with Lock stay held until their
// unlock functions are called.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// plainRecord is the part of a Record stored as JSON in plain text. It must
// never hold a key value.
type plainRecord struct {
	Label       string                `json:"label,omitempty"`
	OldKeyID    string                `json:"old_key_id,omitempty"`
	NewKeyID    string                `json:"new_key_id,omitempty"`
	Receipts    []sinks.Receipt       `json:"receipts,omitempty"`
	Staged      bool                  `json:"staged,omitempty"`
	Forced      bool                  `json:"forced,omitempty"`
	Setup       string                `json:"setup,omitempty"`
	Kept        bool                  `json:"kept,omitempty"`
	Reverts     int                   `json:"reverts,omitempty"`
	Left        []rotation.LeftKey    `json:"left,omitempty"`
	Untouched   []string              `json:"untouched,omitempty"`
	Error       string                `json:"error,omitempty"`
	Transitions []rotation.Transition `json:"transitions,omitempty"`
}

// Save inserts or replaces the record (r.Credential, r.ID). It is durable
// when it returns. Both values are encrypted, the empty ones included.
func (s *Store) Save(ctx context.Context, r *rotation.Record) error {
	if r == nil || r.Credential == "" || r.ID == "" {
		return errors.New("sqlite: save: record needs a credential and an ID")
	}
	plain, err := json.Marshal(plainRecord{
		Label:       r.Label,
		OldKeyID:    r.OldKeyID,
		NewKeyID:    r.NewKeyID,
		Receipts:    r.Receipts,
		Staged:      r.Staged,
		Forced:      r.Forced,
		Setup:       r.Setup,
		Kept:        r.Kept,
		Reverts:     r.Reverts,
		Left:        r.Left,
		Untouched:   r.Untouched,
		Error:       r.Error,
		Transitions: r.Transitions,
	})
	if err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: %w", r.ID, r.Credential, err)
	}
	oldEnc, err := s.seal.seal([]byte(r.OldValue.Reveal()), valueAAD(r.Credential, r.ID, "old"))
	if err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: encrypt old value: %w", r.ID, r.Credential, err)
	}
	newEnc, err := s.seal.seal([]byte(r.NewValue.Reveal()), valueAAD(r.Credential, r.ID, "new"))
	if err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: encrypt new value: %w", r.ID, r.Credential, err)
	}
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO rotations (credential, id, phase, started_at, updated_at, finished_at, record, old_value_enc, new_value_enc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (credential, id) DO UPDATE SET
			phase = excluded.phase,
			started_at = excluded.started_at,
			updated_at = excluded.updated_at,
			finished_at = excluded.finished_at,
			record = excluded.record,
			old_value_enc = excluded.old_value_enc,
			new_value_enc = excluded.new_value_enc`,
		r.Credential, r.ID, string(r.Phase),
		timeToDB(r.StartedAt), timeToDB(r.UpdatedAt), timeToDB(r.FinishedAt),
		string(plain), oldEnc, newEnc)
	if err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: %w", r.ID, r.Credential, err)
	}
	return nil
}

const selectColumns = `SELECT credential, id, phase, started_at, updated_at, finished_at, record, old_value_enc, new_value_enc FROM rotations`

// Get returns one rotation, or an error wrapping rotation.ErrNotFound. A
// value that fails to decrypt (wrong key, altered or moved ciphertext) is an
// error, never garbage.
func (s *Store) Get(ctx context.Context, credential, id string) (*rotation.Record, error) {
	row := s.db.QueryRowContext(ctx, selectColumns+` WHERE credential = ? AND id = ?`, credential, id)
	r, err := s.scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get rotation %s of %s: %w", id, credential, rotation.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Unfinished returns every rotation whose phase is not terminal, oldest
// (by StartedAt) first.
func (s *Store) Unfinished(ctx context.Context) ([]*rotation.Record, error) {
	return s.query(ctx, "unfinished",
		selectColumns+` WHERE phase NOT IN (?, ?, ?) ORDER BY started_at, credential, id`,
		string(rotation.Done), string(rotation.RolledBack), string(rotation.Failed))
}

// History returns a credential's rotations, newest (by StartedAt, then ID)
// first; limit <= 0 means all.
func (s *Store) History(ctx context.Context, credential string, limit int) ([]*rotation.Record, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return s.query(ctx, "history of "+credential,
		selectColumns+` WHERE credential = ? ORDER BY started_at DESC, id DESC LIMIT ?`,
		credential, limit)
}

func (s *Store) query(ctx context.Context, what, query string, args ...any) ([]*rotation.Record, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*rotation.Record
	for rows.Next() {
		r, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

// scan reads one row. It returns sql.ErrNoRows unwrapped so Get can map it.
func (s *Store) scan(row scanner) (*rotation.Record, error) {
	var (
		r                        rotation.Record
		phase, plain             string
		started, updated, finish sql.NullInt64
		oldEnc, newEnc           []byte
	)
	err := row.Scan(&r.Credential, &r.ID, &phase, &started, &updated, &finish, &plain, &oldEnc, &newEnc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read rotation: %w", err)
	}
	var p plainRecord
	if err := json.Unmarshal([]byte(plain), &p); err != nil {
		return nil, fmt.Errorf("sqlite: read rotation %s of %s: record: %w", r.ID, r.Credential, err)
	}
	oldPlain, err := s.seal.open(oldEnc, valueAAD(r.Credential, r.ID, "old"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: decrypt rotation %s of %s: old value: %w", r.ID, r.Credential, err)
	}
	newPlain, err := s.seal.open(newEnc, valueAAD(r.Credential, r.ID, "new"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: decrypt rotation %s of %s: new value: %w", r.ID, r.Credential, err)
	}
	r.Phase = rotation.Phase(phase)
	r.Label = p.Label
	r.OldKeyID = p.OldKeyID
	r.OldValue = secret.New(string(oldPlain))
	r.NewKeyID = p.NewKeyID
	r.NewValue = secret.New(string(newPlain))
	r.Receipts = p.Receipts
	r.Staged = p.Staged
	r.Forced = p.Forced
	r.Setup = p.Setup
	r.Kept = p.Kept
	r.Reverts = p.Reverts
	r.Left = p.Left
	r.Untouched = p.Untouched
	r.Error = p.Error
	r.Transitions = p.Transitions
	r.StartedAt = timeFromDB(started)
	r.UpdatedAt = timeFromDB(updated)
	r.FinishedAt = timeFromDB(finish)
	return &r, nil
}

// Times are stored as Unix nanoseconds (sortable, exact), NULL for the zero
// time, and read back in UTC.
func timeToDB(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func timeFromDB(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

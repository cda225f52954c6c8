// Package sqlite is rekey's embedded journal: a rotation.Store kept in one
// SQLite file on local disk, shared safely by the daemon, one-shot runs and
// deploy hooks on the same machine.
//
// Key values are stored only encrypted (AES-256-GCM, see crypto.go); every
// other field is plain text, and every row is authenticated whole (an
// HMAC-SHA256 over all its columns), so an edited or moved row reads back as
// unreadable, never as a record with edited fields. Per-credential locks are flock(2) locks on files
// beside the database (see lock.go).
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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
	stmt    statements
}

// statements are prepared once per Store (see prepare) and reused: SQLite
// would otherwise parse and plan each query again on every call.
type statements struct {
	save, get, history, count, newest, recentAll *sql.Stmt
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

	// 2: every row authenticated whole. mac is the HMAC-SHA256 of every
	// other column (crypto.go rowMAC); Open computes it for the rows of a
	// version 1 journal as it upgrades it. A row without a valid mac is
	// unreadable, whatever its other columns say.
	`ALTER TABLE rotations ADD COLUMN mac BLOB NOT NULL DEFAULT x'';`,

	// 3: indexes to read a credential's recent records without the rest
	// of its history (Recent, RecentAll, Unfinished). rotations_recent
	// orders a credential's rows as History returns them, so a read newest
	// first streams from the index and stops early, and it finds each
	// credential's newest row with one seek; rotations_done finds a
	// credential's newest row whose phase column says done. The indexes
	// only choose which rows to read: every row read is still
	// authenticated whole, and a row whose columns were edited to steer
	// them is unreadable (see Recent). Nothing reads across credentials by
	// start time any more.
	`CREATE INDEX rotations_recent ON rotations (credential, started_at, id);
	CREATE INDEX rotations_done ON rotations (credential, started_at) WHERE phase = 'done';
	DROP INDEX rotations_history;
	DROP INDEX rotations_started;`,
}

// SchemaVersion is the journal schema this package reads and writes.
var SchemaVersion = len(migrations)

// busyTimeout is how long a statement waits for another connection or
// process to release the database before failing with SQLITE_BUSY. Journal
// writes are tiny, so a wait this long means something is wrong.
const busyTimeout = 10 * time.Second

// Open opens the journal at path, and migrates its schema forward. If path
// does not exist, Open creates a new journal there (mode 0600, its parent
// directory 0700 if missing); two processes creating one at once end up
// sharing one journal. key is the 32-byte AES-256 key (see DecodeKey); Open
// fails with "wrong encryption key" if the journal was created with another
// key.
//
// Open refuses, naming the path and what to do, a file that is not a rekey
// journal: an empty (0-byte) file, one that is not an SQLite database, an
// SQLite database without rekey's schema and key check, and anything but a
// regular file (without blocking on a named pipe). It refuses a state file
// that group or others may read or write: its plain fields name credentials
// and key IDs, and the file must be as private as the key that protects its
// values. It refuses a schema newer than this build knows.
//
// Upgrading a schema 1 journal authenticates each of its rows as it stands
// (schema 1 authenticated only the values): a row whose values fail to
// decrypt then stays unreadable.
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
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	err = checkFile(abs)
	if errors.Is(err, fs.ErrNotExist) {
		if err = create(ctx, abs, seal); err == nil {
			err = checkFile(abs)
		}
	}
	if err == nil {
		err = identify(ctx, abs)
	}
	if err != nil {
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
	if err := s.prepare(ctx); err != nil {
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
// contract, ARCHITECTURE.md §1: "every phase change is durable before the side effect
// that follows it"), and readers (`rekey status` while the daemon writes)
// never block the writer or each other. WAL needs every process on one
// machine with the file on a local disk, which the embedded store requires
// anyway (the locks are flock(2)). busy_timeout lets several processes share
// the file: a writer waits for another's short transaction instead of
// failing. _txlock=immediate makes transactions take the write lock at
// BEGIN, so two processes migrating at once serialize instead of deadlocking.
func dsn(path string) string {
	return dsnMode(path, "WAL")
}

func dsnMode(path, journalMode string) string {
	u := url.URL{Scheme: "file", Path: path}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode("+journalMode+")")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	return u.String() + "?" + q.Encode()
}

// moveAway ends every refusal of a file that is not a rekey journal.
const moveAway = "; move it away to start a new journal"

// sqliteHeader starts every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// checkFile checks that path is a rekey journal's file as far as can be told
// without SQLite: a private regular file starting with the SQLite header. It
// returns an error wrapping fs.ErrNotExist if path does not exist. The open is
// non-blocking, so a named pipe at path cannot hang it, and never creates.
// SQLite creates its -wal and -shm files with the database file's mode.
func checkFile(path string) error {
	f, fi, err := fsutil.OpenRegular(path, os.O_RDWR)
	if pe := (*fs.PathError)(nil); errors.Is(err, fsutil.ErrNotRegular) && errors.As(err, &pe) {
		return fmt.Errorf("the state path %w", pe.Err) // the caller names the path
	}
	if err != nil {
		return err
	}
	defer f.Close()
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
		if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
			return fmt.Errorf("the state file is empty (0 bytes) but %s is not; leave both alone and restore the journal from a backup", filepath.Base(path+"-wal"))
		}
		return errors.New("the state file is empty (0 bytes), not a rekey journal" + moveAway)
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != sqliteHeader {
		return errors.New("the state file is not an SQLite database, so not a rekey journal" + moveAway)
	}
	return nil
}

// create makes a new journal at path unless one appears there first: it
// builds the journal completely in a temporary file in the same directory,
// fsyncs it and links it into place, which fails rather than replace a file
// that exists. So path never shows a half-made journal, and of two processes
// creating one at once, one links its journal and the other opens that one.
// A crash can leave a temporary file (".<name>.new-*") behind, never a
// journal at path that is not one.
func create(ctx context.Context, path string, seal *sealer) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after a successful link, path keeps the journal
	if err := tmp.Close(); err != nil {
		return err
	}
	// The rollback journal keeps the whole database in the one file, so it
	// can be linked elsewhere; Open's dsn switches it to WAL.
	db, err := sql.Open("sqlite", dsnMode(name, "DELETE"))
	if err != nil {
		return err
	}
	err = createSchema(ctx, db, seal)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	if err := syncFile(name); err != nil {
		return err
	}
	err = os.Link(name, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some file systems have no hard links; renameat2 also refuses to
		// replace path.
		err = unix.Renameat2(unix.AT_FDCWD, name, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create journal: %w", err)
	}
	return fsutil.SyncDir(dir)
}

// createSchema writes every migration and the key check into a new, empty
// database.
func createSchema(ctx context.Context, db *sql.DB, seal *sealer) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for v := range migrations {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("schema version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no bound parameters; SchemaVersion is a constant int.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	check, err := seal.seal(keyCheckPlainv2, keyCheckAADv2)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO meta (name, value) VALUES ('key_check', ?)", check); err != nil {
		return fmt.Errorf("write key check: %w", err)
	}
	return tx.Commit()
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// identify refuses an SQLite database that is not a rekey journal, reading
// it without changing it: Open's dsn would turn it to WAL mode.
func identify(ctx context.Context, path string) error {
	u := url.URL{Scheme: "file", Path: path}
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	db, err := sql.Open("sqlite", u.String()+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	return checkSchema(ctx, db)
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkSchema refuses a database without rekey's tables or key check.
func checkSchema(ctx context.Context, q querier) error {
	var version, tables int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'rotations')`).Scan(&tables); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if version == 0 || tables != 2 {
		return errors.New("the state file is an SQLite database but not a rekey journal (no rekey schema)" + moveAway)
	}
	var checks int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM meta WHERE name = 'key_check'").Scan(&checks); err != nil {
		return fmt.Errorf("read key check: %w", err)
	}
	if checks == 0 {
		return errors.New("the state file is an SQLite database but not a rekey journal (no key check)" + moveAway)
	}
	return nil
}

// init checks that the database is a rekey journal of this key, migrates
// its schema and upgrades its rows, in one write transaction so that two
// processes opening the journal at once cannot both migrate it.
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
	if err := checkSchema(ctx, tx); err != nil {
		return err
	}
	var check []byte
	if err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = 'key_check'").Scan(&check); err != nil {
		return fmt.Errorf("read key check: %w", err)
	}
	v1 := s.seal.checks(check, keyCheckPlain, keyCheckAAD)
	v2 := s.seal.checks(check, keyCheckPlainv2, keyCheckAADv2)
	switch {
	case !v1 && !v2:
		return errors.New("wrong encryption key: this journal was created with another key")
	case version >= 2 && !v2, version < 2 && !v1:
		return fmt.Errorf("journal schema version %d does not match its key check: the file was altered; restore it from a backup", version)
	}

	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if version < 2 {
		if err := s.authenticateRows(ctx, tx); err != nil {
			return err
		}
		check, err := s.seal.seal(keyCheckPlainv2, keyCheckAADv2)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE meta SET value = ? WHERE name = 'key_check'", check); err != nil {
			return fmt.Errorf("write key check: %w", err)
		}
	}
	if version < SchemaVersion {
		// PRAGMA takes no bound parameters; SchemaVersion is a constant int.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}
	return tx.Commit()
}

// authenticateRows gives every row of a schema 1 journal its row MAC, if its
// values decrypt under schema 1's additional data and its record parses:
// the only checks schema 1 allows. Other rows keep an empty MAC and read as
// unreadable.
func (s *Store) authenticateRows(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, selectColumns)
	if err != nil {
		return fmt.Errorf("upgrade rows: %w", err)
	}
	var good []*row
	for rows.Next() {
		r, _, bad, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("upgrade rows: %w", err)
		}
		if bad != "" {
			continue
		}
		if _, reason := s.decode(r); reason == "" {
			good = append(good, r)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("upgrade rows: %w", err)
	}
	rows.Close()
	for _, r := range good {
		mac, err := s.seal.rowMAC(r)
		if err != nil {
			return fmt.Errorf("upgrade rotation %s of %s: %w", r.id, r.credential, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rotations SET mac = ? WHERE credential = ? AND id = ?`, mac, r.credential, r.id); err != nil {
			return fmt.Errorf("upgrade rotation %s of %s: %w", r.id, r.credential, err)
		}
	}
	return nil
}

// Close closes the database. Locks taken with Lock stay held until their
// unlock functions are called.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.stmt.save, s.stmt.get, s.stmt.history, s.stmt.count, s.stmt.newest, s.stmt.recentAll} {
		if st != nil {
			st.Close()
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// plainRecord is the part of a Record stored as JSON in plain text. It must
// never hold a key value. The row MAC authenticates it with the rest of the
// row.
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
// when it returns. Both values are encrypted, the empty ones included, and
// the whole row is authenticated. r.Unreadable is not stored: Save refuses a
// record that has it set, so an unreadable record read back is never saved
// over the row it stands for.
func (s *Store) Save(ctx context.Context, r *rotation.Record) error {
	if r == nil || r.Credential == "" || r.ID == "" {
		return errors.New("sqlite: save: record needs a credential and an ID")
	}
	if r.Unreadable != "" {
		return fmt.Errorf("sqlite: save rotation %s of %s: the record is unreadable (%s)", r.ID, r.Credential, r.Unreadable)
	}
	args, err := s.encode(r)
	if err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: %w", r.ID, r.Credential, err)
	}
	if _, err := s.stmt.save.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("sqlite: save rotation %s of %s: %w", r.ID, r.Credential, err)
	}
	return nil
}

// encode returns the columns of r's row, its MAC last, as the save
// statement takes them.
func (s *Store) encode(r *rotation.Record) ([]any, error) {
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
		return nil, err
	}
	oldEnc, err := s.seal.seal([]byte(r.OldValue.Reveal()), valueAAD(r.Credential, r.ID, "old"))
	if err != nil {
		return nil, fmt.Errorf("encrypt old value: %w", err)
	}
	newEnc, err := s.seal.seal([]byte(r.NewValue.Reveal()), valueAAD(r.Credential, r.ID, "new"))
	if err != nil {
		return nil, fmt.Errorf("encrypt new value: %w", err)
	}
	w := &row{
		credential: r.Credential, id: r.ID, phase: string(r.Phase),
		started: timeToDB(r.StartedAt), updated: timeToDB(r.UpdatedAt), finished: timeToDB(r.FinishedAt),
		record: string(plain), oldEnc: oldEnc, newEnc: newEnc,
	}
	mac, err := s.seal.rowMAC(w)
	if err != nil {
		return nil, err
	}
	return []any{w.credential, w.id, w.phase, w.started, w.updated, w.finished, w.record, w.oldEnc, w.newEnc, mac}, nil
}

// columns are the columns a row MAC covers, then the MAC, in the order
// scanRow reads them.
const columns = `credential, id, phase, started_at, updated_at, finished_at, record, old_value_enc, new_value_enc, mac`

const selectColumns = `SELECT ` + columns + ` FROM rotations`

// names lists the credentials of the journal with one index seek each (a
// loose index scan), not by reading every row.
const names = `names(name) AS (
		SELECT (SELECT min(credential) FROM rotations)
		UNION ALL
		SELECT (SELECT min(credential) FROM rotations WHERE credential > names.name) FROM names WHERE names.name IS NOT NULL
	)`

// newestQuery reads each credential's newest row.
const newestQuery = `WITH RECURSIVE ` + names + `
	SELECT ` + columns + ` FROM names JOIN rotations ON rotations.rowid = (
		SELECT rowid FROM rotations WHERE credential = names.name ORDER BY started_at DESC, id DESC LIMIT 1)`

// recentAllQuery reads each credential's rows from its newest row whose
// phase column says done (all its rows when none does), in no particular
// order (RecentAll sorts them: SQLite would copy every row into a sorter);
// the last column says whether such a row exists.
const recentAllQuery = `WITH RECURSIVE ` + names + `,
	since(name, at) AS MATERIALIZED (
		SELECT names.name, (SELECT max(started_at) FROM rotations WHERE credential = names.name AND phase = 'done')
		FROM names WHERE names.name IS NOT NULL
	)
	SELECT ` + columns + `, 1 FROM since JOIN rotations ON credential = since.name AND started_at >= since.at
	WHERE since.at IS NOT NULL
	UNION ALL
	SELECT ` + columns + `, 0 FROM since JOIN rotations ON credential = since.name
	WHERE since.at IS NULL`

// prepare prepares the statements every call uses.
func (s *Store) prepare(ctx context.Context) error {
	for _, q := range []struct {
		to  **sql.Stmt
		sql string
	}{
		{&s.stmt.save, `
			INSERT INTO rotations (` + columns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (credential, id) DO UPDATE SET
				phase = excluded.phase,
				started_at = excluded.started_at,
				updated_at = excluded.updated_at,
				finished_at = excluded.finished_at,
				record = excluded.record,
				old_value_enc = excluded.old_value_enc,
				new_value_enc = excluded.new_value_enc,
				mac = excluded.mac`},
		{&s.stmt.get, selectColumns + ` WHERE credential = ? AND id = ?`},
		// Newest first, streamed from rotations_recent: reading stops
		// where the caller stops.
		{&s.stmt.history, selectColumns + ` WHERE credential = ? ORDER BY started_at DESC, id DESC`},
		{&s.stmt.count, `SELECT count(*) FROM rotations WHERE credential = ?`},
		// Each credential's newest row.
		{&s.stmt.newest, newestQuery},
		{&s.stmt.recentAll, recentAllQuery},
	} {
		st, err := s.db.PrepareContext(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*q.to = st
	}
	return nil
}

// Reasons a row is unreadable (rotation.Record.Unreadable).
const (
	reasonAuth  = "record fails authentication (edited, or written with another key)"
	reasonNoMAC = "record is not authenticated (edited, or it did not decrypt when the journal was upgraded)"
	reasonType  = "record has a column of the wrong type (edited)"
)

// Get returns one rotation, or an error wrapping rotation.ErrNotFound. A
// row that fails authentication or decryption comes back as a record with
// only Credential, ID and Unreadable set, never with garbage fields.
func (s *Store) Get(ctx context.Context, credential, id string) (*rotation.Record, error) {
	rows, err := s.stmt.get.QueryContext(ctx, credential, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get rotation %s of %s: %w", id, credential, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: get rotation %s of %s: %w", id, credential, err)
		}
		return nil, fmt.Errorf("sqlite: get rotation %s of %s: %w", id, credential, rotation.ErrNotFound)
	}
	r, _, err := s.scan(rows, false)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get rotation %s of %s: %w", id, credential, err)
	}
	return r, nil
}

// Unfinished returns the rotations in flight, oldest (by StartedAt, then
// credential and ID) first: each credential's newest readable record if its
// phase is not terminal, and every unreadable row newer than that, whatever
// phase it claims: that claim cannot be trusted. It reads each credential's
// newest row, and further rows only of a credential whose newest row is
// unreadable.
func (s *Store) Unfinished(ctx context.Context) ([]*rotation.Record, error) {
	type found struct {
		started any
		r       *rotation.Record
	}
	var out []found
	var again []string // credentials whose newest row is unreadable
	rows, err := s.stmt.newest.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfinished: %w", err)
	}
	for rows.Next() {
		w, mac, bad, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: unfinished: %w", err)
		}
		r, skip := s.read(w, mac, bad, true)
		switch {
		case skip:
		case r.Unreadable != "":
			again = append(again, w.credential)
		default:
			out = append(out, found{w.started, r})
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfinished: %w", err)
	}
	for _, c := range again {
		err := s.each(ctx, "unfinished", s.stmt.history, []any{c}, true, func(w *row, r *rotation.Record) bool {
			if r != nil {
				out = append(out, found{w.started, r})
			}
			return r != nil && r.Unreadable != ""
		})
		if err != nil {
			return nil, err
		}
	}
	// As SQLite orders them: NULL (and, on an edited row, anything but an
	// integer) first.
	key := func(f found) (int, int64) {
		n, ok := f.started.(int64)
		if !ok {
			return 0, 0
		}
		return 1, n
	}
	slices.SortFunc(out, func(a, b found) int {
		ak, an := key(a)
		bk, bn := key(b)
		return cmp.Or(cmp.Compare(ak, bk), cmp.Compare(an, bn),
			cmp.Compare(a.r.Credential, b.r.Credential), cmp.Compare(a.r.ID, b.r.ID))
	})
	recs := make([]*rotation.Record, len(out))
	for i, f := range out {
		recs[i] = f.r
	}
	return recs, nil
}

// History returns a credential's rotations, newest (by StartedAt, then ID)
// first. Unreadable rows (see Get) come back in their place but do not count
// towards limit: History returns the newest limit readable records and any
// unreadable ones among and newer than them, so History(c, 1) always
// reaches the newest readable record. limit <= 0 means all. It reads no
// row older than the last one it returns.
func (s *Store) History(ctx context.Context, credential string, limit int) ([]*rotation.Record, error) {
	var out []*rotation.Record
	n := 0
	err := s.each(ctx, "history of "+credential, s.stmt.history, []any{credential}, false, func(_ *row, r *rotation.Record) bool {
		out = append(out, r)
		if r.Unreadable == "" {
			n++
		}
		return limit <= 0 || n < limit
	})
	return out, err
}

// Count returns how many rotations of credential the journal holds,
// readable or not, without reading them.
func (s *Store) Count(ctx context.Context, credential string) (int, error) {
	var n int
	if err := s.stmt.count.QueryRowContext(ctx, credential).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count history of %s: %w", credential, err)
	}
	return n, nil
}

// Recent returns a credential's rotations newest first, down to and
// including its newest readable record in phase Done, or all of them when
// none is (rotation.Store). It reads the rows newest first and stops at
// that record, so it reads no older row. A row edited to claim Done, or
// edited not to, is unreadable and does not stop it.
func (s *Store) Recent(ctx context.Context, credential string) ([]*rotation.Record, error) {
	var out []*rotation.Record
	err := s.each(ctx, "recent history of "+credential, s.stmt.history, []any{credential}, false, func(_ *row, r *rotation.Record) bool {
		out = append(out, r)
		return r.Unreadable != "" || r.Phase != rotation.Done
	})
	return out, err
}

// RecentAll returns Recent of every credential in the journal in one
// query. The query picks each credential's rows from its newest row whose
// phase column says done, through rotations_done; that column is trusted
// only once its row is authenticated: if the row it picked is unreadable
// (edited to claim done, say), the credential's rows are read again by
// Recent, which goes on past it. A row edited to no longer claim done is
// unreadable and only makes the query read further back.
func (s *Store) RecentAll(ctx context.Context) (map[string][]*rotation.Record, error) {
	// Authenticating and decoding the rows is most of the work: workers on
	// every CPU do it, a credential at a time, while the query goes on.
	work := make(chan recentRows, 64)
	results := make(chan recentResult, 64)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				recs, err := s.recentOf(ctx, b.name, b.rows, b.picked)
				results <- recentResult{b.name, recs, err}
			}
		}()
	}
	out := map[string][]*rotation.Record{}
	var workErr error
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for r := range results {
			if r.err != nil && workErr == nil {
				workErr = r.err
			}
			out[r.name] = r.recs
		}
	}()
	again, err := s.queryRecentAll(ctx, work)
	close(work)
	wg.Wait()
	close(results)
	<-collected
	if err != nil {
		return nil, fmt.Errorf("sqlite: recent history: %w", err)
	}
	if workErr != nil {
		return nil, workErr
	}
	for name := range again {
		if out[name], err = s.Recent(ctx, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recentRows are the rows recentAllQuery read of one credential.
type recentRows struct {
	name   string
	rows   []storedRow
	picked bool // a row claims done
}

// queryRecentAll runs recentAllQuery and sends each credential's rows to
// work once the query has moved on to another credential. The query gives
// no order, but in practice returns a credential's rows together; a
// credential whose rows come apart is left out and returned in again, to be
// read on its own.
func (s *Store) queryRecentAll(ctx context.Context, work chan<- recentRows) (again map[string]bool, err error) {
	rows, err := s.stmt.recentAll.QueryContext(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	sent, again := map[string]bool{}, map[string]bool{}
	var cur *recentRows
	flush := func() {
		if cur != nil {
			work <- *cur
			sent[cur.name], cur = true, nil
		}
	}
	for rows.Next() {
		var picked int64
		w, mac, bad, err := scanRow(rows, &picked)
		if err != nil {
			return nil, err
		}
		if cur == nil || cur.name != w.credential {
			flush()
			if sent[w.credential] {
				again[w.credential] = true
				continue
			}
			cur = &recentRows{name: w.credential, picked: picked != 0}
		}
		cur.rows = append(cur.rows, storedRow{w, mac, bad})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	flush()
	return again, nil
}

type storedRow struct {
	w   *row
	mac []byte
	bad string
}

type recentResult struct {
	name string
	recs []*rotation.Record
	err  error
}

// recentOf returns Recent of credential from the rows recentAllQuery read
// of it; picked says whether one of them claims done.
func (s *Store) recentOf(ctx context.Context, credential string, rows []storedRow, picked bool) ([]*rotation.Record, error) {
	// History's order: started_at DESC (NULL, or on an edited row anything
	// but an integer, last), then id DESC.
	slices.SortFunc(rows, func(a, b storedRow) int {
		x, xok := a.w.started.(int64)
		y, yok := b.w.started.(int64)
		switch {
		case xok != yok && xok:
			return -1
		case xok != yok:
			return 1
		}
		return cmp.Or(cmp.Compare(y, x), cmp.Compare(b.w.id, a.w.id))
	})
	recs := make([]*rotation.Record, 0, len(rows))
	for _, st := range rows {
		r, _ := s.read(st.w, st.mac, st.bad, false)
		recs = append(recs, r)
		if r.Unreadable == "" && r.Phase == rotation.Done {
			return recs, nil // the rest started with the done one, older by ID
		}
	}
	if picked {
		// The row that claims done did not authenticate: read on past it.
		return s.Recent(ctx, credential)
	}
	return recs, nil
}

// each runs stmt and passes each row, authenticated and decoded, to more
// until more returns false; then it stops reading. With skipTerminal, a
// readable row in a terminal phase is passed as a nil record, undecoded.
func (s *Store) each(ctx context.Context, what string, stmt *sql.Stmt, args []any, skipTerminal bool, more func(w *row, r *rotation.Record) bool) error {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		w, mac, bad, err := scanRow(rows)
		if err != nil {
			return fmt.Errorf("sqlite: %s: %w", what, err)
		}
		r, _ := s.read(w, mac, bad, skipTerminal)
		if !more(w, r) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

// scan reads, authenticates and decodes one row; an error means the row
// could not be read from the database at all (see read).
func (s *Store) scan(sc scanner, skipTerminal bool) (r *rotation.Record, skip bool, err error) {
	w, mac, bad, err := scanRow(sc)
	if err != nil {
		return nil, false, err
	}
	r, skip = s.read(w, mac, bad, skipTerminal)
	return r, skip, nil
}

// read authenticates and decodes a row scanRow read. A row that fails to
// authenticate or decode comes back as an unreadable record. With
// skipTerminal, a readable row in a terminal phase is skipped (nil, skip
// true) before its values are decrypted.
func (s *Store) read(w *row, mac []byte, bad string, skipTerminal bool) (r *rotation.Record, skip bool) {
	unreadable := func(reason string) *rotation.Record {
		return &rotation.Record{Credential: w.credential, ID: w.id, Unreadable: reason}
	}
	switch {
	case bad != "":
		return unreadable(bad), false
	case len(mac) == 0:
		return unreadable(reasonNoMAC), false
	case !s.seal.verifyRow(w, mac):
		return unreadable(reasonAuth), false
	case skipTerminal && rotation.Phase(w.phase).Terminal():
		return nil, true
	}
	rec, reason := s.decode(w)
	if reason != "" {
		return unreadable(reason), false
	}
	return rec, false
}

// scanRow reads one row's columns as stored, then any extra columns into
// extra. bad is a reason to treat the
// row as unreadable: a column holds a type the store never writes.
func scanRow(sc scanner, extra ...any) (w *row, mac []byte, bad string, err error) {
	var cols [10]any
	dest := make([]any, len(cols), len(cols)+len(extra))
	for i := range cols {
		dest[i] = &cols[i]
	}
	dest = append(dest, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, nil, "", fmt.Errorf("read rotation: %w", err)
	}
	w = &row{started: cols[3], updated: cols[4], finished: cols[5]}
	ok := true
	text := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		ok = false
		return ""
	}
	blob := func(v any) []byte {
		b, isBlob := v.([]byte)
		ok = ok && isBlob
		return b
	}
	w.credential, w.id = text(cols[0]), text(cols[1])
	w.phase, w.record = text(cols[2]), text(cols[6])
	w.oldEnc, w.newEnc, mac = blob(cols[7]), blob(cols[8]), blob(cols[9])
	for _, t := range []any{w.started, w.updated, w.finished} {
		switch t.(type) {
		case nil, int64:
		default:
			ok = false
		}
	}
	if !ok {
		bad = reasonType
	}
	return w, mac, bad, nil
}

// decode builds the record of an authenticated row (or, upgrading a schema
// 1 journal, of a row schema 1 could not authenticate); reason is set if it
// does not decode. Reasons hold no key value.
func (s *Store) decode(w *row) (r *rotation.Record, reason string) {
	var p plainRecord
	if err := json.Unmarshal([]byte(w.record), &p); err != nil {
		return nil, "record does not parse: " + err.Error()
	}
	r = &rotation.Record{
		Credential:  w.credential,
		ID:          w.id,
		Phase:       rotation.Phase(w.phase),
		Label:       p.Label,
		OldKeyID:    p.OldKeyID,
		NewKeyID:    p.NewKeyID,
		Receipts:    p.Receipts,
		Staged:      p.Staged,
		Forced:      p.Forced,
		Setup:       p.Setup,
		Kept:        p.Kept,
		Reverts:     p.Reverts,
		Left:        p.Left,
		Untouched:   p.Untouched,
		Error:       p.Error,
		Transitions: p.Transitions,
		StartedAt:   timeFromDB(w.started),
		UpdatedAt:   timeFromDB(w.updated),
		FinishedAt:  timeFromDB(w.finished),
	}
	oldPlain, err := s.seal.open(w.oldEnc, valueAAD(w.credential, w.id, "old"))
	if err != nil {
		return nil, "old value: " + err.Error()
	}
	newPlain, err := s.seal.open(w.newEnc, valueAAD(w.credential, w.id, "new"))
	if err != nil {
		return nil, "new value: " + err.Error()
	}
	r.OldValue = secret.New(string(oldPlain))
	r.NewValue = secret.New(string(newPlain))
	return r, ""
}

// Times are stored as Unix nanoseconds (sortable, exact), NULL for the zero
// time, and read back in UTC.
func timeToDB(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func timeFromDB(v any) time.Time {
	n, ok := v.(int64)
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

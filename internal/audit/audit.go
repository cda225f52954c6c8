// Package audit writes rekey's audit log: one JSON object per line, one
// line per journaled phase transition, appended and fsynced before Write
// returns. The log never holds a key value: only key IDs, sink names and
// error texts, which the rest of rekey already keeps free of secrets.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rekeyhq/rekey/rotation"
)

// Entry is one line of the audit log.
type Entry struct {
	Time       time.Time `json:"time"`
	Credential string    `json:"credential"`
	RotationID string    `json:"rotation_id"`
	Phase      string    `json:"phase"`
	OldKeyID   string    `json:"old_key_id,omitempty"`
	NewKeyID   string    `json:"new_key_id,omitempty"`
	// Sinks names the sinks written so far in this rotation.
	Sinks []string `json:"sinks"`
	// Outcome is the rotation's outcome (rotation.Phase.Outcome: "success",
	// "rollback" or "failure") for its last phase and InProgress before it.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// InProgress is the Outcome of an entry for a phase that is not the last.
const InProgress = "in_progress"

// EntryFor is the audit line of one durable phase change. Its Error is the
// transition's cause, or for the last phase, the rotation's recorded error.
func EntryFor(ev rotation.TransitionEvent) Entry {
	e := Entry{Time: ev.Transition.At, Credential: ev.Credential, RotationID: ev.RotationID, Phase: string(ev.Transition.Phase),
		OldKeyID: ev.OldKeyID, NewKeyID: ev.NewKeyID, Sinks: ev.Sinks, Outcome: ev.Transition.Phase.Outcome(), Error: ev.Transition.Error}
	if e.Outcome == "" {
		e.Outcome = InProgress
	} else if e.Error == "" {
		e.Error = ev.Error
	}
	return e
}

// Log appends entries to one file. It opens the file on the first Write,
// so that commands which rotate nothing never create it. It is safe for
// concurrent use.
type Log struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// New returns a Log writing to path; nothing is opened yet.
func New(path string) *Log { return &Log{path: path} }

// Path is the file the log appends to.
func (l *Log) Path() string { return l.path }

// Write appends e as one line and fsyncs the file. A line is written with
// a single write(2) on an O_APPEND descriptor, so concurrent rekey
// processes sharing the file never interleave within a line.
func (l *Log) Write(e Entry) error {
	if e.Sinks == nil {
		e.Sinks = []string{}
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if err := l.open(); err != nil {
			return err
		}
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", l.path, err)
	}
	return nil
}

func (l *Log) open() error {
	_, statErr := os.Stat(l.path)
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A new file's directory entry must be durable too.
		if err := syncDir(filepath.Dir(l.path)); err != nil {
			f.Close()
			return fmt.Errorf("audit: sync directory of %s: %w", l.path, err)
		}
	}
	l.f = f
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the file, if it was opened. The Log may not be used after.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Read decodes every entry from r, in file order. A torn last line (a crash
// mid-write) is ignored; any other malformed line is an error.
func Read(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var pending error
	n := 0
	for sc.Scan() {
		n++
		if pending != nil {
			return nil, pending
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pending = fmt.Errorf("audit: line %d: %w", n, err)
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rekeyhq/rekey/rotation"
)

// Lock takes the credential's lock: an exclusive flock(2) on
// <state file>.locks/<credential>.lock. flock locks belong to an open file
// description, and Lock opens the file afresh each time, so the lock
// excludes other processes and other Lock calls in this process alike. It
// returns a *rotation.BusyError (matching rotation.ErrBusy) at once if the
// lock is held, naming the holder.
//
// Once it holds the flock, Lock writes the holder (pid, host, time) into
// the lock file; a Lock that finds the lock busy reads it back. The record
// is advisory: a holder that has not yet written its own shows the
// previous holder's, or none.
// The lock is released by unlock (safe to call more than once) or by the
// process's death, so a crashed holder never leaves a stale lock. The file
// is opened close-on-exec, so hooks started while the lock is held do not
// inherit it. Lock files are left in place: removing one would let two
// holders lock different files of the same name.
func (s *Store) Lock(ctx context.Context, credential string) (unlock func(), err error) {
	if credential == "" {
		return nil, errors.New("sqlite: lock: credential is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", credential, err)
	}
	if err := os.MkdirAll(s.lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", credential, err)
	}
	path := filepath.Join(s.lockDir, lockFileName(credential))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // O_CLOEXEC is Go's default
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", credential, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("sqlite: lock: %w", &rotation.BusyError{Credential: credential, Holder: readHolder(path)})
		}
		return nil, fmt.Errorf("sqlite: lock %s: flock %s: %w", credential, path, err)
	}
	writeHolder(f)
	var once sync.Once
	return func() {
		once.Do(func() {
			// Closing the only descriptor releases the lock; LOCK_UN first
			// releases it even if the descriptor was somehow duplicated.
			_ = flock(f, unix.LOCK_UN)
			_ = f.Close()
		})
	}, nil
}

// writeHolder records this process as the lock's holder in its file. A
// failed write only loses the record.
func writeHolder(f *os.File) {
	host, _ := os.Hostname()
	b, err := json.Marshal(rotation.LockHolder{PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err != nil {
		return
	}
	if err := f.Truncate(0); err != nil {
		return
	}
	_, _ = f.WriteAt(append(b, '\n'), 0)
}

// readHolder reads the holder recorded in the lock file at path; nil if
// there is none or it cannot be read.
func readHolder(path string) *rotation.LockHolder {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var h rotation.LockHolder
	if json.Unmarshal(b, &h) != nil || h.PID <= 0 {
		return nil
	}
	return &h
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// lockFileName maps a credential name to a file name. Names made only of
// [A-Za-z0-9._-] (not starting with a dot) are used as they are, so an
// operator can find the file; any other name is reduced to those characters
// and suffixed with a hash of the full name, so distinct credentials never
// share a lock and no name escapes the locks directory.
func lockFileName(credential string) string {
	safe := len(credential) <= 128 && credential[0] != '.'
	var b strings.Builder
	for _, c := range credential {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			if b.Len() < 64 {
				b.WriteRune(c)
			}
		default:
			safe = false
			if b.Len() < 64 {
				b.WriteByte('_')
			}
		}
	}
	if safe {
		return credential + ".lock"
	}
	sum := sha256.Sum256([]byte(credential))
	return strings.TrimLeft(b.String(), ".") + "-" + hex.EncodeToString(sum[:8]) + ".lock"
}

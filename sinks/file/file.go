// Package file is the sink that keeps a key in a local file: one variable
// of a dotenv file, one top-level field of a JSON object, or a whole raw
// file. Every write goes through fsutil.WriteFile (temp file, fsync,
// rename, fsync of the directory), keeps the file's mode and owner, and
// leaves every other byte of the file as it was. Every read goes through
// fsutil.ReadRegular: the file must be a regular file (after following a
// symlink) of at most MaxFileSize bytes, and a FIFO or device at the path
// is refused without blocking and never replaced.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"

	"github.com/rekeyhq/rekey/internal/fsutil"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/sinks"
)

// MaxFileSize caps the file a Sink reads and rewrites: an env or JSON file
// is a few KiB, and the whole file is held in memory while one value in it
// is replaced.
const MaxFileSize = 16 << 20

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.Reader      = (*Sink)(nil)
	_ sinks.Preflighter = (*Sink)(nil)
)

// Sink writes a key into a file. It is a sinks.Reader but not a
// sinks.Rollbacker: a file keeps no versions, so the engine rolls it back
// by a Put of the old value from the journal.
//
// Receipts hold only what the file itself can vouch for: Version is the
// fingerprint of the value written (secret.Value.Fingerprint), Previous is
// always empty (no versions), and Created tells whether the variable,
// field or file held no value (absent or empty) before the write.
//
// Put is idempotent. A repeat of a Put this Sink made (same rotation ID
// and value, the file still holding the value) returns the first receipt
// and neither rewrites the file nor runs on_change again, unless on_change
// failed the first time, in which case it runs again. A Put that finds the
// file already holding the value but that this Sink did not make, as after
// a crash and restart, cannot know what the write replaced: it reports
// Created false (the conservative answer: the engine then restores the old
// value rather than assuming there was none) and runs on_change, since a
// crash may have come between the write and the hook, and a service that
// never reloaded would keep using the old key.
type Sink struct {
	path     string
	format   string
	key      string
	mode     os.FileMode
	onChange []string
	hideEnv  []string // variables on_change must not inherit; shared, read-only
	timeout  time.Duration
	name     string
	log      *zap.Logger
	now      func() time.Time

	mu   sync.Mutex
	last *putMemo // the last write this Sink made or adopted
}

type putMemo struct {
	receipt sinks.Receipt
	hookOK  bool // on_change has run successfully for this write
}

// Option configures a Sink beyond its Config entry.
type Option func(*Sink)

// WithoutEnv removes the named variables from the environment on_change
// runs with: the variables rekey reads its own secrets from
// (config.Config.SecretEnv), which a reload hook has no business seeing.
// The sink keeps names as given, without copying: the sinks of one config
// share one list, which must not change after.
func WithoutEnv(names ...string) Option {
	return func(s *Sink) {
		if len(s.hideEnv) == 0 {
			s.hideEnv = names
			return
		}
		s.hideEnv = slices.Concat(s.hideEnv, names)
	}
}

// New returns the sink for c, which it validates.
func New(c Config, log *zap.Logger, opts ...Option) (*Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	mode, _ := c.mode() // checked by Validate
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sink{
		path:     c.Path,
		format:   c.format(),
		key:      c.Key,
		mode:     mode,
		onChange: append([]string(nil), c.OnChange...),
		timeout:  c.onChangeTimeout(),
		now:      time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	s.name = "file:" + s.path
	if s.key != "" {
		s.name += "#" + s.key
	}
	s.log = log // the sink's name is added per line (logger): an idle sink holds no logger of its own
	return s, nil
}

func (s *Sink) logger() *zap.Logger { return s.log.With(zap.String("sink", s.name)) }

// Name is "file:PATH#KEY", or "file:PATH" for a raw file.
func (s *Sink) Name() string { return s.name }

// String names the sink; a Sink never holds a value between calls.
func (s *Sink) String() string { return s.name }

// GoString prints only the name, for %#v.
func (s *Sink) GoString() string { return "file.Sink(" + s.name + ")" }

// Put writes value into the file, creating it with the configured mode if
// it is missing (its directory must exist), then runs on_change. When
// on_change fails, the file has been written and Put returns the write's
// receipt together with the error; a retry reruns on_change without
// rewriting. A file that cannot be parsed (bad dotenv quoting, JSON that is
// not an object, a JSON field that holds neither a string nor null) is left
// untouched and reported as a permanent error, as are missing directories,
// a parent that is not a directory, dangling symlinks, permission problems,
// a path that is not a regular file (a FIFO or device is never replaced), a
// file over MaxFileSize, and an on_change command that cannot be found.
//
// As sinks.Sink requires, a permanent error means Put changed nothing: every
// permanent error comes before the file is replaced, and an error after it
// (on_change failing, the directory fsync failing) is never permanent, so
// the engine retries rather than treating the write as not having happened.
func (s *Sink) Put(ctx context.Context, value secret.Value, rotationID string) (sinks.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, fmt.Errorf("file: put %s: %w", s.name, err)
	}
	if value.IsZero() {
		return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("file: put %s: empty value", s.name))
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	// A missing command is found before anything is written, so that the
	// permanent error it gives changed nothing.
	if err := s.lookOnChange(); err != nil {
		return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("file: put %s: %w (file left unchanged)", s.name, err))
	}
	target, err := s.target()
	if err != nil {
		return sinks.Receipt{}, fmt.Errorf("file: put %s: %w", s.name, err)
	}
	data, err := fsutil.ReadRegular(target, MaxFileSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return sinks.Receipt{}, classify(fmt.Errorf("file: put %s: %w", s.name, explain(target, err)))
	}
	old, present, err := s.decode(data)
	agree := !errors.Is(err, errDisagree) // a dotenv variable assigned twice: the write sets both
	if err != nil && agree {
		return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("file: put %s: %w (file left unchanged)", s.name, err))
	}
	version := value.Fingerprint()

	if present && agree && old.Equal(value) {
		m := s.last
		if m == nil || m.receipt.RotationID != rotationID || m.receipt.Version != version {
			m = &putMemo{receipt: s.receipt(rotationID, version, false)}
			s.last = m
		}
		if !m.hookOK {
			if err := s.runOnChange(ctx, value); err != nil {
				return m.receipt, err
			}
			m.hookOK = true
		} else {
			s.logger().Debug("file already holds the value", zap.String("rotation_id", rotationID))
		}
		return m.receipt, nil
	}

	out, err := s.encode(data, value.Reveal())
	if err != nil {
		return sinks.Receipt{}, backoff.Permanent(fmt.Errorf("file: put %s: %w (file left unchanged)", s.name, err))
	}
	if err := fsutil.WriteFile(target, out, s.mode); err != nil {
		return sinks.Receipt{}, classify(fmt.Errorf("file: put %s: %w", s.name, secret.Scrub(explain(target, err), value, old)))
	}
	m := &putMemo{receipt: s.receipt(rotationID, version, !present)}
	s.last = m
	if err := s.runOnChange(ctx, value, old); err != nil {
		return m.receipt, err
	}
	m.hookOK = true
	return m.receipt, nil
}

func (s *Sink) receipt(rotationID, version string, created bool) sinks.Receipt {
	return sinks.Receipt{
		Sink:       s.name,
		RotationID: rotationID,
		Version:    version,
		Created:    created,
		At:         s.now().UTC(),
	}
}

// Get returns the value the file holds, or sinks.ErrNotFound when the file,
// the variable or the field is missing or empty. It never blocks on a FIFO
// or device at the path: that, a path that cannot exist (a parent is not a
// directory) and a file over MaxFileSize are permanent errors.
func (s *Sink) Get(ctx context.Context) (secret.Value, error) {
	if err := ctx.Err(); err != nil {
		return secret.Value{}, fmt.Errorf("file: get %s: %w", s.name, err)
	}
	target, err := s.target()
	if err != nil {
		return secret.Value{}, fmt.Errorf("file: get %s: %w", s.name, err)
	}
	data, err := fsutil.ReadRegular(target, MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return secret.Value{}, fmt.Errorf("file: get %s: %w", s.name, sinks.ErrNotFound)
	}
	if err != nil {
		return secret.Value{}, classify(fmt.Errorf("file: get %s: %w", s.name, explain(target, err)))
	}
	v, ok, err := s.decode(data)
	if err != nil {
		return secret.Value{}, backoff.Permanent(fmt.Errorf("file: get %s: %w", s.name, err))
	}
	if !ok {
		return secret.Value{}, fmt.Errorf("file: get %s: %w", s.name, sinks.ErrNotFound)
	}
	return v, nil
}

// Preflight checks, without writing, that the file (or, when it does not
// exist yet, its directory) is writable, that an existing file parses in
// the configured format, and that the on_change command can be found.
func (s *Sink) Preflight(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: preflight %s: %w", s.name, err)
	}
	target, err := s.target()
	if err != nil {
		return fmt.Errorf("file: preflight %s: %w", s.name, err)
	}
	dir := filepath.Dir(target)
	if err := syscall.Access(dir, accessWrite|accessSearch); err != nil { // the temp file is made there
		return backoff.Permanent(fmt.Errorf("file: preflight %s: directory %s: %w", s.name, dir, explain(target, err)))
	}
	data, err := fsutil.ReadRegular(target, MaxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return classify(fmt.Errorf("file: preflight %s: %w", s.name, explain(target, err)))
	default:
		if err := syscall.Access(target, accessWrite); err != nil {
			return backoff.Permanent(fmt.Errorf("file: preflight %s: %w", s.name, &fs.PathError{Op: "write", Path: target, Err: err}))
		}
		if _, _, err := s.decode(data); err != nil && !errors.Is(err, errDisagree) { // Put sets every assignment
			return backoff.Permanent(fmt.Errorf("file: preflight %s: %w", s.name, err))
		}
	}
	if err := s.lookOnChange(); err != nil {
		return backoff.Permanent(fmt.Errorf("file: preflight %s: %w", s.name, err))
	}
	return nil
}

// lookOnChange checks that the on_change command, if any, can be run.
func (s *Sink) lookOnChange() error {
	if len(s.onChange) == 0 {
		return nil
	}
	if _, err := exec.LookPath(s.onChange[0]); err != nil {
		return fmt.Errorf("on_change: %w", err)
	}
	return nil
}

// access(2) modes.
const (
	accessWrite  = 0x2 // W_OK
	accessSearch = 0x1 // X_OK
)

// target is the file to read and replace: the path itself, or, when the
// path is a symlink, the file it points to, so that the link survives.
func (s *Sink) target() (string, error) {
	fi, err := os.Lstat(s.path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return s.path, nil // a missing path is created; other errors surface on read
	}
	t, err := filepath.EvalSymlinks(s.path)
	if err != nil {
		return "", backoff.Permanent(fmt.Errorf("resolve symlink: %w", err))
	}
	return t, nil
}

// decode returns the value data holds; ok is false when it holds none. For
// a dotenv variable whose assignments disagree, err matches errDisagree and
// v is the last assignment's value (the one shells honour).
func (s *Sink) decode(data []byte) (v secret.Value, ok bool, err error) {
	switch s.format {
	case FormatRaw:
		str := strings.TrimSuffix(string(data), "\n")
		str = strings.TrimSuffix(str, "\r")
		return secret.New(str), str != "", nil
	case FormatJSON:
		str, ok, err := getJSON(data, s.key)
		if err != nil {
			return secret.Value{}, false, fmt.Errorf("json: %w", err)
		}
		return secret.New(str), ok, nil
	default:
		as, err := parseDotenv(data)
		if err != nil {
			return secret.Value{}, false, fmt.Errorf("dotenv: %w", err)
		}
		str, _, err := getDotenv(as, s.key)
		if err != nil {
			err = fmt.Errorf("dotenv: %w", err)
		}
		return secret.New(str), str != "", err
	}
}

// encode returns data with the value set.
func (s *Sink) encode(data []byte, value string) ([]byte, error) {
	switch s.format {
	case FormatRaw:
		return []byte(value + "\n"), nil
	case FormatJSON:
		out, err := setJSON(data, s.key, value)
		if err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		return out, nil
	default:
		out, err := setDotenv(data, s.key, value)
		if err != nil {
			return nil, fmt.Errorf("dotenv: %w", err)
		}
		return out, nil
	}
}

// classify marks file-system errors no retry can fix as permanent. An
// error that came after the file was replaced is never permanent: a
// permanent error must mean nothing changed.
func classify(err error) error {
	if errors.Is(err, fsutil.ErrSyncDir) {
		return err
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, fsutil.ErrNotRegular) || errors.Is(err, fsutil.ErrTooLarge) {
		return backoff.Permanent(err)
	}
	return err
}

// explain turns ENOTDIR, which says only "not a directory", into an error
// naming the component that is not one: the path cannot exist until it is
// fixed.
func explain(path string, err error) error {
	if !errors.Is(err, syscall.ENOTDIR) {
		return err
	}
	for p := filepath.Dir(path); p != filepath.Dir(p); p = filepath.Dir(p) {
		if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() {
			return &cannotExistError{path: path, parent: p}
		}
	}
	return err
}

// cannotExistError is ENOTDIR with the component that caused it.
type cannotExistError struct{ path, parent string }

func (e *cannotExistError) Error() string {
	return e.path + " cannot exist: " + e.parent + " is not a directory"
}

func (e *cannotExistError) Unwrap() error { return syscall.ENOTDIR }

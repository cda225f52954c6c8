// Package fsutil holds the one durable-write helper every file writer uses
// and the one bounded, non-blocking read helper every file reader uses.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with data atomically and durably: it writes a
// temporary file in the same directory, fsyncs it, renames it over path and
// fsyncs the directory. A crash leaves either the old or the new contents,
// never a mix. If path exists, its mode and (when running as root) owner are
// kept; otherwise perm is used. An existing path that is not a regular file
// (a FIFO, device, directory or socket, after following symlinks) is never
// replaced: the error matches ErrNotRegular and nothing is changed. An error
// matching ErrSyncDir means the file was replaced but the directory fsync
// failed; every other error means nothing was changed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return &fs.PathError{Op: "replace", Path: path, Err: notRegular(fi.Mode())}
		}
		perm = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return fmt.Errorf("keep owner of %s: %w", path, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("%w %s after replacing %s: %w", ErrSyncDir, dir, path, err)
	}
	return nil
}

// ErrSyncDir is matched by a WriteFile error that came after the file was
// replaced: the new contents are in place but may not survive a crash.
var ErrSyncDir = errors.New("sync directory")

// SyncDir fsyncs a directory so that a rename or create inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

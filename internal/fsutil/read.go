package fsutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is matched (errors.Is) by the error ReadRegular returns for
// a path that is, after following symlinks, not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is matched (errors.Is) by the error ReadRegular returns for a
// file over its size cap.
var ErrTooLarge = errors.New("file too large")

// ReadRegular reads the regular file at path, following symlinks, and
// refuses anything else without ever blocking: the open is non-blocking, so
// a named pipe with no writer cannot hang it, and the opened file is
// checked with fstat before a byte is read. A FIFO, device, directory or
// socket gives an *fs.PathError matching ErrNotRegular that names what the
// path is ("read /p: is a named pipe (FIFO), not a regular file"). A file
// larger than max bytes gives one matching ErrTooLarge; at most max+1 bytes
// are ever read, so a file that grows while it is read (or that reports no
// size, as in /proc) is refused too. Errors never hold the file's contents;
// a missing file gives an error matching fs.ErrNotExist.
func ReadRegular(path string, max int64) ([]byte, error) {
	f, fi, err := OpenRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: tooLarge(max)}
	}
	var buf bytes.Buffer
	buf.Grow(int(min(fi.Size(), max)) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: unwrapPath(err)}
	}
	if int64(buf.Len()) > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: tooLarge(max)}
	}
	return buf.Bytes(), nil
}

// OpenRegular opens the regular file at path, following symlinks, with
// flag (os.O_RDONLY, os.O_RDWR; never O_CREATE), and refuses anything else
// without blocking: a stat before the open keeps device nodes from being
// opened at all (opening some has side effects), the open is non-blocking
// so a named pipe with no writer cannot hang it, and the fstat after it
// catches a path swapped in between. A FIFO, device, directory or socket
// gives an *fs.PathError matching ErrNotRegular that names what the path is.
// The file's descriptor is left non-blocking, which regular files ignore.
func OpenRegular(path string, flag int) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: notRegular(fi.Mode())}
	}
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: notRegular(fi.Mode())}
	}
	return f, fi, nil
}

// unwrapPath drops the *fs.PathError a read error already is, so the path is
// not named twice.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// notRegular is what a non-regular file is.
type notRegular fs.FileMode

func (m notRegular) Error() string {
	return describe(fs.FileMode(m)) + ", not a regular file"
}

func (notRegular) Is(target error) bool { return target == ErrNotRegular }

// describe says what kind of file mode is, for errors: "is a named pipe
// (FIFO)", "is a character device", "is a directory", ...
func describe(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "is a regular file"
	case mode&fs.ModeNamedPipe != 0:
		return "is a named pipe (FIFO)"
	case mode&fs.ModeCharDevice != 0:
		return "is a character device"
	case mode&fs.ModeDevice != 0:
		return "is a block device"
	case mode.IsDir():
		return "is a directory"
	case mode&fs.ModeSocket != 0:
		return "is a socket"
	case mode&fs.ModeSymlink != 0:
		return "is a symbolic link"
	}
	return "is not a regular file"
}

type tooLarge int64

func (n tooLarge) Error() string {
	return fmt.Sprintf("larger than the %s limit", size(int64(n)))
}

func (tooLarge) Is(target error) bool { return target == ErrTooLarge }

// size formats n bytes for messages: "64 KiB", "16 MiB", "100 bytes".
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

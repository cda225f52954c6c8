package rotation

import (
	"fmt"
	"time"
)

// LockHolder is who holds a credential's lock, as far as the Store knows.
type LockHolder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// BusyError is ErrBusy with the lock's holder, when the Store recorded it:
// errors.Is(err, ErrBusy) holds for it, and errors.As finds the holder.
type BusyError struct {
	Credential string
	// Holder is nil when the Store does not know who holds the lock.
	Holder *LockHolder
}

func (e *BusyError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("rotation: %s is busy: another rekey holds its lock", e.Credential)
	}
	return fmt.Sprintf("rotation: %s is busy: its lock is held by %s", e.Credential, e.Holder)
}

// Unwrap makes the error match ErrBusy.
func (e *BusyError) Unwrap() error { return ErrBusy }

// String names the holder for a person: "pid 4242 on host-a since
// 2026-12-01 03:04:05 UTC".
func (h *LockHolder) String() string {
	return fmt.Sprintf("pid %d on %s since %s", h.PID, h.Host, h.Since.UTC().Format("2006-01-02 15:04:05 UTC"))
}

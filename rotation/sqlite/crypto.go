package sqlite

import (
	"fmt"

	"github.com/rekeyhq/rekey/rotation/journalcrypto"
)

// KeySize is the length of the journal's AES-256 key in bytes.
const KeySize = journalcrypto.KeySize

// DecodeKey decodes the journal's encryption key from base64 (see
// journalcrypto.DecodeKey). Errors never echo the input.
func DecodeKey(s string) ([]byte, error) {
	key, err := journalcrypto.DecodeKey(s)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return key, nil
}

// sealer is the journal's journalcrypto.Sealer: values sealed with
// AES-256-GCM bound to one field of one row, and every row authenticated
// whole by an HMAC over all its columns (rowMAC).
type sealer struct{ s *journalcrypto.Sealer }

func newSealer(key []byte) (*sealer, error) {
	s, err := journalcrypto.New(key)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &sealer{s}, nil
}

// row is one rotations row exactly as stored: the columns a row MAC covers.
// Times are nil (NULL) or int64 Unix nanoseconds.
type row struct {
	credential, id, phase      string
	started, updated, finished any
	record                     string
	oldEnc, newEnc             []byte
}

func (r *row) shared() *journalcrypto.Row {
	return &journalcrypto.Row{Credential: r.credential, ID: r.id, Phase: r.phase,
		Started: r.started, Updated: r.updated, Finished: r.finished,
		Record: r.record, OldEnc: r.oldEnc, NewEnc: r.newEnc}
}

// rowMAC returns the HMAC-SHA256 of every column of r (journalcrypto's
// Sealer.MAC), so that a change to any column, or a column moved to
// another row, fails to verify.
func (s *sealer) rowMAC(r *row) ([]byte, error) { return s.s.MAC(r.shared()) }

// verifyRow reports whether mac is r's row MAC.
func (s *sealer) verifyRow(r *row, mac []byte) bool { return s.s.Verify(r.shared(), mac) }

// valueAAD is the additional data of a rotation's old or new value.
func valueAAD(credential, id, field string) []byte {
	return journalcrypto.ValueAAD(credential, id, field)
}

// keyCheckAAD and keyCheckPlain make the key-check row; opening it proves
// the key is the journal's. Schema 1 journals hold the v1 check; the upgrade
// to schema 2 (rows authenticated whole) replaces it with the v2 check, so a
// journal made to look like schema 1 again (to have edited rows re-MACed by
// the upgrade) is refused unless it carries a v1 check from before its
// upgrade.
var (
	keyCheckAAD   = []byte("rekey/v1|key-check")
	keyCheckPlain = []byte("rekey journal key check v1")

	keyCheckAADv2   = []byte("rekey/v2|key-check")
	keyCheckPlainv2 = []byte("rekey journal key check v2")
)

func (s *sealer) seal(plain, aad []byte) ([]byte, error) { return s.s.Seal(plain, aad) }

func (s *sealer) open(blob, aad []byte) ([]byte, error) { return s.s.Open(blob, aad) }

// checks reports whether blob is a key check of plain under aad.
func (s *sealer) checks(blob, plain, aad []byte) bool { return s.s.Checks(blob, plain, aad) }

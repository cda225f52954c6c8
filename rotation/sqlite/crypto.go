package sqlite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// KeySize is the length of the journal's AES-256 key in bytes.
const KeySize = 32

// DecodeKey decodes the journal's encryption key from base64 (standard or
// URL alphabet, padded or not; surrounding whitespace, such as a key file's
// trailing newline, is ignored). The key must decode to exactly KeySize
// bytes. Errors never echo the input.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("sqlite: encryption key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("sqlite: encryption key decodes to %d bytes, want %d", len(key), KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("sqlite: encryption key is not valid base64 (want %d random bytes, e.g. from `head -c %d /dev/urandom | base64`)", KeySize, KeySize)
}

// sealer encrypts key values for the journal with AES-256-GCM and
// authenticates whole rows with HMAC-SHA256. Every value blob is a random
// 12-byte nonce followed by the ciphertext and tag; the additional data binds
// it to one field of one row, so a blob copied elsewhere fails to open. The
// row MAC (see rowMAC) covers every column of a row, the value blobs
// included, under a key derived from the journal key with HKDF, so no key is
// used for two purposes.
type sealer struct {
	aead   cipher.AEAD
	macKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sqlite: encryption key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encryption key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, rowMACInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encryption key: %w", err)
	}
	return &sealer{aead: aead, macKey: macKey}, nil
}

// rowMACInfo is the HKDF info of the row MAC key.
const rowMACInfo = "rekey/v2|row-mac"

// row is one rotations row exactly as stored: the columns a row MAC covers.
// Times are nil (NULL) or int64 Unix nanoseconds.
type row struct {
	credential, id, phase      string
	started, updated, finished any
	record                     string
	oldEnc, newEnc             []byte
}

// rowMAC returns the HMAC-SHA256 of a canonical encoding of every column of
// r: a domain string, then each column length-prefixed (times as a NULL flag
// and 8 bytes), so that no two different rows encode alike and a change to
// any column, or a column moved to another row, fails to verify.
func (s *sealer) rowMAC(r *row) ([]byte, error) {
	h := hmac.New(sha256.New, s.macKey)
	h.Write([]byte("rekey/v2|row"))
	for _, b := range [][]byte{[]byte(r.credential), []byte(r.id), []byte(r.phase)} {
		writeField(h, b)
	}
	for _, t := range []any{r.started, r.updated, r.finished} {
		var buf [9]byte
		switch t := t.(type) {
		case nil:
		case int64:
			buf[0] = 1
			binary.BigEndian.PutUint64(buf[1:], uint64(t))
		default:
			return nil, fmt.Errorf("time column holds %T, not an integer", t)
		}
		h.Write(buf[:])
	}
	for _, b := range [][]byte{[]byte(r.record), r.oldEnc, r.newEnc} {
		writeField(h, b)
	}
	return h.Sum(nil), nil
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// verifyRow reports whether mac is r's row MAC.
func (s *sealer) verifyRow(r *row, mac []byte) bool {
	want, err := s.rowMAC(r)
	return err == nil && hmac.Equal(mac, want)
}

// valueAAD is the additional data of a rotation's old or new value.
func valueAAD(credential, id, field string) []byte {
	return []byte("rekey/v1|" + credential + "|" + id + "|" + field)
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

func (s *sealer) seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, aad), nil
}

// errOpen is deliberately vague: GCM cannot tell a wrong key from a
// tampered or misplaced blob.
var errOpen = errors.New("authentication failed (wrong key, or the stored value was altered or moved)")

func (s *sealer) open(blob, aad []byte) ([]byte, error) {
	if blob == nil {
		return nil, errors.New("value is missing")
	}
	n := s.aead.NonceSize()
	if len(blob) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("value is truncated (%d bytes)", len(blob))
	}
	plain, err := s.aead.Open(nil, blob[:n], blob[n:], aad)
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// checks reports whether blob is a key check of plain under aad.
func (s *sealer) checks(blob, plain, aad []byte) bool {
	got, err := s.open(blob, aad)
	return err == nil && hmac.Equal(got, plain)
}

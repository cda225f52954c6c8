// Package journalcrypto is the cryptography every journal back-end shares:
// the journal key's decoding, AES-256-GCM sealing of key values bound to one
// field of one record, and the HMAC-SHA256 that authenticates a record
// whole under a key derived from the journal key with HKDF, so no key is
// used for two purposes.
//
// The encodings here are on disk in every SQLite journal and in every etcd
// journal: changing one makes every existing record unreadable.
package journalcrypto

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
// bytes. Errors never echo the input and carry no package prefix: the
// back-end that calls it adds its own.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("encryption key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("encryption key decodes to %d bytes, want %d", len(key), KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("encryption key is not valid base64 (want %d random bytes, e.g. from `head -c %d /dev/urandom | base64`)", KeySize, KeySize)
}

// Sealer encrypts key values with AES-256-GCM and authenticates whole
// records with HMAC-SHA256. Every value blob is a random 12-byte nonce
// followed by the ciphertext and tag; the additional data (see ValueAAD)
// binds it to one field of one record, so a blob copied elsewhere fails to
// open. The record MAC (see MAC) covers every field of a record, the value
// blobs included. A Sealer is safe for concurrent use.
type Sealer struct {
	aead   cipher.AEAD
	macKey []byte
}

// New returns the Sealer of a KeySize-byte journal key. Errors carry no
// package prefix.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, rowMACInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &Sealer{aead: aead, macKey: macKey}, nil
}

// rowMACInfo is the HKDF info of the record MAC key.
const rowMACInfo = "rekey/v2|row-mac"

// Row is one record exactly as a back-end stores it: the fields a record
// MAC covers. Times are nil (none) or int64 Unix nanoseconds; Record is the
// record's plain fields as JSON; OldEnc and NewEnc are sealed values.
type Row struct {
	Credential, ID, Phase      string
	Started, Updated, Finished any
	Record                     string
	OldEnc, NewEnc             []byte
}

// MAC returns the HMAC-SHA256 of a canonical encoding of every field of r:
// a domain string, then each field length-prefixed (times as a none flag
// and 8 bytes), so that no two different rows encode alike and a change to
// any field, or a field moved to another row, fails to verify. It fails only
// on a time that is neither nil nor an int64.
func (s *Sealer) MAC(r *Row) ([]byte, error) {
	h := hmac.New(sha256.New, s.macKey)
	h.Write([]byte("rekey/v2|row"))
	for _, b := range [][]byte{[]byte(r.Credential), []byte(r.ID), []byte(r.Phase)} {
		writeField(h, b)
	}
	for _, t := range []any{r.Started, r.Updated, r.Finished} {
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
	for _, b := range [][]byte{[]byte(r.Record), r.OldEnc, r.NewEnc} {
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

// Verify reports whether mac is r's record MAC.
func (s *Sealer) Verify(r *Row, mac []byte) bool {
	want, err := s.MAC(r)
	return err == nil && hmac.Equal(mac, want)
}

// ValueAAD is the additional data of a rotation's old or new value (field
// "old" or "new").
func ValueAAD(credential, id, field string) []byte {
	return []byte("rekey/v1|" + credential + "|" + id + "|" + field)
}

// Seal encrypts plain bound to aad, under a fresh random nonce.
func (s *Sealer) Seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, aad), nil
}

// ErrOpen is deliberately vague: GCM cannot tell a wrong key from a
// tampered or misplaced blob.
var ErrOpen = errors.New("authentication failed (wrong key, or the stored value was altered or moved)")

// Open decrypts a blob Seal made under the same aad. Its errors name no
// value.
func (s *Sealer) Open(blob, aad []byte) ([]byte, error) {
	if blob == nil {
		return nil, errors.New("value is missing")
	}
	n := s.aead.NonceSize()
	if len(blob) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("value is truncated (%d bytes)", len(blob))
	}
	plain, err := s.aead.Open(nil, blob[:n], blob[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Checks reports whether blob is a key check of plain under aad: a known
// plain text sealed when the journal was made, proving a key is its key.
func (s *Sealer) Checks(blob, plain, aad []byte) bool {
	got, err := s.Open(blob, aad)
	return err == nil && hmac.Equal(got, plain)
}

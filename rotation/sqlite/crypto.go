package sqlite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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

// sealer encrypts key values for the journal with AES-256-GCM. Every blob is
// a random 12-byte nonce followed by the ciphertext and tag; the additional
// data binds it to one field of one row, so a blob copied elsewhere fails to
// open.
type sealer struct {
	aead cipher.AEAD
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
	return &sealer{aead: aead}, nil
}

// valueAAD is the additional data of a rotation's old or new value.
func valueAAD(credential, id, field string) []byte {
	return []byte("rekey/v1|" + credential + "|" + id + "|" + field)
}

// keyCheckAAD and keyCheckPlain make the key-check row written when the
// journal is created; opening it proves the key is the journal's.
var (
	keyCheckAAD   = []byte("rekey/v1|key-check")
	keyCheckPlain = []byte("rekey journal key check v1")
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

// Package secrets owns the encryption at rest of the host's secrets, chiefly
// connection configs (API keys, OAuth tokens). A Box seals with AES-256-GCM;
// the additional authenticated data binds a ciphertext to the row it belongs
// to, so a ciphertext copied to another row does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// version1 is the first byte of every ciphertext sealed with the current
// scheme (AES-256-GCM, 12-byte random nonce). A later key or scheme gets a new
// version byte, so old ciphertexts stay readable during a rotation.
const version1 byte = 1

const nonceSize = 12

// ErrOpen is returned when a ciphertext does not open: it was tampered with,
// sealed with another key, or sealed for another AAD.
var ErrOpen = errors.New("secrets: ciphertext does not open (tampered, wrong key or wrong row)")

// ParseKey decodes a 32-byte key given as standard or URL-safe base64 (with
// or without padding) or as 64 hexadecimal characters.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secrets: key is empty: give 32 random bytes as base64 or 64 hex characters (for example: openssl rand -base64 32)")
	}
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KeySize {
			return nil, fmt.Errorf("secrets: key decodes to %d bytes, want %d (for example: openssl rand -base64 32)", len(b), KeySize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("secrets: key is neither base64 nor 64 hex characters: give 32 random bytes (for example: openssl rand -base64 32)")
}

// Box seals and opens secrets with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: new cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("secrets: new gcm: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad. The result is
// version byte || 12-byte random nonce || GCM ciphertext and tag.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+b.aead.Overhead())
	out[0] = version1
	if _, err := rand.Read(out[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("secrets: random nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:1+nonceSize], plaintext, aad), nil
}

// Open decrypts a ciphertext made by Seal with the same aad. Any change to
// the ciphertext, another key or another aad gives ErrOpen.
func (b *Box) Open(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < 1+nonceSize+b.aead.Overhead() {
		return nil, fmt.Errorf("secrets: ciphertext is too short (%d bytes): %w", len(ciphertext), ErrOpen)
	}
	if ciphertext[0] != version1 {
		return nil, fmt.Errorf("secrets: unknown ciphertext version %d: %w", ciphertext[0], ErrOpen)
	}
	nonce := ciphertext[1 : 1+nonceSize]
	plain, err := b.aead.Open(nil, nonce, ciphertext[1+nonceSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Package auth owns the credentials of users: password rules and bcrypt
// hashing, and bearer tokens (session and API) of which only a SHA-256 hash is
// ever stored.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Password rules. bcrypt only reads the first 72 bytes of a password, so a
// longer one is refused rather than silently truncated.
const (
	MinPasswordChars = 10
	MaxPasswordBytes = 72
)

// DefaultCost is the bcrypt cost used in production.
const DefaultCost = 12

// TokenPrefix starts every bearer token Synchron issues, so a leaked token is
// recognisable by secret scanners.
const TokenPrefix = "syn_"

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// PasswordError says why a password is refused, in words for the user.
type PasswordError struct{ Reason string }

func (e *PasswordError) Error() string { return e.Reason }

// ValidatePassword checks the password rules.
func ValidatePassword(password string) error {
	if !utf8.ValidString(password) {
		return &PasswordError{Reason: "password must be valid UTF-8 text"}
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordChars {
		return &PasswordError{Reason: fmt.Sprintf("password is too short: use at least %d characters", MinPasswordChars)}
	}
	if len(password) > MaxPasswordBytes {
		return &PasswordError{Reason: fmt.Sprintf("password is too long: use at most %d bytes", MaxPasswordBytes)}
	}
	if strings.TrimSpace(password) == "" {
		return &PasswordError{Reason: "password cannot be only spaces"}
	}
	return nil
}

// Hasher hashes and verifies passwords with bcrypt at one cost.
type Hasher struct {
	cost int
	// dummy is a hash at the same cost, compared against when a login names an
	// unknown email so that the answer takes as long as for a known one.
	dummy []byte
}

// NewHasher returns a Hasher with the given bcrypt cost (0: DefaultCost).
// Tests use bcrypt.MinCost.
func NewHasher(cost int) (*Hasher, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d out of range %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("synchron-dummy-password"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return &Hasher{cost: cost, dummy: dummy}, nil
}

// Hash validates the password rules and returns the bcrypt hash.
func (h *Hasher) Hash(password string) (string, error) {
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), h.cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(b), nil
}

// Verify reports whether password matches hash. An empty hash (unknown user)
// still costs one bcrypt comparison and answers false.
func (h *Hasher) Verify(hash, password string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// NewToken returns a new bearer token ("syn_" and 32 random bytes in
// base64url) and the SHA-256 hash under which it is stored.
func NewToken() (token string, hash []byte, err error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("auth: random token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// ErrMalformedToken is returned by ParseBearer for a value that cannot be a
// Synchron token.
var ErrMalformedToken = errors.New("auth: malformed token")

// ParseBearer extracts the token of an Authorization header value
// ("Bearer syn_...").
func ParseBearer(header string) (string, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformedToken
	}
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 200 {
		return "", ErrMalformedToken
	}
	return token, nil
}

// HashToken is the SHA-256 of a token: what the database stores and looks
// tokens up by. A lookup by hash needs no constant-time compare.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

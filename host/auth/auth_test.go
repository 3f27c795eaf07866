package auth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/synchron-io/synchron/host/auth"
)

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		password string
		wantErr  string
	}{
		"ok":                    {password: "correct horse"},
		"exactly 10":            {password: "0123456789"},
		"10 multibyte chars":    {password: "éééééééééé"},
		"9 chars":               {password: "012345678", wantErr: "at least 10 characters"},
		"empty":                 {password: "", wantErr: "at least 10 characters"},
		"72 bytes":              {password: strings.Repeat("a", 72)},
		"73 bytes":              {password: strings.Repeat("a", 73), wantErr: "at most 72 bytes"},
		"37 two-byte runes":     {password: strings.Repeat("é", 37), wantErr: "at most 72 bytes"},
		"spaces only":           {password: strings.Repeat(" ", 12), wantErr: "only spaces"},
		"invalid utf-8":         {password: "abcdefghij\xff", wantErr: "UTF-8"},
		"leading spaces are ok": {password: "   abcdefghij"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := auth.ValidatePassword(tc.password)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidatePassword: %v", err)
				}
				return
			}
			var pe *auth.PasswordError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ValidatePassword error = %v, want a PasswordError containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestHasher(t *testing.T) {
	t.Parallel()
	h, err := auth.NewHasher(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hash, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != bcrypt.MinCost {
		t.Fatalf("cost = %d, want %d", cost, bcrypt.MinCost)
	}
	if !h.Verify(hash, "correct horse battery") {
		t.Fatal("Verify refused the right password")
	}
	if h.Verify(hash, "correct horse batterY") {
		t.Fatal("Verify accepted a wrong password")
	}
	if h.Verify("", "correct horse battery") {
		t.Fatal("Verify accepted an empty hash")
	}
	if _, err := h.Hash("short"); err == nil {
		t.Fatal("Hash accepted a short password")
	}
}

func TestNewHasherCost(t *testing.T) {
	t.Parallel()
	if _, err := auth.NewHasher(bcrypt.MaxCost + 1); err == nil {
		t.Fatal("NewHasher accepted a cost above the maximum")
	}
	if _, err := auth.NewHasher(1); err == nil {
		t.Fatal("NewHasher accepted a cost below the minimum")
	}
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	tok, hash, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "syn_") {
		t.Fatalf("token %q lacks the syn_ prefix", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "syn_"))
	if err != nil || len(raw) != 32 {
		t.Fatalf("token body is not 32 bytes of base64url: %v (%d bytes)", err, len(raw))
	}
	want := sha256.Sum256([]byte(tok))
	if !bytes.Equal(hash, want[:]) || !bytes.Equal(auth.HashToken(tok), want[:]) {
		t.Fatal("hash is not the sha256 of the token")
	}
	tok2, _, _ := auth.NewToken()
	if tok == tok2 {
		t.Fatal("two tokens are equal")
	}
}

func TestParseBearer(t *testing.T) {
	t.Parallel()
	testCases := map[string]struct {
		header, want string
	}{
		"ok":             {header: "Bearer syn_abc", want: "syn_abc"},
		"case-insensive": {header: "bearer  syn_abc ", want: "syn_abc"},
		"basic":          {header: "Basic syn_abc"},
		"no prefix":      {header: "Bearer abc"},
		"empty":          {header: ""},
		"no token":       {header: "Bearer"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := auth.ParseBearer(tc.header)
			if tc.want == "" {
				if !errors.Is(err, auth.ErrMalformedToken) {
					t.Fatalf("ParseBearer(%q) = %q, %v; want ErrMalformedToken", tc.header, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q", tc.header, got, err, tc.want)
			}
		})
	}
}

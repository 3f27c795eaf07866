package secrets_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/synchron-io/synchron/host/secrets"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newBox(t *testing.T) *secrets.Box {
	t.Helper()
	b, err := secrets.New(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:32] // has '+' '/' in std base64 and '-' '_' in url base64
	testCases := map[string]struct {
		in      string
		wantErr string
	}{
		"std base64":        {in: base64.StdEncoding.EncodeToString(key)},
		"url base64":        {in: base64.URLEncoding.EncodeToString(key)},
		"raw std base64":    {in: base64.RawStdEncoding.EncodeToString(key)},
		"raw url base64":    {in: base64.RawURLEncoding.EncodeToString(key)},
		"hex":               {in: hex.EncodeToString(key)},
		"hex upper, spaces": {in: "  " + strings.ToUpper(hex.EncodeToString(key)) + "\n"},
		"empty":             {in: "", wantErr: "key is empty"},
		"short base64":      {in: base64.StdEncoding.EncodeToString(key[:16]), wantErr: "decodes to 16 bytes, want 32"},
		"garbage":           {in: "not a key!", wantErr: "neither base64 nor 64 hex"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := secrets.ParseKey(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseKey(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tc.in, err)
			}
			if !bytes.Equal(got, key) {
				t.Fatalf("ParseKey(%q) = %x, want %x", tc.in, got, key)
			}
		})
	}
}

func TestNewRejectsBadKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := secrets.New(make([]byte, n)); err == nil {
			t.Errorf("New(%d-byte key) succeeded, want an error", n)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	for _, plain := range [][]byte{nil, []byte(`{"api_key":"s3cr3t"}`), bytes.Repeat([]byte("x"), 1<<16)} {
		ct, err := b.Seal(plain, []byte("con_1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) > 0 && bytes.Contains(ct, plain) {
			t.Fatal("ciphertext contains the plaintext")
		}
		if ct[0] != 1 {
			t.Fatalf("version byte = %d, want 1", ct[0])
		}
		got, err := b.Open(ct, []byte("con_1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	x, _ := b.Seal([]byte("same"), []byte("a"))
	y, _ := b.Seal([]byte("same"), []byte("a"))
	if bytes.Equal(x, y) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	b := newBox(t)
	other := newBox(t)
	ct, err := b.Seal([]byte(`{"token":"abc"}`), []byte("con_1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	testCases := map[string]struct {
		box *secrets.Box
		ct  []byte
		aad string
	}{
		"wrong aad (moved to another row)": {box: b, ct: ct, aad: "con_2"},
		"empty aad":                        {box: b, ct: ct, aad: ""},
		"wrong key":                        {box: other, ct: ct, aad: "con_1"},
		"tampered version":                 {box: b, ct: flip(0), aad: "con_1"},
		"tampered nonce":                   {box: b, ct: flip(3), aad: "con_1"},
		"tampered body":                    {box: b, ct: flip(14), aad: "con_1"},
		"tampered tag":                     {box: b, ct: flip(len(ct) - 1), aad: "con_1"},
		"truncated":                        {box: b, ct: ct[:len(ct)-1], aad: "con_1"},
		"too short":                        {box: b, ct: ct[:5], aad: "con_1"},
		"empty":                            {box: b, ct: nil, aad: "con_1"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.box.Open(tc.ct, []byte(tc.aad))
			if !errors.Is(err, secrets.ErrOpen) {
				t.Fatalf("Open error = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Fatalf("Open returned plaintext %q with an error", got)
			}
		})
	}
}

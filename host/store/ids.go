package store

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// ID prefixes: an id says what it names.
const (
	PrefixAccount    = "acc_"
	PrefixUser       = "usr_"
	PrefixToken      = "tok_"
	PrefixConnection = "con_"
	PrefixWorkflow   = "wf_"
	PrefixRun        = "run_"
	PrefixLink       = "lnk_"
	// PrefixPendingDelete names a deletion waiting for approval.
	PrefixPendingDelete = "del_"
	PrefixNotification  = "ntf_"
	// PrefixWebhookEvent names a received webhook delivery.
	PrefixWebhookEvent = "whe_"
)

const idChars = 20 // 100 random bits

// NewID returns prefix followed by 20 random lowercase base32 characters.
func NewID(prefix string) string {
	var b [13]byte // 104 bits, encodes to 21 characters
	// crypto/rand.Read never fails (it panics on a broken system source).
	_, _ = rand.Read(b[:])
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	return prefix + strings.ToLower(enc[:idChars])
}

// ConnectionAAD is the additional authenticated data a connection's config is
// sealed with: its id, so a ciphertext copied to another row does not open.
func ConnectionAAD(connectionID string) []byte { return []byte(connectionID) }

package agentapi

import (
	"crypto/rand"
	"encoding/hex"
)

// newCommandID returns a fresh command ID, "c-" and 12 hex digits.
func newCommandID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "c-" + hex.EncodeToString(b[:])
}

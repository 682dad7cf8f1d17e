package controlapi

import (
	"crypto/rand"
	"encoding/hex"
)

// newID returns prefix and 12 hex digits from crypto/rand. IDs are made
// here, before proposing, never in the FSM (determinism).
func newID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + hex.EncodeToString(b[:])
}

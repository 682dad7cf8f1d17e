//go:build !linux

package worker

import (
	"os"
	"time"
)

// exitAtDeadline ends the worker process with code at deadline. Workers
// carry faults on Linux only; elsewhere a runtime timer is close enough.
// The lease is not checked there.
func exitAtDeadline(deadline time.Time, code int, _ func() bool) {
	time.AfterFunc(time.Until(deadline), func() { os.Exit(code) })
}

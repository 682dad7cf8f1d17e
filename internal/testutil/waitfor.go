package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms until it returns true or timeout passes,
// then fails t with what cond last said. Use it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, last)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

package tlsutil

import (
	"testing"

	"go.uber.org/goleak"
)

// ReloadOnSIGHUP runs a goroutine; its stop must end it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

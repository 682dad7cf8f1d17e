package agent

import (
	"log/slog"
	"testing"
)

// slogFor logs through the test's output, shown only on failure or -v.
func slogFor(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

package main

import (
	"log/slog"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/internal/sdnotify"
)

// useSystemd makes the agent tell systemd when it is ready, alive and
// stopping (the unit is Type=notify, packaging/systemd). The enforcement
// loop runs every second (agent.Config.EnforceInterval), or more often if
// the watchdog wants a ping sooner; outside systemd everything it adds is
// a no-op.
func useSystemd(cfg *agent.Config, logger *slog.Logger) {
	n := sdnotify.New(logger)
	cfg.Notify = n
	if w := n.WatchdogInterval(); w > 0 && w < time.Second {
		cfg.EnforceInterval = w
	}
}

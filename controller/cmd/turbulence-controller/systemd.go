package main

import (
	"context"
	"log/slog"

	"github.com/turbulence-sre/turbulence/internal/sdnotify"
)

// notifySystemd tells systemd (Type=notify, packaging/systemd) that the
// controller serves: call it once controller.New has bound the gRPC and
// raft listeners and Run has been started, so that a client that
// connects from here on is answered. It says STOPPING=1 when ctx ends,
// as the controller begins its orderly stop; the function it returns
// waits until that is said, so that a stop quicker than the goroutine
// never exits unannounced (call it once ctx has ended). Outside systemd
// it does nothing.
//
// There is no watchdog: the controller enforces no deadline itself (the
// agents do, and revert on their own when the lease runs out, invariant
// 2), so a hung node is already safe for the fleet, and its Run has no
// loop whose progress would prove more than that the process is
// scheduled. See packaging/README.md.
func notifySystemd(ctx context.Context, logger *slog.Logger) (waitStopping func()) {
	n := sdnotify.New(logger)
	n.Ready()
	said := make(chan struct{})
	go func() {
		defer close(said)
		<-ctx.Done()
		n.Stopping()
	}()
	return func() { <-said }
}

//go:build turbulence_testhooks

package agent

import (
	"os"
	"os/signal"
	"syscall"
)

// testHooks, in a build with the turbulence_testhooks tag only (never a
// release or package build: see Makefile), lets a test stall the agent's
// Manager for good on SIGUSR1, as a deadlock would: the enforcement loop
// then blocks and must stop feeding systemd's watchdog
// (test/packaging/notify_linux_test.go). The stall is announced with
// STATUS= on the notify socket so that the test knows when it holds.
func testHooks(a *Agent) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	go func() {
		<-c
		a.manager.StallForTest()
		if s, ok := a.cfg.Notify.(interface{ Status(string) }); ok {
			s.Status("test hook: manager stalled")
		}
	}()
}

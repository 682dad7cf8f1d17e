// Package sdnotify tells systemd how a Turbulence daemon is doing, through
// the sd_notify protocol (github.com/coreos/go-systemd/v22/daemon, pure Go):
// READY=1 once the daemon serves, WATCHDOG=1 from the loop whose progress
// proves the daemon still does its job, STOPPING=1 when it begins to shut
// down. The units (packaging/systemd) are Type=notify with WatchdogSec=.
//
// Outside systemd (no NOTIFY_SOCKET in the environment) every call is a
// no-op, so the daemons, their tests and `make demo` run unchanged.
//
// A failed notification is logged once per kind and never stops the
// daemon: a daemon that keeps its faults safe but cannot reach systemd's
// socket is better than one that exits over it (systemd will restart it
// when the watchdog runs out anyway).
package sdnotify

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify messages for one daemon. Its methods are safe
// for concurrent use. The zero value is not usable; call New.
type Notifier struct {
	log *slog.Logger
	// interval is how often WATCHDOG=1 must be sent: half of the unit's
	// WatchdogSec (systemd's own advice), 0 when no watchdog is armed.
	interval time.Duration

	mu     sync.Mutex
	warned map[string]bool
}

// New reads the environment systemd set (NOTIFY_SOCKET, WATCHDOG_USEC,
// WATCHDOG_PID) and returns a Notifier for this process. It leaves the
// environment as it is: the re-executed workers never notify, and
// NotifyAccess=main makes systemd ignore them if they did.
func New(logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: logger.With("component", "sdnotify"), warned: map[string]bool{}}
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		// A malformed WATCHDOG_USEC: say so, and feed no watchdog rather
		// than guess a period.
		n.log.Warn("systemd watchdog settings unreadable; not feeding it", "err", err)
	}
	n.interval = d / 2
	return n
}

// WatchdogInterval is how often Watchdog must be called, or 0 when
// systemd armed no watchdog for this process.
func (n *Notifier) WatchdogInterval() time.Duration { return n.interval }

// Ready sends READY=1: the daemon has finished starting and serves.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Stopping sends STOPPING=1: the daemon has begun its orderly shutdown.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Watchdog sends WATCHDOG=1. Call it only from the loop whose progress it
// vouches for, never from a ticker of its own.
func (n *Notifier) Watchdog() {
	if n.interval > 0 {
		n.send(daemon.SdNotifyWatchdog)
	}
}

// Status sends STATUS=text, the line `systemctl status` shows.
func (n *Notifier) Status(text string) { n.send("STATUS=" + text) }

func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		key, _, _ := strings.Cut(state, "=") // one warning per kind, whatever the text
		n.mu.Lock()
		first := !n.warned[key]
		n.warned[key] = true
		n.mu.Unlock()
		if first {
			n.log.Warn("systemd notification not sent", "state", state, "err", err)
		}
	}
}

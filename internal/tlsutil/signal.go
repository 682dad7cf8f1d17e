package tlsutil

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"weak"
)

// registry holds every Reloader of the process, weakly: a Reloader lives
// as long as a tls.Config refers to it (its GetCertificate method value),
// and the registry must not keep a discarded one — a test's, or a
// turbctl command's — alive. The daemons build their Reloaders deep in
// their components (raft's stream layer, the forwarder, the agent's
// session); registering here in NewReloader reaches them all without
// threading a handle through each constructor.
var registry struct {
	mu sync.Mutex
	rs []weak.Pointer[Reloader]
}

// register adds r to the registry, dropping entries already collected so
// the list stays as long as the live set.
func register(r *Reloader) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	live := registry.rs[:0]
	for _, p := range registry.rs {
		if p.Value() != nil {
			live = append(live, p)
		}
	}
	registry.rs = append(live, weak.Make(r))
}

// ReloadAll loads the files of every live Reloader of the process again,
// whether or not they look changed, and returns how many it reloaded and
// the failures, each naming its certificate file. A Reloader that fails
// keeps the certificate it had (see Reloader.Reload).
func ReloadAll() (int, error) {
	registry.mu.Lock()
	var rs []*Reloader
	for _, p := range registry.rs {
		if r := p.Value(); r != nil {
			rs = append(rs, r)
		}
	}
	registry.mu.Unlock()
	var errs []error
	n := 0
	for _, r := range rs {
		if err := r.Reload(); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ReloadOnSIGHUP makes SIGHUP reload every certificate of the process
// (ReloadAll) until stop is called; stop waits for a reload in progress.
// The mains call it once:
//
//	defer tlsutil.ReloadOnSIGHUP(logger)()
//
// Reloaders already follow their files at each handshake; SIGHUP is the
// explicit trigger operators and `systemctl reload` expect, with an
// immediate answer in the logs (reloaded, or why not) instead of at the
// next connection. It also stops SIGHUP's default action, which would
// kill the daemon — for the agent an exit without reverting its faults
// (invariant 3 would then rest on the next start's journal replay).
//
// The CA pools are not replaced: rotating the CA still needs a restart
// (docs/security.md).
func ReloadOnSIGHUP(logger *slog.Logger) (stop func()) {
	return reloadOn(logger, nil, syscall.SIGHUP)
}

// reloadOn is ReloadOnSIGHUP for any signal; after, if not nil, is called
// after each reload (tests wait on it instead of sleeping).
func reloadOn(logger *slog.Logger, after func(n int, err error), sig ...os.Signal) (stop func()) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "tls")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig...)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case s := <-ch:
				n, err := ReloadAll()
				if err != nil {
					logger.Error("certificate reload failed; the previous certificates stay in use", "signal", s.String(), "reloaded", n, "error", err)
				} else {
					logger.Info("certificates reloaded", "signal", s.String(), "reloaded", n)
				}
				if after != nil {
					after(n, err)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
			<-done
		})
	}
}

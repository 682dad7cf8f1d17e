package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/agent/session"
)

// LocalSocketDisabled, as Config.LocalSocket, serves no local socket. For
// tests that run several agents at once only: in production the socket is
// kill-switch path 3 (invariant 5) and must be there.
const LocalSocketDisabled = "-"

// localFlushTimeout bounds the heartbeat sent right after a local halt or
// resume, so that the fleet view shows it without waiting for the next
// beat. Best effort: with no controller the halt is reported at the next
// Hello.
const localFlushTimeout = 2 * time.Second

// localBackend is the agent as the local socket sees it.
type localBackend struct {
	a    *Agent
	sess *session.Session
	host string
}

// startLocal serves the local socket until the returned stop is called.
// It binds the socket before returning, so that Run fails at once (and
// refuses to run without its kill switch) when the socket cannot be set
// up, e.g. when another agent serves it.
func (a *Agent) startLocal(sess *session.Session) (stop func(), err error) {
	if a.cfg.LocalSocket == LocalSocketDisabled {
		a.log.Warn("local socket disabled: turbulence-agent halt cannot reach this agent")
		return func() {}, nil
	}
	host, err := os.Hostname()
	if err != nil {
		host = a.id // the refusal still names where to run resume
	}
	// A local halt outlives the process (LocalHaltFile): restore it before
	// the first dial, so that no fault is accepted in between.
	if rec, halted, err := loadLocalHalt(a.cfg.StateDir); halted {
		if err != nil {
			a.log.Error("local halt record unreadable: staying halted until turbulence-agent resume", "err", err)
		}
		a.manager.HaltLocally(inject.LocalHalt{Host: host, Reason: rec.Reason, Since: rec.Since})
		a.log.Warn("still halted locally from before the restart", "reason", rec.Reason, "since", rec.Since)
	}
	srv, err := localapi.Listen(localapi.Config{
		Path:    a.cfg.LocalSocket,
		Backend: &localBackend{a: a, sess: sess, host: host},
		Logger:  a.log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			a.log.Error("local socket failed: turbulence-agent halt cannot reach this agent", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// Status implements localapi.Backend.
func (b *localBackend) Status(context.Context) localapi.Status {
	m := b.a.manager
	st := localapi.Status{
		AgentID:     b.a.id,
		Hostname:    b.host,
		Controller:  b.sess.Controller(),
		FleetHalted: m.Halted(),
		Faults:      []localapi.Fault{},
	}
	if h, ok := m.LocalHalt(); ok {
		since := h.Since
		st.LocallyHalted, st.LocalHaltReason, st.LocalHaltSince = true, h.Reason, &since
	}
	if err := m.Unrecovered(); err != nil {
		st.RecoveryIncomplete = err.Error()
	}
	if f := b.a.foreign.Load(); f != nil {
		st.ForeignMarks = *f
	}
	kinds := m.HeldKinds()
	for _, fs := range m.Held() {
		st.Faults = append(st.Faults, localapi.FaultFromStatus(fs, kinds[fs.GetFaultId()]))
	}
	return st
}

// Halt implements localapi.Backend: invariant 5 on the host, with or
// without a controller.
func (b *localBackend) Halt(ctx context.Context, reason string) []localapi.Fault {
	kinds := b.a.manager.HeldKinds() // before the halt forgets them
	h := inject.LocalHalt{Host: b.host, Reason: reason, Since: time.Now()}
	// Record first, revert next: an agent that crashes in between comes
	// back halted. A record that cannot be written does not stop the halt:
	// the kill switch must work on a full disk too.
	if !b.a.manager.LocallyHalted() {
		if err := saveLocalHalt(b.a.cfg.StateDir, localHaltRecord{Reason: reason, Since: h.Since}); err != nil {
			b.a.log.Error("local halt not recorded on disk: a restarted agent would not be halted", "err", err)
		}
	}
	reverted := b.a.manager.HaltLocally(h)
	b.flush(ctx)
	out := make([]localapi.Fault, 0, len(reverted))
	for _, st := range reverted {
		out = append(out, localapi.FaultFromStatus(st, kinds[st.GetFaultId()]))
	}
	return out
}

// Resume implements localapi.Backend. It lifts the local halt only; a
// fleet halt stays until turbctl resume.
func (b *localBackend) Resume(ctx context.Context) (bool, error) {
	// Forget the record first: if that fails the agent stays halted, and
	// the operator is told, rather than resuming now and halting again at
	// the next restart.
	if err := removeLocalHalt(b.a.cfg.StateDir); err != nil {
		b.a.log.Error("local halt record not removed; staying halted", "err", err)
		return false, fmt.Errorf("cannot remove %s: %w; the agent stays halted", LocalHaltFile, err)
	}
	was := b.a.manager.ResumeLocally()
	b.flush(ctx)
	return was, nil
}

// flush sends a heartbeat now if a controller session is open, so the
// fleet view and the ended faults are updated at once.
func (b *localBackend) flush(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localFlushTimeout)
	defer cancel()
	if err := b.sess.Flush(fctx); err != nil && !errors.Is(err, session.ErrNoSession) {
		b.a.log.Info("local halt state not sent to the controller yet; the next heartbeat carries it", "err", err)
	}
}

var _ localapi.Backend = (*localBackend)(nil)

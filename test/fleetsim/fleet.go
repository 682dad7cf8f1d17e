package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// MaxAgents bounds Config.N: each agent holds a TCP connection, so a fleet
// needs N descriptors here and N at the controller.
const MaxAgents = 50_000

// closeTimeout bounds Fleet.Close's last heartbeats.
const closeTimeout = 10 * time.Second

// pollEvery is how often WaitAttached looks at the agents.
const pollEvery = 5 * time.Millisecond

// Config describes a simulated fleet.
type Config struct {
	// Controllers are the controllers' gRPC addresses; every agent dials
	// them in turn and follows Redirects to the leader, as a real agent.
	Controllers []string
	// CA signs the agents' certificates; CAFile is its certificate's PEM
	// file, which the agents trust. tlsutil.LoadCADir reads both from a
	// directory such as the one `turbulence-controller --dev` writes.
	CA     *tlsutil.CA
	CAFile string
	// Dir receives the agents' certificates and keys; "" makes a
	// temporary directory that Close removes, in /dev/shm where there is
	// one: written to this machine's disk, a certificate's two files cost
	// ten times what minting it does (BenchmarkMint).
	Dir string
	// N is the number of agents, 1 to MaxAgents.
	N int
	// NamePrefix starts every agent's name: "<prefix>-<i>", i zero-padded
	// to the width of N-1. Default "sim".
	NamePrefix string
	// Labels gives agent i's labels; nil means SpreadLabels.
	Labels func(i int) map[string]string
	// Kinds gives the fault kinds agent i advertises and accepts (its
	// local policy's allowed kinds); nil, or nil for i, means every kind.
	Kinds func(i int) []string
	// KernelFeatures gives agent i's kernel features; nil means all of
	// them (sch_netem, nftables, …).
	KernelFeatures func(i int) []string
	// SharedSource makes every agent dial from the system's default
	// source address. By default agent i dials from its own loopback
	// address (127.1.0.1 on), as hosts of a fleet do: the controller caps
	// connections per source address (docs/security.md), so more agents
	// than that cap need their own addresses.
	SharedSource bool
	// Logger receives the agents' log lines, each with agent_id; nil
	// discards them. A fleet logs a lot below Warn.
	Logger *slog.Logger
}

// Fleet is N simulated agents in this process.
type Fleet struct {
	agents  []*Agent
	tempDir string // removed by Close; "" when Config.Dir was given
	// started is when the first agent started, after the certificates
	// were minted: the start of the attach.
	started time.Time

	mu       sync.Mutex
	receipts map[string]Receipt // by fault ID, the latest news of each
	changed  chan struct{}      // closed and replaced at every news
	closed   bool
}

// validate reports every problem of cfg at once, naming the field.
func (cfg *Config) validate() error {
	var errs []error
	if len(cfg.Controllers) == 0 {
		errs = append(errs, errors.New("field Controllers: at least one controller address is required"))
	}
	if cfg.CA == nil || cfg.CAFile == "" {
		errs = append(errs, errors.New("fields CA and CAFile: the CA that signs the agents' certificates and its certificate file are required"))
	}
	if cfg.N < 1 || cfg.N > MaxAgents {
		errs = append(errs, fmt.Errorf("field N: %d agents, want 1 to %d", cfg.N, MaxAgents))
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "sim"
	}
	// The longest name is the last one: check it as a certificate name.
	if err := tlsutil.ValidateName(agentName(cfg.NamePrefix, max(cfg.N-1, 0), cfg.N)); err != nil {
		errs = append(errs, fmt.Errorf("field NamePrefix: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleetsim: %w", err)
	}
	return nil
}

// agentName is agent i's name in a fleet of n.
func agentName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%0*d", prefix, len(fmt.Sprint(max(n-1, 0))), i)
}

// sourceAddr is agent i's own loopback source address: 127.1.0.1 to
// 127.1.0.250, then 127.1.1.1 and so on (no .0, no .255).
func sourceAddr(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 1+i/(250*256), (i/250)%256, 1+i%250)
}

// Start mints a certificate for each agent and starts them all. It
// returns once every agent runs; their sessions open in the background
// (WaitAttached). ctx bounds the start only. On error nothing is left
// running.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f := &Fleet{receipts: make(map[string]Receipt), changed: make(chan struct{})}
	labels := cfg.Labels
	if labels == nil {
		labels = SpreadLabels
	}
	// Every agent's configuration is made and checked before anything is
	// written: a refused fleet leaves no certificate behind.
	acfgs := make([]AgentConfig, cfg.N)
	for i := range acfgs {
		name := agentName(cfg.NamePrefix, i, cfg.N)
		acfgs[i] = AgentConfig{
			ID:             name,
			Controllers:    cfg.Controllers,
			Labels:         labels(i),
			Facts:          simFacts(name, i),
			KernelFeatures: allKernelFeatures,
			Logger:         cfg.Logger,
			notify:         f.record,
		}
		if cfg.Kinds != nil {
			acfgs[i].Kinds = cfg.Kinds(i)
			if err := checkKinds(acfgs[i].Kinds); err != nil {
				return nil, fmt.Errorf("fleetsim: agent %s: %w", name, err)
			}
		}
		if cfg.KernelFeatures != nil {
			acfgs[i].KernelFeatures = cfg.KernelFeatures(i)
		}
		if !cfg.SharedSource {
			acfgs[i].SourceAddr = sourceAddr(i)
		}
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp(tempBase(), "fleetsim-")
		if err != nil {
			return nil, fmt.Errorf("fleetsim: certificate directory: %w", err)
		}
		dir, f.tempDir = d, d
	}
	names := make([]string, cfg.N)
	for i := range names {
		names[i] = acfgs[i].ID
	}
	files, err := mint(cfg.CA, cfg.CAFile, dir, names)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.started = time.Now()
	for i := range acfgs {
		if err := ctx.Err(); err != nil {
			f.Close()
			return nil, fmt.Errorf("fleetsim: start: %w", err)
		}
		acfgs[i].TLS = files[i]
		a, err := StartAgent(acfgs[i])
		if err != nil {
			f.Close()
			return nil, err
		}
		f.agents = append(f.agents, a)
	}
	return f, nil
}

// tempBase is where the default certificate directory goes: memory when
// the system has a tmpfs at /dev/shm, else the default temporary
// directory.
func tempBase() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// Started is when the agents started, once their certificates were
// minted: the start of their attach (AttachTimes).
func (f *Fleet) Started() time.Time { return f.started }

// record is every agent's notify: the fleet-wide index by fault ID.
func (f *Fleet) record(rc Receipt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.receipts[rc.FaultID] = rc
	close(f.changed)
	f.changed = make(chan struct{})
}

// Agents returns the agents, in the order of their index i.
func (f *Fleet) Agents() []*Agent { return slices.Clone(f.agents) }

// Receipt returns what the fleet recorded of faultID, whichever agent it
// reached.
func (f *Fleet) Receipt(faultID string) (Receipt, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rc, ok := f.receipts[faultID]
	return rc, ok
}

// Attached counts the agents with an open, welcomed session.
func (f *Fleet) Attached() int {
	n := 0
	for _, a := range f.agents {
		if a.Attached() != "" {
			n++
		}
	}
	return n
}

// WaitAttached returns once every agent has an open, welcomed session,
// or an error saying how many have none when ctx ends.
func (f *Fleet) WaitAttached(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		n := f.Attached()
		if n == len(f.agents) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleetsim: %d of %d agents attached: %w", n, len(f.agents), ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitReattached returns once every agent has an open session that a
// leader welcomed after since (a failover at since), or an error saying
// how many have none when ctx ends.
func (f *Fleet) WaitReattached(ctx context.Context, since time.Time) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		n := 0
		for _, a := range f.agents {
			if a.Attached() != "" && a.OpenedAt().After(since) {
				n++
			}
		}
		if n == len(f.agents) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleetsim: %d of %d agents attached again since %s: %w", n, len(f.agents), since.Format(time.TimeOnly), ctx.Err())
		case <-tick.C:
		}
	}
}

// ReattachTimes returns, for each agent whose latest session was
// welcomed after since, how long after since that was.
func (f *Fleet) ReattachTimes(since time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(f.agents))
	for _, a := range f.agents {
		if at := a.OpenedAt(); at.After(since) {
			out = append(out, at.Sub(since))
		}
	}
	return out
}

// AttachTimes returns, for each agent that attached, how long after start
// a leader first spoke to it (its Welcome), by the simulator's clock.
func (f *Fleet) AttachTimes(start time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(f.agents))
	for _, a := range f.agents {
		if at := a.AttachedAt(); !at.IsZero() {
			out = append(out, at.Sub(start))
		}
	}
	return out
}

// WaitApplied returns once every fault in faultIDs reached an agent's
// injector, or an error naming how many did not when ctx ends.
func (f *Fleet) WaitApplied(ctx context.Context, faultIDs ...string) error {
	return f.wait(ctx, "applied", faultIDs, func(rc Receipt) bool { return !rc.AppliedAt.IsZero() })
}

// WaitReverted returns once every fault in faultIDs was reverted by its
// agent's injector, or an error naming how many were not when ctx ends.
func (f *Fleet) WaitReverted(ctx context.Context, faultIDs ...string) error {
	return f.wait(ctx, "reverted", faultIDs, func(rc Receipt) bool { return !rc.RevertedAt.IsZero() })
}

func (f *Fleet) wait(ctx context.Context, what string, ids []string, done func(Receipt) bool) error {
	pending := slices.Clone(ids)
	for {
		f.mu.Lock()
		pending = slices.DeleteFunc(pending, func(id string) bool {
			rc, ok := f.receipts[id]
			return ok && done(rc)
		})
		changed := f.changed
		f.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fleetsim: %d of %d faults not %s (first: %s): %w", len(pending), len(ids), what, pending[0], ctx.Err())
		case <-changed:
		}
	}
}

// Latency is how long one fault took to reach its agent's injector.
type Latency struct {
	AgentID string
	FaultID string
	D       time.Duration
}

// Latencies are per-fault latencies, in the order of the fault IDs asked.
type Latencies []Latency

// Durations returns the latencies alone, for internal/stats.
func (ls Latencies) Durations() []time.Duration {
	out := make([]time.Duration, len(ls))
	for i, l := range ls {
		out[i] = l.D
	}
	return out
}

// TimeToApply returns, for each of faultIDs, the time from start (taken by
// the caller with time.Now just before its call: ApplyFault, a group
// apply) until the agent's injector applied it, by the simulator's
// monotonic clock. A fault that did not reach any agent is an error
// naming it; WaitApplied first.
func (f *Fleet) TimeToApply(start time.Time, faultIDs ...string) (Latencies, error) {
	return f.latencies(start, "applied", faultIDs, func(rc Receipt) time.Time { return rc.AppliedAt })
}

// TimeToRevert is TimeToApply for the revert: from start (a Halt, a
// RevertFault) until the agent's injector reverted each fault.
func (f *Fleet) TimeToRevert(start time.Time, faultIDs ...string) (Latencies, error) {
	return f.latencies(start, "reverted", faultIDs, func(rc Receipt) time.Time { return rc.RevertedAt })
}

func (f *Fleet) latencies(start time.Time, what string, ids []string, at func(Receipt) time.Time) (Latencies, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(Latencies, 0, len(ids))
	var missing []string
	for _, id := range ids {
		rc, ok := f.receipts[id]
		if !ok || at(rc).IsZero() {
			missing = append(missing, id)
			continue
		}
		out = append(out, Latency{AgentID: rc.AgentID, FaultID: id, D: at(rc).Sub(start)})
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("fleetsim: %d of %d faults not %s (first: %s)", len(missing), len(ids), what, missing[0])
	}
	return out, nil
}

// LeaseExpiries counts the lease expiries of every agent: each one
// reverted what that agent held for want of a controller.
func (f *Fleet) LeaseExpiries() int {
	n := 0
	for _, a := range f.agents {
		n += a.LeaseExpired()
	}
	return n
}

// Reconnects counts the sessions welcomed after each agent's first: every
// one followed a lost session (a leader change, a dropped connection).
func (f *Fleet) Reconnects() int64 {
	var n int64
	for _, a := range f.agents {
		n += max(a.Sessions()-1, 0)
	}
	return n
}

// Close stops every agent as the real agent stops (Agent.Close), all at
// once, and removes the certificates it minted in a temporary directory.
// No goroutine of the fleet is left when it returns.
func (f *Fleet) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range f.agents {
		wg.Go(func() { a.Close(ctx) })
	}
	wg.Wait()
	if f.tempDir != "" {
		_ = os.RemoveAll(f.tempDir)
	}
}

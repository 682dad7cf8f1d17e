package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Config configures an Injector.
type Config struct {
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Exclusions says what no fault may touch.
	Exclusions ExclusionConfig
	// ReplaceRootQdisc is the policy's network.replace_root_qdisc: whether
	// a root qdisc someone configured may be replaced (and put back).
	ReplaceRootQdisc bool
}

// Injector applies network faults on the host's interfaces.
type Injector struct {
	cfg Config
	ops ops

	mu sync.Mutex
	// busy maps an interface to the fault that holds it: one fault per
	// interface, never a silent overwrite.
	busy map[string]string
}

var _ inject.Injector = (*Injector)(nil)

// New returns a network injector working on the host's network namespace
// through netlink.
func New(cfg Config) *Injector { return newWithOps(cfg, hostOps()) }

func newWithOps(cfg Config, o ops) *Injector {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Injector{cfg: cfg, ops: o, busy: make(map[string]string)}
}

// Kind implements inject.Injector.
func (*Injector) Kind() string { return faultspec.KindNetwork }

// Apply implements inject.Injector. Everything that can refuse the fault is
// checked before the first change to the interface (invariant 6); a
// failure half-way is rolled back by deleting the agent's root.
func (in *Injector) Apply(ctx context.Context, f *turbulencev1.Fault, _ time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetNetwork()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no network spec", f.GetId())
	}
	switch spec.GetDirection() {
	case turbulencev1.Direction_DIRECTION_INGRESS, turbulencev1.Direction_DIRECTION_BOTH:
		return nil, fmt.Errorf("spec.network.direction: %s needs an ifb device, which this agent does not build yet; use egress: %w",
			spec.GetDirection(), errors.ErrUnsupported)
	}
	link := spec.GetInterface()
	if err := in.claim(link, f.GetId()); err != nil {
		return nil, err
	}
	h, err := in.apply(ctx, f.GetId(), link, spec)
	if err != nil {
		in.release(link, f.GetId())
		return nil, err
	}
	return h, nil
}

func (in *Injector) apply(ctx context.Context, id, link string, spec *turbulencev1.NetworkSpec) (*handle, error) {
	qs, err := in.ops.Qdiscs(link)
	if err != nil {
		return nil, fmt.Errorf("spec.network.interface: %w", err)
	}
	original, err := in.checkRoot(link, qs)
	if err != nil {
		return nil, err
	}
	excl, err := in.cfg.Exclusions.Exclusions(ctx, spec.GetTarget())
	if err != nil {
		return nil, err
	}
	d, err := Plan(link, spec, excl)
	if err != nil {
		return nil, err
	}
	if err := in.install(d); err != nil {
		if rerr := restore(in.ops, link, original); rerr != nil {
			in.cfg.Logger.Error("roll back a partial network fault", "fault_id", id, "interface", link, "err", rerr)
			return nil, errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return nil, err
	}
	in.cfg.Logger.Info("network fault applied", "fault_id", id, "interface", link, "qdiscs", len(d.Qdiscs), "filters", len(d.Filters))
	h := &handle{ops: in.ops, in: in, id: id, link: link, original: original, exclusions: Describe(excl)}
	for _, q := range d.Qdiscs {
		h.handles = append(h.handles, q.Handle)
	}
	return h, nil
}

// checkRoot decides whether link's root may be replaced, and returns the
// root to put back on revert: nil for a kernel default (handle 0:, which
// the kernel reattaches itself when the agent's root goes).
func (in *Injector) checkRoot(link string, qs []Qdisc) (*Qdisc, error) {
	root := findRoot(qs)
	switch {
	case root == nil || root.Handle == 0:
		return nil, nil
	case IsAgentHandle(root.Handle):
		return nil, fmt.Errorf("interface %s already has a Turbulence qdisc tree (root %s) that no fault of this agent holds: run `turbulence-agent cleanup`", link, fmtHandle(root.Handle))
	case !in.cfg.ReplaceRootQdisc:
		return nil, &policy.Refusal{Rule: "network.replace_root_qdisc", Message: fmt.Sprintf(
			"interface %s has a configured root qdisc (%s %s) that this host's policy does not allow replacing", link, root.Kind, fmtHandle(root.Handle))}
	case !restorable(*root):
		return nil, fmt.Errorf("interface %s: the agent cannot put back a %s root qdisc after the fault, so it does not replace it", link, root.Kind)
	}
	o := *root
	o.Stats = Stats{}
	return &o, nil
}

func findRoot(qs []Qdisc) *Qdisc {
	for i := range qs {
		if qs[i].Parent == HandleRoot {
			return &qs[i]
		}
	}
	return nil
}

// restorable reports whether the agent can recreate q exactly.
func restorable(q Qdisc) bool {
	return (q.Kind == "tbf" && q.Tbf != nil) || (q.Kind == "fq_codel" && q.FqCodel != nil)
}

func (in *Injector) install(d Desired) error {
	for _, q := range d.Qdiscs {
		if err := in.ops.ReplaceQdisc(q); err != nil {
			return fmt.Errorf("add %s: %w", q, err)
		}
		if q.Handle == RootHandle {
			for _, c := range d.Classes {
				if err := in.ops.AddClass(c); err != nil {
					return fmt.Errorf("add %s: %w", c, err)
				}
			}
		}
	}
	for _, f := range d.Filters {
		if err := in.ops.AddFilter(f); err != nil {
			return fmt.Errorf("add %s (%s): %w", f, f.Why, err)
		}
	}
	return nil
}

// restore takes the agent's tree off link and puts original back (nil: the
// kernel's default comes back by itself). A link that is gone has nothing
// left to restore.
func restore(o ops, link string, original *Qdisc) error {
	qs, err := o.Qdiscs(link)
	if errors.Is(err, ErrNoInterface) {
		return nil
	}
	if err != nil {
		return err
	}
	root := findRoot(qs)
	if root != nil && IsAgentHandle(root.Handle) {
		if err := o.DeleteQdisc(*root); err != nil {
			return fmt.Errorf("delete %s: %w", root, err)
		}
		root = nil
	}
	if original != nil && (root == nil || root.Handle != original.Handle) {
		q := *original
		q.Link = link
		if err := o.ReplaceQdisc(q); err != nil {
			return fmt.Errorf("put back %s: %w", q, err)
		}
	}
	return nil
}

func (in *Injector) claim(link, id string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if holder, ok := in.busy[link]; ok && holder != id {
		return fmt.Errorf("interface %s already carries network fault %s: revert it first (faults on one interface are refused, not stacked)", link, holder)
	}
	in.busy[link] = id
	return nil
}

func (in *Injector) release(link, id string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.busy[link] == id {
		delete(in.busy, link)
	}
}

// handle is one applied network fault.
type handle struct {
	ops        ops
	in         *Injector
	id, link   string
	original   *Qdisc
	exclusions []string
	handles    []uint32

	mu       sync.Mutex
	reverted bool
}

var _ inject.Undoer = (*handle)(nil)

// Revert deletes the agent's root and puts the original back; idempotent.
func (h *handle) Revert(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reverted {
		return nil
	}
	if err := restore(h.ops, h.link, h.original); err != nil {
		return fmt.Errorf("revert network fault on %s: %w", h.link, err)
	}
	h.reverted = true
	h.in.release(h.link, h.id)
	return nil
}

// Observe reports the exclusions and the impairment's kernel counters
// (proof of effect: what happened, not only what was asked).
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.Exclusions = h.exclusions
	qs, err := h.ops.Qdiscs(h.link)
	if err != nil {
		return
	}
	var ns turbulencev1.NetworkStats
	seen := false
	for _, q := range qs {
		if q.Handle != NetemHandle && q.Handle != TbfHandle {
			continue
		}
		if !seen { // the first impairment saw every packet
			ns.Packets, ns.Bytes = q.Stats.Packets, q.Stats.Bytes
			seen = true
		}
		ns.Drops += q.Stats.Drops
		ns.Overlimits += q.Stats.Overlimits
	}
	if seen {
		st.Network = &ns
	}
}

// Done returns nil: a qdisc never ends by itself.
func (*handle) Done() <-chan struct{} { return nil }

// Err returns nil: see Done.
func (*handle) Err() error { return nil }

// Undo records what start-up recovery needs: the interface, the agent's
// handles and the original root to put back (invariant 3).
func (h *handle) Undo() journal.Undo {
	u := journal.Undo{NetInterface: h.link, NetQdiscHandles: h.handles}
	if h.original != nil {
		if raw, err := json.Marshal(h.original); err == nil {
			u.NetOriginalRoot = raw
		}
	}
	return u
}

// Restore takes back a network fault from its journal record alone, in the
// calling thread's network namespace: start-up recovery (invariant 3).
// Nothing to do is success.
func Restore(u journal.Undo) error {
	if u.NetInterface == "" {
		return nil
	}
	var original *Qdisc
	if len(u.NetOriginalRoot) > 0 {
		original = new(Qdisc)
		if err := json.Unmarshal(u.NetOriginalRoot, original); err != nil {
			return fmt.Errorf("journal: original root qdisc of %s: %w", u.NetInterface, err)
		}
	}
	o := hostOps()
	defer closeOps(o)
	return restore(o, u.NetInterface, original)
}

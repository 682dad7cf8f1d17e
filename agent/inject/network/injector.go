package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
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
	// Owner is the agent whose marks these are (invariant 7): it names
	// the ifb devices (their alias) and scopes recovery and the sweep.
	Owner inject.Owner
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

var _ inject.Kind = (*Injector)(nil)

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
	dir := spec.GetDirection()
	egress := dir != turbulencev1.Direction_DIRECTION_INGRESS
	ingress := dir == turbulencev1.Direction_DIRECTION_INGRESS || dir == turbulencev1.Direction_DIRECTION_BOTH
	qs, err := in.ops.Qdiscs(link)
	if err != nil {
		return nil, fmt.Errorf("spec.network.interface: %w", err)
	}
	st := undoState{link: link, noEgress: !egress}
	if egress {
		if st.original, err = in.checkRoot(link, qs); err != nil {
			return nil, err
		}
	}
	if ingress {
		st.ifb = IFBName(in.cfg.Owner, id)
		if err := in.checkIngress(link, st.ifb, qs); err != nil {
			return nil, err
		}
	}
	excl, err := in.cfg.Exclusions.Exclusions(ctx, spec.GetTarget())
	if err != nil {
		return nil, err
	}
	var d Desired
	if egress {
		if d, err = Plan(link, spec, excl); err != nil {
			return nil, err
		}
	}
	var ip IngressPlan
	if ingress {
		if ip, err = PlanIngress(link, st.ifb, spec, excl); err != nil {
			return nil, err
		}
		ip.Alias = ifbAlias(in.cfg.Owner, id, link)
	}
	var handles []uint32
	for _, q := range append(d.Qdiscs, ip.Tree.Qdiscs...) {
		if !slices.Contains(handles, q.Handle) {
			handles = append(handles, q.Handle)
		}
	}
	// Invariant 3: how to take the fault back is on disk before the first
	// change to the interface; recovery and the guardian need nothing else.
	undo := encodeUndo(st, handles)
	if err := inject.RecordUndo(ctx, undo); err != nil {
		return nil, err
	}
	if egress {
		err = in.install(d)
	}
	if err == nil && ingress {
		err = in.installIngress(ip)
	}
	if err != nil {
		if rerr := restore(in.ops, st); rerr != nil {
			in.cfg.Logger.Error("roll back a partial network fault", "fault_id", id, "interface", link, "err", rerr)
			return nil, errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return nil, err
	}
	in.cfg.Logger.Info("network fault applied", "fault_id", id, "interface", link, "direction", dir.String(), "ifb", st.ifb,
		"qdiscs", len(d.Qdiscs)+len(ip.Tree.Qdiscs), "filters", len(d.Filters)+len(ip.Tree.Filters)+len(ip.Filters))
	return &handle{ops: in.ops, in: in, id: id, st: st, exclusions: Describe(excl), undo: undo}, nil
}

// IFBName is owner's ifb device for fault id: the agent's prefix and 8 hex
// digits of a hash of the owner and the id (an interface name has at most
// 15 bytes), so two agents never pick the same name.
func IFBName(owner inject.Owner, id string) string {
	sum := sha256.Sum256([]byte(owner.StateDir + "\x00" + id))
	return IFBPrefix + hex.EncodeToString(sum[:4])
}

// checkIngress refuses an ingress fault on a link whose ingress hook is
// already in use (the agent does not share it), or whose ifb name is
// taken (a leftover the sweep removes).
func (in *Injector) checkIngress(link, ifb string, qs []Qdisc) error {
	for _, q := range qs {
		if q.Parent != HandleIngress {
			continue
		}
		fs, err := in.ops.Filters(link, q.Handle)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if IsAgentPrio(f.Priority) {
				return fmt.Errorf("interface %s already has a Turbulence ingress redirect that no fault of this agent holds: run `turbulence-agent cleanup`", link)
			}
		}
		return fmt.Errorf("interface %s already has an %s qdisc: the agent does not share the ingress hook, so it refuses an ingress fault there", link, q.Kind)
	}
	_, err := in.ops.Qdiscs(ifb)
	switch {
	case err == nil:
		return fmt.Errorf("ifb device %s already exists, left by an earlier run: run `turbulence-agent cleanup`", ifb)
	case !errors.Is(err, ErrNoInterface):
		return err
	}
	return nil
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

// installIngress creates the ifb and its tree, then the ingress qdisc on
// the link with its exclusions and, last, the redirects: no packet is
// redirected before the ifb can carry it.
func (in *Injector) installIngress(p IngressPlan) error {
	if err := in.ops.AddIFB(p.IFB, p.Alias); err != nil {
		return err
	}
	if err := in.install(p.Tree); err != nil {
		return err
	}
	if err := in.ops.ReplaceQdisc(p.Qdisc); err != nil {
		return fmt.Errorf("add %s: %w", p.Qdisc, err)
	}
	for _, f := range p.Filters {
		if err := in.ops.AddFilter(f); err != nil {
			return fmt.Errorf("add %s (%s): %w", f, f.Why, err)
		}
	}
	return nil
}

// undoState is what taking a fault back needs, as the journal records it.
type undoState struct {
	link string
	// original is the root to put back (nil: the kernel's default).
	original *Qdisc
	// noEgress: the fault left link's root alone (ingress only).
	noEgress bool
	// ifb is the agent's ifb device ("" for egress only).
	ifb string
}

// restore takes the agent's tree off link and puts original back (nil: the
// kernel's default comes back by itself), then the ingress redirect and
// the ifb. A link that is gone has nothing left to restore.
func restore(o ops, st undoState) error {
	var errs []error
	if !st.noEgress {
		errs = append(errs, restoreRoot(o, st.link, st.original))
	}
	if st.ifb != "" {
		// The redirect goes before the ifb it points at.
		_, err := removeIngress(o, st.link, true)
		errs = append(errs, err)
		if err := o.DeleteLink(st.ifb); err != nil && !errors.Is(err, ErrNoInterface) {
			errs = append(errs, fmt.Errorf("delete ifb device %s: %w", st.ifb, err))
		}
	}
	return errors.Join(errs...)
}

func restoreRoot(o ops, link string, original *Qdisc) error {
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

// removeIngress takes the agent's filters (marked by their priority) off
// link's ingress qdisc, and the qdisc with them when nothing else is on it.
// It returns what it removed, "" for nothing. deleteEmpty also removes an
// ingress qdisc with no filters at all: a revert knows the agent made it
// (it refuses a link whose ingress hook is in use, so an empty one is what
// a partial apply left), while a sweep cannot tell and leaves it.
func removeIngress(o ops, link string, deleteEmpty bool) (string, error) {
	qs, err := o.Qdiscs(link)
	if errors.Is(err, ErrNoInterface) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, q := range qs {
		if q.Parent != HandleIngress {
			continue
		}
		fs, err := o.Filters(link, q.Handle)
		if err != nil {
			return "", err
		}
		type key struct{ prio, proto uint16 }
		var mine []key
		others := false
		for _, f := range fs {
			k := key{f.Priority, f.Protocol}
			switch {
			case !IsAgentPrio(f.Priority):
				others = true
			case !slices.Contains(mine, k):
				mine = append(mine, k)
			}
		}
		switch {
		case len(mine) == 0 && (others || !deleteEmpty):
			return "", nil // not the agent's
		case !others:
			if err := o.DeleteQdisc(q); err != nil {
				return "", fmt.Errorf("delete %s: %w", q, err)
			}
			return "qdisc ingress ffff: dev " + link, nil
		}
		for _, k := range mine {
			if err := o.DeleteFilters(link, q.Handle, k.prio, k.proto); err != nil {
				return "", fmt.Errorf("delete the agent's ingress filters (prio %#x) on %s: %w", k.prio, link, err)
			}
		}
		return "ingress filters dev " + link, nil
	}
	return "", nil
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
	id         string
	st         undoState
	exclusions []string
	undo       []byte

	mu       sync.Mutex
	reverted bool
}

var _ inject.Releaser = (*handle)(nil)

// Revert deletes the agent's root and puts the original back; idempotent.
func (h *handle) Revert(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reverted {
		return nil
	}
	if err := restore(h.ops, h.st); err != nil {
		return fmt.Errorf("revert network fault on %s: %w", h.st.link, err)
	}
	h.reverted = true
	h.in.release(h.st.link, h.id)
	return nil
}

// Release lets the interface go without touching it: the fault's guardian
// already took the fault back.
func (h *handle) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reverted = true
	h.in.release(h.st.link, h.id)
}

// Observe reports the exclusions and the impairment's kernel counters
// (proof of effect: what happened, not only what was asked), summed over
// the link's egress and the ifb's.
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.Exclusions = h.exclusions
	var devs []string
	if !h.st.noEgress {
		devs = append(devs, h.st.link)
	}
	if h.st.ifb != "" {
		devs = append(devs, h.st.ifb)
	}
	var ns turbulencev1.NetworkStats
	seen := false
	for _, dev := range devs {
		qs, err := h.ops.Qdiscs(dev)
		if err != nil {
			continue
		}
		first := true
		for _, q := range qs {
			if q.Handle != NetemHandle && q.Handle != TbfHandle {
				continue
			}
			if first { // the first impairment saw every packet
				ns.Packets += q.Stats.Packets
				ns.Bytes += q.Stats.Bytes
				first = false
			}
			seen = true
			ns.Drops += q.Stats.Drops
			ns.Overlimits += q.Stats.Overlimits
		}
	}
	if seen {
		st.Network = &ns
	}
}

// Done returns nil: a qdisc never ends by itself.
func (*handle) Done() <-chan struct{} { return nil }

// Err returns nil: see Done.
func (*handle) Err() error { return nil }

// Undo returns the record written before the fault was installed
// (encodeUndo).
func (h *handle) Undo() []byte { return h.undo }

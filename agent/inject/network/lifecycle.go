package network

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/turbulence-sre/turbulence/agent/inject"
)

// undoRecord is a network fault's undo record. Its JSON names are those the
// journal has always used, so records of earlier versions still decode.
type undoRecord struct {
	Interface string   `json:"net_interface,omitempty"`
	Handles   []uint32 `json:"net_qdisc_handles,omitempty"`
	// OriginalRoot is the root qdisc the fault replaced (absent: the
	// kernel's default, which comes back by itself).
	OriginalRoot *Qdisc `json:"net_original_root,omitempty"`
	IFB          string `json:"net_ifb,omitempty"`
	NoEgress     bool   `json:"net_no_egress,omitempty"`
}

func encodeUndo(st undoState, handles []uint32) []byte {
	return inject.EncodeUndo(undoRecord{Interface: st.link, Handles: handles, OriginalRoot: st.original, IFB: st.ifb, NoEgress: st.noEgress})
}

// Guarded implements inject.Kind: a qdisc tree has no worker, so a
// guardian takes it back if the agent cannot.
func (*Injector) Guarded() bool { return true }

// Recover implements inject.Kind: it takes the agent's tree off the
// recorded interface, puts the original root back and removes the ingress
// redirect and the ifb, in the calling thread's network namespace. With no
// undo record nothing was changed (the record comes first).
func (in *Injector) Recover(_ context.Context, r inject.Recorded) error {
	u, ok, err := inject.DecodeUndo[undoRecord](r)
	if err != nil || !ok || u.Interface == "" {
		return err
	}
	return restore(in.ops, undoState{link: u.Interface, original: u.OriginalRoot, noEgress: u.NoEgress, ifb: u.IFB})
}

// Sweep implements inject.Kind. It removes this owner's ifb devices (their
// alias names the owner) that no open fault names, with the redirect that
// feeds each. A root qdisc in the agent's handle range carries no owner, so
// the sweep never removes one: the owner's journal names its trees before
// they exist, and recovery takes those back; any other is reported.
func (in *Injector) Sweep(_ context.Context, open []inject.Recorded) (inject.Swept, error) {
	var out inject.Swept
	var errs []error
	links, err := in.ops.Links()
	if err != nil {
		return out, fmt.Errorf("list interfaces: %w", err)
	}
	named := openNames(open)
	for _, name := range links {
		if !strings.HasPrefix(name, IFBPrefix) {
			qs, err := in.ops.Qdiscs(name)
			if err != nil {
				continue // gone since the listing
			}
			if root := findRoot(qs); root != nil && IsAgentHandle(root.Handle) && !slices.Contains(named.links, name) {
				out.Foreign = append(out.Foreign, fmt.Sprintf("qdisc %s dev %s (no fault of this agent's journal names it)", fmtHandle(root.Handle), name))
			}
			continue
		}
		alias, err := in.ops.LinkAlias(name)
		if err != nil {
			continue
		}
		mark, ok := parseAlias(alias)
		if !ok || mark.owner != in.cfg.Owner.Tag() {
			out.Foreign = append(out.Foreign, fmt.Sprintf("link ifb %s (%s)", name, cmp.Or(alias, "no owner mark")))
			continue
		}
		if slices.Contains(named.ifbs, name) {
			continue
		}
		// The redirect goes before the ifb it points at: a redirect to a
		// missing device drops every packet.
		what, err := removeIngress(in.ops, mark.link, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if what != "" {
			out.Removed = append(out.Removed, what)
		}
		if err := in.ops.DeleteLink(name); err != nil && !errors.Is(err, ErrNoInterface) {
			errs = append(errs, fmt.Errorf("delete ifb device %s: %w", name, err))
			continue
		}
		out.Removed = append(out.Removed, "link ifb "+name)
	}
	return out, errors.Join(errs...)
}

type names struct{ links, ifbs []string }

// openNames lists the interfaces and ifb devices that open faults' undo
// records name.
func openNames(open []inject.Recorded) names {
	var n names
	for _, r := range open {
		u, _, err := inject.DecodeUndo[undoRecord](r)
		if err != nil {
			continue
		}
		if u.Interface != "" {
			n.links = append(n.links, u.Interface)
		}
		if u.IFB != "" {
			n.ifbs = append(n.ifbs, u.IFB)
		}
	}
	return n
}

// aliasMagic starts every ifb alias the agent writes.
const aliasMagic = "turbulence"

// maxAlias is the kernel's limit on an interface alias (IFALIASZ - 1).
const maxAlias = 255

// ifbAlias is the owner mark written on an ifb device: the owner's tag
// (what the sweep matches), the interface whose ingress feeds it, the
// fault, then the owner's state directory and ID for people, cut to fit.
func ifbAlias(owner inject.Owner, faultID, link string) string {
	a := fmt.Sprintf("%s owner=%s link=%s fault=%s dir=%s agent=%s", aliasMagic, owner.Tag(), link, faultID, owner.StateDir, owner.AgentID)
	return a[:min(len(a), maxAlias)]
}

type aliasMark struct{ owner, link string }

// parseAlias reads an ifb alias written by ifbAlias.
func parseAlias(alias string) (aliasMark, bool) {
	fields := strings.Fields(alias)
	if len(fields) == 0 || fields[0] != aliasMagic {
		return aliasMark{}, false
	}
	var m aliasMark
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "owner":
			m.owner = v
		case "link":
			m.link = v
		}
	}
	return m, m.owner != "" && m.link != ""
}

package partition

import (
	"encoding/binary"
	"errors"

	"net/netip"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nft is tables over google/nftables. Each call opens its own netlink
// socket in the calling thread's network namespace (or netns, if set).
type nft struct {
	netns int // a namespace fd, 0 for the caller's
}

func hostTables() tables { return nft{} }

// NewInNetNS returns an injector working in the network namespace whose fd
// is netnsFD (tests).
func NewInNetNS(cfg Config, netnsFD int) *Injector { return newWithTables(cfg, nft{netns: netnsFD}) }

func (n nft) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if n.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(n.netns))
	}
	return nftables.New(opts...)
}

func (n nft) Create(name string, rules []Rule) error {
	c, err := n.conn()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	accept := nftables.ChainPolicyAccept
	chains := map[string]*nftables.Chain{}
	for _, hook := range []string{HookInput, HookOutput} {
		h := nftables.ChainHookInput
		if hook == HookOutput {
			h = nftables.ChainHookOutput
		}
		// Priority filter-10: the agent's verdicts come before a usual
		// filter table's; its accepts still leave their drops in force.
		chains[hook] = c.AddChain(&nftables.Chain{Name: hook, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: h, Priority: nftables.ChainPriorityRef(-10), Policy: &accept})
	}
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: chains[r.Hook], Exprs: ruleExprs(r), UserData: []byte(r.Why)})
	}
	// One batch: the kernel applies the table whole or not at all.
	return c.Flush()
}

func (n nft) Delete(name string) error {
	c, err := n.conn()
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	err = c.Flush()
	if errors.Is(err, syscall.ENOENT) || err != nil && strings.Contains(err.Error(), "no such file") {
		return nil
	}
	return err
}

func (n nft) List() ([]string, error) {
	c, err := n.conn()
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out, nil
}

func (n nft) Counters(name string) (uint64, uint64, error) {
	c, err := n.conn()
	if err != nil {
		return 0, 0, err
	}
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	var p, b uint64
	for _, hook := range []string{HookInput, HookOutput} {
		rs, err := c.GetRules(t, &nftables.Chain{Name: hook, Table: t})
		if err != nil {
			continue // a partition in one direction has only that chain's rules
		}
		for _, r := range rs {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					p += ctr.Packets
					b += ctr.Bytes
				}
			}
		}
	}
	return p, b, nil
}

// ruleExprs turns a rule into nftables expressions (inet family: every
// address match is preceded by a check of the packet's family).
func ruleExprs(r Rule) []expr.Any {
	var ex []expr.Any
	cmp := func(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
	switch r.Family {
	case 4:
		ex = append(ex, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmp([]byte{unix.NFPROTO_IPV4}))
	case 6:
		ex = append(ex, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmp([]byte{unix.NFPROTO_IPV6}))
	}
	if r.Remote.IsValid() {
		ex = append(ex, addrMatch(r.Hook, r.Remote)...)
	}
	if r.Proto != 0 {
		ex = append(ex, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmp([]byte{r.Proto}))
	}
	// Output: the remote port is the destination; input: the source.
	remoteOff, localOff := uint32(2), uint32(0)
	if r.Hook == HookInput {
		remoteOff, localOff = 0, 2
	}
	port := func(off uint32, p uint16) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			cmp(binary.BigEndian.AppendUint16(nil, p)),
		}
	}
	if r.RemotePort != 0 {
		ex = append(ex, port(remoteOff, r.RemotePort)...)
	}
	if r.LocalPort != 0 {
		ex = append(ex, port(localOff, r.LocalPort)...)
	}
	if r.Drop {
		return append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	return append(ex, &expr.Verdict{Kind: expr.VerdictAccept})
}

// addrMatch matches the remote address: the destination in the output
// hook, the source in the input hook.
func addrMatch(hook string, p netip.Prefix) []expr.Any {
	p = p.Masked()
	raw := p.Addr().AsSlice()
	off := uint32(16) // IPv4 destination
	if hook == HookInput {
		off = 12
	}
	if p.Addr().Is6() {
		off = 24
		if hook == HookInput {
			off = 8
		}
	}
	n := uint32(len(raw))
	mask := make([]byte, n)
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if p.Bits() < len(raw)*8 {
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: raw})
}

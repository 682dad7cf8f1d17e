package agent

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/turbulence-sre/turbulence/agent/policy"
)

// resolveTimeout bounds the look-up of a controller's host name at start.
const resolveTimeout = 5 * time.Second

// protectControllers adds every controller's addresses to the policy's
// protected CIDRs (invariant: the path to the controllers is always
// protected, so no fault can cut the agent off its kill switch by
// accident). A name that does not resolve is skipped with a warning; its
// addresses are then not protected, which the log says.
func (a *Agent) protectControllers(p policy.Policy) policy.Policy {
	p.Network.ProtectedCIDRs = slices.Clone(p.Network.ProtectedCIDRs)
	for _, addr := range a.cfg.Controllers {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			p.Network.ProtectedCIDRs = append(p.Network.ProtectedCIDRs, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()).String())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			a.log.Warn("cannot resolve a controller to protect its addresses from network faults", "controller", addr, "err", err)
			continue
		}
		for _, ip := range ips {
			p.Network.ProtectedCIDRs = append(p.Network.ProtectedCIDRs, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()).String())
		}
	}
	return p
}

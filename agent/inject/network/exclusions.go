package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Names of the default exclusions, as TrafficTarget.remove_default_exclusions
// takes them.
const (
	ExclusionSSH = "ssh"
	ExclusionDNS = "dns"
)

// DefaultResolvConf is where the host's DNS resolvers are read.
const DefaultResolvConf = "/etc/resolv.conf"

// sshPort is excluded both ways: the operator's session to this host, and
// from it.
const sshPort = 22

// ExclusionConfig is what the exclusions are computed from.
type ExclusionConfig struct {
	// Controllers are the controllers' host:port addresses; their host
	// parts are resolved at every apply, so a moved controller stays
	// reachable (invariant 2: the lease path must survive the fault).
	Controllers []string
	// Protected are the policy's network.protected_cidrs.
	Protected []string
	// ResolvConf is the resolv.conf to read DNS resolvers from.
	ResolvConf string
	// Resolver resolves controller names; nil means net.DefaultResolver.
	Resolver ExclusionConfigResolver
}

// Exclusions lists the traffic a fault with target t must not touch. A
// controller whose name does not resolve is an error: a fault that might
// cut the agent off its kill switch is not applied (invariant 4), unless
// the target explicitly includes the controllers.
func (c ExclusionConfig) Exclusions(ctx context.Context, t *turbulencev1.TrafficTarget) ([]Exclusion, error) {
	var out []Exclusion
	if !t.GetIncludeControllers() {
		for _, addr := range c.Controllers {
			ips, err := c.resolve(ctx, addr)
			if err != nil {
				return nil, fmt.Errorf("cannot exclude controller %s from the fault (set include_controllers to cut it off on purpose): %w", addr, err)
			}
			for _, ip := range ips {
				out = append(out, Exclusion{Why: "controller " + addr, Prefix: netip.PrefixFrom(ip, ip.BitLen())})
			}
		}
	}
	for _, s := range c.Protected {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("policy network.protected_cidrs: %q is not a CIDR", s)
		}
		out = append(out, Exclusion{Why: "protected " + p.String(), Prefix: p})
	}
	removed := t.GetRemoveDefaultExclusions()
	if !slices.Contains(removed, ExclusionSSH) {
		out = append(out, Exclusion{Why: "ssh port 22", Port: sshPort, BothPorts: true})
	}
	if !slices.Contains(removed, ExclusionDNS) {
		for _, r := range resolvers(c.resolvConf()) {
			out = append(out, Exclusion{Why: "dns " + r.String(), Prefix: netip.PrefixFrom(r, r.BitLen()), Port: 53})
		}
	}
	return dedupe(out), nil
}

func (c ExclusionConfig) resolvConf() string {
	if c.ResolvConf == "" {
		return DefaultResolvConf
	}
	return c.ResolvConf
}

func (c ExclusionConfig) resolve(ctx context.Context, addr string) ([]netip.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	var r ExclusionConfigResolver = net.DefaultResolver
	if c.Resolver != nil {
		r = c.Resolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// ExclusionConfigResolver resolves host names (net.Resolver satisfies it).
type ExclusionConfigResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolvers reads the nameserver lines of a resolv.conf; a missing file
// means no resolvers (nothing to exclude), not an error.
func resolvers(path string) []netip.Addr {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		// A zone ("fe80::1%eth0") is not part of what u32 matches.
		host, _, _ := strings.Cut(f[1], "%")
		if ip, err := netip.ParseAddr(host); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func dedupe(in []Exclusion) []Exclusion {
	var out []Exclusion
	for _, e := range in {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// Describe renders exclusions for a fault's status, one per line.
func Describe(ex []Exclusion) []string {
	out := make([]string, 0, len(ex))
	for _, e := range ex {
		s := e.Why
		if e.Prefix.IsValid() && !strings.Contains(s, e.Prefix.Addr().String()) {
			s += " (" + e.Prefix.String() + ")"
		}
		out = append(out, s)
	}
	return out
}

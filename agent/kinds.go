package agent

import (
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/cpu"
	"github.com/turbulence-sre/turbulence/agent/inject/disk"
	"github.com/turbulence-sre/turbulence/agent/inject/memory"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/policy"
)

// kinds returns every fault kind this agent implements, for owner's marks,
// configured by cfg and the host's policy pol. Each kind owns its whole
// lifecycle (inject.Kind); adding one is one line here.
func kinds(cfg Config, owner inject.Owner, pol policy.Policy) []inject.Kind {
	excl := network.ExclusionConfig{Controllers: cfg.Controllers, Protected: pol.Network.ProtectedCIDRs}
	netCfg := network.Config{Logger: cfg.Logger, Exclusions: excl, ReplaceRootQdisc: pol.Network.ReplaceRootQdisc, Owner: owner}
	partCfg := partition.Config{Logger: cfg.Logger, Exclusions: excl, Owner: owner}
	netKind, partKind := network.New(netCfg), partition.New(partCfg)
	if cfg.NetNS != 0 {
		netKind, partKind = network.NewInNetNS(netCfg, cfg.NetNS), partition.NewInNetNS(partCfg, cfg.NetNS)
	}
	return []inject.Kind{
		cpu.New(cfg.WorkerBinary, cfg.ProcRoot, cpu.WithNice(pol.WorkerNice), cpu.WithOwner(owner)),
		// The policy's reserve is also kept free of what is available now,
		// not only of the total: other processes' memory counts.
		memory.New(cfg.WorkerBinary, cfg.ProcRoot, memory.WithNice(pol.WorkerNice), memory.WithOwner(owner),
			memory.WithReserve(uint64(pol.Memory.ReserveBytes))),
		disk.NewFill(cfg.ProcRoot, owner, pol),
		disk.NewIO(cfg.WorkerBinary, cfg.ProcRoot, owner, pol, disk.WithNice(pol.WorkerNice)),
		netKind, partKind,
	}
}

// defaultPolicyForRecovery is the policy the kinds get when they only take
// faults back (cleanup, a guardian): recovery reads undo records, which no
// policy limits.
func defaultPolicyForRecovery() policy.Policy { return policy.Default() }

package chaos

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"

	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/sweep"
)

// samplePeriod is how often the sampler looks at the hosts. A sample
// itself takes a few to tens of milliseconds (the whole of /proc, six
// namespaces' nftables, six directories); its start and end are both
// recorded, so that every figure is bounded by what was really seen.
const samplePeriod = 100 * time.Millisecond

// mark is one thing on a host that shows a fault in effect or a helper
// of one, as the host itself shows it: a worker process (by the owner and
// fault ID in its argv), a guardian process, an nftables table, a marked
// directory on the agent's tmpfs. Nothing an agent or a controller says
// is used.
type mark struct {
	agent int // lab index of the owner
	// what is "worker <fault>", "guardian <fault>", "table <name>" or
	// "dir <name>"; tables and directories are tied to their fault by
	// faultOf, once the faults are known.
	what string
}

// effect reports whether the mark is the fault itself in effect, not a
// helper that watches it (a guardian).
func (m mark) effect() bool { return !strings.HasPrefix(m.what, "guardian ") }

// sample is what one look at every host found.
type sample struct {
	start, end time.Time
	present    map[mark]bool
}

// sampler looks at every agent's host every samplePeriod, in the
// background, until stopped.
type sampler struct {
	agents []*labAgent
	stopc  chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	samples []sample
	errs    []string // first few sampling errors
}

func startSampler(agents []*labAgent) *sampler {
	s := &sampler{agents: agents, stopc: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *sampler) loop() {
	defer close(s.done)
	tick := time.NewTicker(samplePeriod)
	defer tick.Stop()
	for {
		s.take()
		select {
		case <-s.stopc:
			return
		case <-tick.C:
		}
	}
}

// stop ends the sampling after one more sample and returns every sample.
func (s *sampler) stop() []sample {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// latest returns the marks the newest look saw.
func (s *sampler) latest() []mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return nil
	}
	return slices.Collect(maps.Keys(s.samples[len(s.samples)-1].present))
}

// take looks at every host once and records it.
func (s *sampler) take() {
	smp := lookAt(s.agents, func(err error) {
		s.mu.Lock()
		if len(s.errs) < 10 {
			s.errs = append(s.errs, err.Error())
		}
		s.mu.Unlock()
	})
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

// lookAt samples every agent's host once. A look that fails (an
// nftables dump the kernel interrupted) is reported to fail and counts
// the marks it could not see as present, so that a failure can never
// hide a leftover.
func lookAt(agents []*labAgent, fail func(error)) sample {
	smp := sample{start: time.Now(), present: map[mark]bool{}}
	byState := map[string]int{}
	for _, a := range agents {
		byState[a.state] = a.index
	}
	for _, p := range agentProcesses() {
		switch p.args[1] {
		case "worker":
			if i, ok := byState[p.flag("--owner")]; ok {
				smp.present[mark{i, "worker " + p.flag("--fault-id")}] = true
			}
		case "guard":
			if i, ok := byState[p.flag("--state-dir")]; ok {
				smp.present[mark{i, "guardian " + p.flag("--fault-id")}] = true
			}
		}
	}
	for _, a := range agents {
		tables, err := agentTables(a)
		if err != nil {
			fail(fmt.Errorf("%s: nftables: %w", a.name, err))
			smp.present[mark{a.index, "table ?"}] = true
		}
		for _, name := range tables {
			smp.present[mark{a.index, "table " + name}] = true
		}
		for _, disk := range []string{a.fillDisk, a.ioDisk} {
			entries, err := os.ReadDir(disk)
			if err != nil {
				fail(fmt.Errorf("%s: read %s: %w", a.name, disk, err))
				smp.present[mark{a.index, "dir ?"}] = true
			}
			for _, e := range entries {
				if n := e.Name(); strings.HasPrefix(n, sweep.FillDirPrefix) || strings.HasPrefix(n, sweep.IODirPrefix) {
					smp.present[mark{a.index, "dir " + n}] = true
				}
			}
		}
	}
	smp.end = time.Now()
	return smp
}

// proc is a process whose argv says it is an agent's worker or guardian.
type proc struct {
	pid  int
	args []string
}

func (p proc) flag(name string) string {
	i := slices.Index(p.args, name)
	if i < 0 || i+1 >= len(p.args) {
		return ""
	}
	return p.args[i+1]
}

// agentProcesses lists the live processes whose argv is an agent's worker
// or guardian (`turbulence-agent worker …`, `turbulence-agent guard …`).
// A process that ends while it is read is skipped; a zombie has no argv.
func agentProcesses() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || !strings.HasSuffix(args[0], "turbulence-agent") || args[1] != "worker" && args[1] != "guard" {
			continue
		}
		out = append(out, proc{pid: pid, args: args})
	}
	return out
}

// agentTables lists the agents' nftables tables (inet, named with
// partition.TablePrefix) in a's namespace.
func agentTables(a *labAgent) ([]string, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(int(a.ns)))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.CloseLasting() }()
	ts, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Name, partition.TablePrefix) {
			out = append(out, t.Name)
		}
	}
	return out, nil
}

// faultOf ties a mark to the fault it belongs to, among the faults of its
// agent: workers and guardians carry the ID in their argv, a table's name
// ends with it, a directory's name is sweep.MarkedDirName of it.
func faultOf(m mark, faults []string) string {
	kind, name, _ := strings.Cut(m.what, " ")
	switch kind {
	case "worker", "guardian":
		return name
	case "table":
		for _, id := range faults {
			if strings.HasSuffix(name, "-"+id) {
				return id
			}
		}
	case "dir":
		for _, id := range faults {
			if name == sweep.MarkedDirName(sweep.FillDirPrefix, id) || name == sweep.MarkedDirName(sweep.IODirPrefix, id) {
				return id
			}
		}
	}
	return ""
}

// Command benchreport writes the results of make bench from the output of
// `go test -bench`: results.md (tables and the targets),
// results.json and one SVG plot per fleet figure, drawn by
// test/internal/benchreport. docs/benchmarks.md says how to run it.
//
//	go run ./test/benchreport -out build/bench -command 'make bench' build/bench/*.txt
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/turbulence-sre/turbulence/test/internal/benchreport"
)

// fleetFamily is the family the plots and targets are drawn from: the
// fleet on three controller processes (issue 15).
const fleetFamily = "BenchmarkFleet/nodes=3"

// plotted are the fleet figures drawn, each with its target at 10,000
// agents where issue 15 sets one.
var plotted = []struct {
	unit  string
	label string
	max   float64 // the target at 10,000 agents; < 0: none
	shown string
}{
	{"attach-max-ms", "all 10,000 attached", 10_000, "ms"},
	{"ctrl-idle-cpu-%", "leader CPU, idle heartbeats", 15, "% of a core"},
	{"ctrl-rss-KB-per-agent", "leader RSS per connected agent", 30, "KB"},
	{"ctrl-rss-MB", "leader RSS", -1, "MB"},
	{"group-apply-p99-ms", "group apply reaches every member (at most 5,000 a call), p99", 2000, "ms"},
	{"halt-reach-p99-ms", "halt reaches every agent, p99", 1000, "ms"},
	{"halt-recorded-ms", "halt recorded reverted", 2000, "ms"},
	{"lease-expiries", "false lease expiries", 0, "expiries"},
	{"failover-reattach-p99-ms", "leader killed: every agent attached again, p99", 5000, "ms"},
	{"failover-lease-expiries", "leader killed: lease expiries", 0, "expiries"},
}

func main() {
	out := flag.String("out", "build/bench", "directory for results.md, results.json and the plots")
	command := flag.String("command", "make bench", "the command that produced the input, for the record")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "benchreport: give the go test -bench output files")
		os.Exit(2)
	}
	if err := run(*out, *command, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(out, command string, inputs []string) error {
	var runs []benchreport.Run
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		rs, err := benchreport.Parse(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		runs = append(runs, rs...)
	}
	if len(runs) == 0 {
		return fmt.Errorf("no benchmark result in %s", strings.Join(inputs, ", "))
	}
	rep := benchreport.Build(runs)
	rep.Machine, rep.Command = machine(), command
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var targets []benchreport.Target
	var plots []string
	for _, p := range plotted {
		t := benchreport.Target{Label: p.label, Family: fleetFamily, X: 10_000, Unit: p.unit, Max: p.max, Shown: p.shown}
		if p.max >= 0 {
			targets = append(targets, t)
		}
		for _, f := range rep.Families {
			if f.Name != fleetFamily || len(f.Points) < 2 {
				continue
			}
			var tp *benchreport.Target
			if p.max >= 0 {
				tp = &t
			}
			name := "fleet-" + strings.NewReplacer("%", "pct", "/", "-").Replace(p.unit) + ".svg"
			if err := os.WriteFile(filepath.Join(out, name), benchreport.Plot(f, p.unit, tp), 0o644); err != nil {
				return err
			}
			plots = append(plots, name)
		}
	}
	targets = benchreport.Evaluate(rep, targets)
	var md, js bytes.Buffer
	if err := rep.WriteMarkdown(&md, targets, plots); err != nil {
		return err
	}
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "results.json"), js.Bytes(), 0o644)
}

// machine describes the host: CPU model and count, memory, kernel and the
// load when the report was written (the machine may be shared).
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &kb); err == nil {
					mem = fmt.Sprintf(", %.0f GiB", kb/(1<<20))
				}
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%d × %s%s, Linux %s, %s; load average at the report: %s",
		runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
}

package report

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/turbulence-sre/turbulence/internal/termsafe"
)

// maxFailuresShown bounds the failing samples Text lists per probe: the
// first few say when and how it broke; the count says the rest.
const maxFailuresShown = 5

// Text writes the summary an SRE reads in a terminal: the outcome and
// verdicts first, then the steps, the probes (with their extremes, last
// value and failing samples), the host metrics and the events. Times
// are offsets from the start. Every string from the report goes through
// internal/termsafe, since a probe error or a name can carry escape
// sequences.
func Text(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	s := termsafe.String

	fmt.Fprintf(bw, "%s  %s  (%s)\n", s(r.Name), s(string(r.State)), s(r.ID))
	if a := r.Abort; a != nil {
		fmt.Fprintf(bw, "  abort: %s\n", s(a.Reason))
		if a.Probe != "" {
			fmt.Fprintf(bw, "         %s = %s at %s", s(a.Probe), s(withUnit(num(float64(a.Value)), r.unitOf(a.Probe))), offset(r.StartedAt, a.SampleAt))
			if !a.RevertedAt.IsZero() {
				fmt.Fprintf(bw, "; every fault reverted by %s", offset(r.StartedAt, a.RevertedAt))
			}
			fmt.Fprintln(bw)
		}
	}
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	for _, v := range []struct {
		phase string
		v     Verdict
	}{{"before", r.Before}, {"during", r.During}, {"after", r.After}} {
		fmt.Fprintf(tw, "  %s\t%s", v.phase, s(string(v.v.Outcome)))
		if v.v.Reason != "" {
			// An empty last cell would leave the padding of the one
			// before it as trailing blanks.
			fmt.Fprintf(tw, "\t%s", s(oneLine(v.v.Reason)))
		}
		fmt.Fprintln(tw)
	}
	endTable(tw)
	if r.Hypothesis != "" {
		fmt.Fprintf(bw, "hypothesis: %s\n", s(oneLine(r.Hypothesis)))
	}
	fmt.Fprintf(bw, "owner %s", orDash(s(r.Owner)))
	if r.StartedBy != "" {
		fmt.Fprintf(bw, ", started by %s", s(r.StartedBy))
	}
	fmt.Fprintf(bw, ", seed %d, started %s", r.Seed, r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	if !r.EndedAt.IsZero() {
		fmt.Fprintf(bw, ", ran %s", r.EndedAt.Sub(r.StartedAt).Round(100*time.Millisecond))
	}
	fmt.Fprintln(bw)

	if len(r.Targets) > 0 {
		fmt.Fprintln(bw, "\ntargets:")
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s(t.Name), orDash(s(t.Selector)), orDash(s(strings.Join(t.Agents, ", "))))
		}
		endTable(tw)
	}

	if len(r.Steps) > 0 {
		fmt.Fprintln(bw, "\nsteps:")
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  STEP\tTARGET\tFAULT\tPLANNED\tACTUAL\tGROUP")
		for _, st := range r.Steps {
			actual := "not run"
			if !st.Start.IsZero() {
				actual = offset(r.StartedAt, st.Start) + " .. " + offset(r.StartedAt, st.End)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s: %s\t+%s for %s\t%s\t%s\n", s(st.Name), s(st.Target), s(st.Kind), s(oneLine(st.Fault)),
				st.PlannedStart, st.PlannedDuration, actual, orDash(s(st.GroupID)))
		}
		endTable(tw)
		// Members are listed only when one did not end cleanly: the
		// usual case is every fault REVERTED, which the table says.
		for _, st := range r.Steps {
			for _, m := range st.Agents {
				if m.State == "REVERTED" || m.State == "EXPIRED" {
					continue
				}
				fmt.Fprintf(bw, "    %s on %s: %s", s(st.Name), s(m.Agent), s(m.State))
				if m.Err != "" {
					fmt.Fprintf(bw, ": %s", s(oneLine(m.Err)))
				}
				fmt.Fprintln(bw)
			}
		}
	}

	if len(r.Probes) > 0 {
		fmt.Fprintln(bw, "\nprobes:")
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROBE\tKIND\tPASS IF\tSAMPLES\tFAILED\tMIN\tMAX\tLAST")
		for i := range r.Probes {
			p := &r.Probes[i]
			st := probeStats(p)
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s(p.Name), s(p.Kind), s(threshold(p)),
				st.n, st.failed, st.figure(st.min), st.figure(st.max), st.figure(st.last))
		}
		endTable(tw)
		for i := range r.Probes {
			writeFailures(bw, r, &r.Probes[i])
		}
	}

	if len(r.Hosts) > 0 {
		fmt.Fprintln(bw, "\nhost metrics:")
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  AGENT\tMETRIC\tMIN\tMAX\tLAST")
		for _, h := range r.Hosts {
			for _, name := range slices.Sorted(maps.Keys(h.Metrics)) {
				st := pointStats(h.Metrics[name])
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s(h.Agent), s(name), st.figure(st.min), st.figure(st.max), st.figure(st.last))
			}
		}
		endTable(tw)
	}

	if len(r.Events) > 0 || r.DroppedEvents > 0 {
		fmt.Fprintln(bw, "\nevents:")
		if r.DroppedEvents > 0 {
			fmt.Fprintf(bw, "  (%d earlier events not kept)\n", r.DroppedEvents)
		}
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		for _, e := range r.Events {
			fmt.Fprintf(tw, "  %s\t%s\n", offset(r.StartedAt, e.At), s(oneLine(e.Text)))
		}
		endTable(tw)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writeFailures lists a probe's failing samples, the first few of them.
func writeFailures(w io.Writer, r *Report, p *ProbeSeries) {
	var lines []string
	failed := 0
	for _, smp := range p.Samples {
		if smp.Pass {
			continue
		}
		failed++
		if len(lines) == maxFailuresShown {
			continue
		}
		what := termsafe.String(sampleText(&smp, p.Unit))
		mark := ""
		if a := r.Abort; a != nil && a.Probe == p.Name && smp.At.Equal(a.SampleAt) {
			mark = "  <- abort"
		}
		lines = append(lines, fmt.Sprintf("    %s\t%s%s\n", offset(r.StartedAt, smp.At), what, mark))
	}
	if p.Dropped > 0 {
		fmt.Fprintf(w, "  %s: %d older samples not kept\n", termsafe.String(p.Name), p.Dropped)
	}
	if failed == 0 {
		return
	}
	fmt.Fprintf(w, "  %s failed %d of %d:\n", termsafe.String(p.Name), failed, len(p.Samples))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprint(tw, l)
	}
	endTable(tw)
	if failed > len(lines) {
		fmt.Fprintf(w, "    … and %d more\n", failed-len(lines))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// unitOf is the unit of the named probe's values.
func (r *Report) unitOf(probe string) string {
	for _, p := range r.Probes {
		if p.Name == probe {
			return p.Unit
		}
	}
	return ""
}

// endTable flushes a table into the report's bufio.Writer. Its error is
// not lost: a bufio.Writer keeps the first write error and Text returns
// it from the final Flush.
func endTable(tw *tabwriter.Writer) { _ = tw.Flush() }

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
	for _, section := range []func(*bufio.Writer, *Report){
		textHeader, textTargets, textSteps, textProbes, textHosts, textEvents,
	} {
		section(bw, r)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// safe makes a string from the report safe to print on a terminal.
var safe = termsafe.String

// newTable starts an aligned table: two blanks between columns.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// textHeader writes the outcome, the abort, the verdicts, and who, what
// and when.
func textHeader(bw *bufio.Writer, r *Report) {
	fmt.Fprintf(bw, "%s  %s  (%s)\n", safe(r.Name), safe(string(r.State)), safe(r.ID))
	if a := r.Abort; a != nil {
		fmt.Fprintf(bw, "  abort: %s\n", safe(a.Reason))
		var what []string
		if a.Probe != "" {
			what = append(what, fmt.Sprintf("%s = %s", safe(a.Probe), safe(withUnit(num(float64(a.Value)), r.unitOf(a.Probe)))))
		}
		if t := a.Time(); !t.IsZero() {
			what = append(what, "at "+offset(r.StartedAt, t))
		}
		var parts []string
		if len(what) > 0 {
			parts = append(parts, strings.Join(what, " "))
		}
		if !a.RevertedAt.IsZero() {
			parts = append(parts, "every fault reverted by "+offset(r.StartedAt, a.RevertedAt))
		}
		if len(parts) > 0 {
			fmt.Fprintf(bw, "         %s\n", strings.Join(parts, "; "))
		}
	}
	tw := newTable(bw)
	for _, v := range []struct {
		phase string
		v     Verdict
	}{{"before", r.Before}, {"during", r.During}, {"after", r.After}} {
		fmt.Fprintf(tw, "  %s\t%s", v.phase, safe(string(v.v.Outcome)))
		if v.v.Reason != "" {
			// An empty last cell would leave the padding of the one
			// before it as trailing blanks.
			fmt.Fprintf(tw, "\t%s", safe(oneLine(v.v.Reason)))
		}
		fmt.Fprintln(tw)
	}
	endTable(tw)
	if r.Hypothesis != "" {
		fmt.Fprintf(bw, "hypothesis: %s\n", safe(oneLine(r.Hypothesis)))
	}
	fmt.Fprintf(bw, "owner %s", orDash(safe(r.Owner)))
	if r.StartedBy != "" {
		fmt.Fprintf(bw, ", started by %s", safe(r.StartedBy))
	}
	fmt.Fprintf(bw, ", seed %d, started %s", r.Seed, r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	if !r.EndedAt.IsZero() {
		fmt.Fprintf(bw, ", ran %s", r.EndedAt.Sub(r.StartedAt).Round(100*time.Millisecond))
	}
	fmt.Fprintln(bw)
}

func textTargets(bw *bufio.Writer, r *Report) {
	if len(r.Targets) == 0 {
		return
	}
	fmt.Fprintln(bw, "\ntargets:")
	tw := newTable(bw)
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", safe(t.Name), orDash(safe(t.Selector)), orDash(safe(strings.Join(t.Agents, ", "))))
	}
	endTable(tw)
}

func textSteps(bw *bufio.Writer, r *Report) {
	if len(r.Steps) == 0 {
		return
	}
	fmt.Fprintln(bw, "\nsteps:")
	tw := newTable(bw)
	fmt.Fprintln(tw, "  STEP\tTARGET\tFAULT\tPLANNED\tACTUAL\tGROUP")
	for _, st := range r.Steps {
		actual := "not run"
		if !st.Start.IsZero() {
			actual = window(r.StartedAt, st.Start, st.End)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s: %s\t+%s for %s\t%s\t%s\n", safe(st.Name), safe(st.Target), safe(st.Kind), safe(oneLine(st.Fault)),
			st.PlannedStart, st.PlannedDuration, actual, orDash(safe(st.GroupID)))
	}
	endTable(tw)
	// Members are listed only when one did not end cleanly: the usual
	// case is every fault REVERTED, which the table says.
	for _, st := range r.Steps {
		for _, m := range st.Agents {
			if m.State == "REVERTED" || m.State == "EXPIRED" {
				continue
			}
			fmt.Fprintf(bw, "    %s on %s: %s", safe(st.Name), safe(m.Agent), safe(m.State))
			if m.Err != "" {
				fmt.Fprintf(bw, ": %s", safe(oneLine(m.Err)))
			}
			fmt.Fprintln(bw)
		}
	}
}

func textProbes(bw *bufio.Writer, r *Report) {
	if len(r.Probes) == 0 {
		return
	}
	fmt.Fprintln(bw, "\nprobes:")
	tw := newTable(bw)
	fmt.Fprintln(tw, "  PROBE\tKIND\tPASS IF\tSAMPLES\tFAILED\tMIN\tMAX\tLAST")
	for i := range r.Probes {
		p := &r.Probes[i]
		st := probeStats(p)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", safe(p.Name), safe(p.Kind), safe(threshold(p)),
			st.n, st.failed, st.figure(st.min), st.figure(st.max), st.figure(st.last))
	}
	endTable(tw)
	for i := range r.Probes {
		writeFailures(bw, r, &r.Probes[i])
	}
}

func textHosts(bw *bufio.Writer, r *Report) {
	if len(r.Hosts) == 0 {
		return
	}
	fmt.Fprintln(bw, "\nhost metrics:")
	tw := newTable(bw)
	fmt.Fprintln(tw, "  AGENT\tMETRIC\tMIN\tMAX\tLAST")
	for _, h := range r.Hosts {
		for _, name := range slices.Sorted(maps.Keys(h.Metrics)) {
			st := pointStats(h.Metrics[name])
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", safe(h.Agent), safe(name), st.figure(st.min), st.figure(st.max), st.figure(st.last))
		}
	}
	endTable(tw)
}

func textEvents(bw *bufio.Writer, r *Report) {
	if len(r.Events) == 0 && r.DroppedEvents == 0 {
		return
	}
	fmt.Fprintln(bw, "\nevents:")
	if r.DroppedEvents > 0 {
		fmt.Fprintf(bw, "  (%d earlier events not kept)\n", r.DroppedEvents)
	}
	tw := newTable(bw)
	for _, e := range r.Events {
		fmt.Fprintf(tw, "  %s\t%s\n", offset(r.StartedAt, e.At), safe(oneLine(e.Text)))
	}
	endTable(tw)
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
	tw := newTable(w)
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

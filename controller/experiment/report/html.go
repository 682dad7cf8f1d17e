package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

//go:embed html.tmpl
var htmlSource string

// htmlTemplate is parsed once; html/template escapes every value by the
// context it lands in (text, attribute, SVG attribute), which is what
// keeps a probe error such as "<script>…" or a name with quotes inert.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{"c": coord}).Parse(htmlSource))

// HTML writes r as one self-contained page: inline CSS, inline SVG
// charts drawn here, no script and no reference to anything outside the
// page, so it renders the same offline, from a mail, or years later.
// It shows the outcome and verdicts, the abort, a timeline of the
// steps, a chart per probe (fault windows shaded, thresholds, failing
// samples, the abort marker), a chart per host metric of each target
// (a line per agent), and the steps, targets and events as tables.
func HTML(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	if err := htmlTemplate.Execute(bw, newPage(r)); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// page is what html.tmpl renders: the report's strings as they are (the
// template escapes them) and the charts' geometry.
type page struct {
	R        *Report
	Class    string // CSS class of the state badge
	Started  string
	Ended    string
	Ran      string
	Abort    *abortView
	Verdicts []verdictView
	Timeline *gantt
	Probes   []probeView
	Hosts    []hostGroup
	Steps    []stepView
	Events   []eventView
}

type abortView struct {
	Reason, Probe, Value, At, RevertedAt string
}

type verdictView struct {
	Phase, Outcome, Class, Reason string
}

type probeView struct {
	P         *ProbeSeries
	Threshold string
	Stats     string
	Chart     *chart
}

type hostGroup struct {
	Target string
	Agents []legendItem
	Charts []hostChartView
}

type legendItem struct{ Name, Class string }

type hostChartView struct {
	Metric string
	Chart  *chart
}

type stepView struct {
	S       *Step
	Planned string
	Actual  string
	Members []memberView
}

type memberView struct {
	Agent, FaultID, State, Class, Window, Err string
}

type eventView struct{ At, Class, Text string }

func newPage(r *Report) *page {
	ax := newTimeAxis(r)
	pg := &page{
		R:       r,
		Class:   stateClass(r.State),
		Started: stamp(r.StartedAt),
		Ended:   endStamp(r.StartedAt, r.EndedAt),
	}
	if d := r.Duration(); d > 0 {
		pg.Ran = d.Round(100 * time.Millisecond).String()
	}
	if a := r.Abort; a != nil {
		av := &abortView{Reason: a.Reason, Probe: a.Probe}
		if a.Probe != "" {
			av.Value = withUnit(num(float64(a.Value)), r.unitOf(a.Probe))
			av.At = offset(r.StartedAt, a.SampleAt)
		}
		if !a.RevertedAt.IsZero() {
			av.RevertedAt = offset(r.StartedAt, a.RevertedAt)
		}
		pg.Abort = av
	}
	for _, v := range []struct {
		phase string
		v     Verdict
	}{{"before", r.Before}, {"during", r.During}, {"after", r.After}} {
		pg.Verdicts = append(pg.Verdicts, verdictView{Phase: v.phase, Outcome: string(v.v.Outcome),
			Class: outcomeClass(v.v.Outcome), Reason: v.v.Reason})
	}
	if len(r.Steps) > 0 {
		pg.Timeline = newGantt(r, ax)
	}

	all := r.windows("")
	for i := range r.Probes {
		p := &r.Probes[i]
		st := probeStats(p)
		pg.Probes = append(pg.Probes, probeView{
			P:         p,
			Threshold: threshold(p),
			Stats: fmt.Sprintf("%d samples, %d failed; min %s, max %s, last %s", st.n, st.failed,
				st.figure(st.min), st.figure(st.max), st.figure(st.last)) + dropped(p.Dropped),
			Chart: probeChart(r, p, ax, all),
		})
	}

	pg.Hosts = hostGroups(r, ax)

	for i := range r.Steps {
		st := &r.Steps[i]
		sv := stepView{S: st, Planned: "+" + st.PlannedStart.String() + " for " + st.PlannedDuration.String(), Actual: "not run"}
		if !st.Start.IsZero() {
			sv.Actual = offset(r.StartedAt, st.Start) + " .. " + offset(r.StartedAt, st.End)
		}
		for _, m := range st.Agents {
			class := "v-fail"
			if m.State == "REVERTED" || m.State == "EXPIRED" {
				class = "v-pass"
			}
			sv.Members = append(sv.Members, memberView{Agent: m.Agent, FaultID: m.FaultID, State: m.State, Class: class,
				Window: offset(r.StartedAt, m.Start) + " .. " + offset(r.StartedAt, m.End), Err: m.Err})
		}
		pg.Steps = append(pg.Steps, sv)
	}
	for _, e := range r.Events {
		class := ""
		if e.Type == "abort" || e.Type == "failed" {
			class = "alarm"
		}
		pg.Events = append(pg.Events, eventView{At: offset(r.StartedAt, e.At), Class: class, Text: e.Text})
	}
	return pg
}

// hostGroups makes, per target in the order of Targets, a chart per
// metric with a line per agent. Host series of a target the report
// does not list come last, under their own target name.
func hostGroups(r *Report, ax timeAxis) []hostGroup {
	var order []string
	byTarget := map[string][]*HostSeries{}
	for _, t := range r.Targets {
		order = append(order, t.Name)
	}
	for i := range r.Hosts {
		h := &r.Hosts[i]
		if !slices.Contains(order, h.Target) {
			order = append(order, h.Target)
		}
		byTarget[h.Target] = append(byTarget[h.Target], h)
	}
	var groups []hostGroup
	for _, target := range order {
		hosts := byTarget[target]
		if len(hosts) == 0 {
			continue
		}
		g := hostGroup{Target: target}
		metrics := map[string]bool{}
		for i, h := range hosts {
			g.Agents = append(g.Agents, legendItem{Name: h.Agent, Class: seriesClass(i)})
			for m := range h.Metrics {
				metrics[m] = true
			}
		}
		// Only the faults of this target shade its hosts' charts.
		windows := r.windows(target)
		for _, m := range slices.Sorted(maps.Keys(metrics)) {
			g.Charts = append(g.Charts, hostChartView{Metric: m, Chart: hostChart(r, m, hosts, ax, windows)})
		}
		groups = append(groups, g)
	}
	return groups
}

// windows are the actual windows of the steps that ran, on target (or
// on any target when target is empty). A step still running ends at
// the end of the axis.
func (r *Report) windows(target string) [][2]time.Time {
	var out [][2]time.Time
	for _, st := range r.Steps {
		if st.Start.IsZero() || (target != "" && st.Target != target) {
			continue
		}
		end := st.End
		if end.IsZero() {
			end = newTimeAxis(r).t1
		}
		out = append(out, [2]time.Time{st.Start, end})
	}
	return out
}

// dropped notes samples a series did not keep.
func dropped(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d older not kept)", n)
}

// endStamp formats the end time, without the date when it is the start's.
func endStamp(start, end time.Time) string {
	if !end.IsZero() && !start.IsZero() && end.UTC().Format(time.DateOnly) == start.UTC().Format(time.DateOnly) {
		return end.UTC().Format("15:04:05.000 UTC")
	}
	return stamp(end)
}

// stamp formats an absolute time for the page header.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// stateClass and outcomeClass pick a CSS class from the known values
// only: a class name built from the report's own string would put text
// from outside into an attribute, escaped but still there.
func stateClass(s State) string {
	switch s {
	case StateCompleted, StateAborted, StateRefused, StateFailed, StateRunning:
		return "st-" + strings.ToLower(string(s))
	}
	return "st-other"
}

func outcomeClass(o Outcome) string {
	switch o {
	case Pass, Fail, NotRun:
		return "v-" + strings.ToLower(string(o))
	}
	return "v-other"
}

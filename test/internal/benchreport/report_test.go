package benchreport

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: example/fleet
BenchmarkFleet/nodes=3/agents=100-2   	       1	       100.0 agents	   457.1 attach-max-ms	 3.4 ctrl-idle-cpu-%	 0 ns/op
    bench_linux_test.go:159: 100 agents: all attached in 457 ms
BenchmarkFleet/nodes=3/agents=10000-2 	       1	     10000 agents	 52000 attach-max-ms	 80 ctrl-idle-cpu-%	 0 ns/op
BenchmarkFleet/nodes=3/agents=10000-2 	       1	     10000 agents	 48000 attach-max-ms	 90 ctrl-idle-cpu-%	 0 ns/op
BenchmarkFleet/nodes=3/agents=10000-2 	       1	     10000 agents	 41000 attach-max-ms	 70 ctrl-idle-cpu-%	 0 ns/op
pkg: example/agent
BenchmarkAgentIdle-2   	       1	        23.09 agent-binary-MB	         0.09993 agent-idle-cpu-%
PASS
ok  	example/agent	19.523s
`

func build(t *testing.T) Report {
	t.Helper()
	runs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 {
		t.Fatalf("parsed %d result lines, want 5: %+v", len(runs), runs)
	}
	return Build(runs)
}

// TestBuild_FamiliesPointsAndMedians: the agents=N benchmarks are one
// family with a point per N, in order; three runs give their median and
// p99; a benchmark without key=number is a family of its own.
func TestBuild_FamiliesPointsAndMedians(t *testing.T) {
	t.Parallel()
	rep := build(t)
	if len(rep.Families) != 2 {
		t.Fatalf("%d families, want 2: %+v", len(rep.Families), rep.Families)
	}
	f := rep.Families[0]
	if f.Name != "BenchmarkFleet/nodes=3" || f.XKey != "agents" || len(f.Points) != 2 || f.Points[0].X != 100 || f.Points[1].X != 10000 {
		t.Fatalf("fleet family = %+v", f)
	}
	fig := f.Points[1].Figures["attach-max-ms"]
	if fig.Median != 48000 || fig.P99 != 52000 || len(fig.Values) != 3 {
		t.Errorf("attach-max-ms at 10000 = %+v, want median 48000, p99 52000 over 3 runs", fig)
	}
	if rep.Families[1].Name != "BenchmarkAgentIdle" || rep.Families[1].Package != "example/agent" {
		t.Errorf("second family = %+v, want BenchmarkAgentIdle of example/agent", rep.Families[1])
	}
}

// TestTargets_SayByHowMuch: a missed target says by how much, a met one
// says so, a figure not measured says that.
func TestTargets_SayByHowMuch(t *testing.T) {
	t.Parallel()
	ts := Evaluate(build(t), []Target{
		{Label: "attach", Family: "BenchmarkFleet/nodes=3", X: 10000, Unit: "attach-max-ms", Max: 10000},
		{Label: "cpu", Family: "BenchmarkFleet/nodes=3", X: 10000, Unit: "ctrl-idle-cpu-%", Max: 100},
		{Label: "halt", Family: "BenchmarkFleet/nodes=3", X: 10000, Unit: "halt-reach-p99-ms", Max: 1000},
	})
	for i, want := range []string{"missed by 38000 ms (4.8× the target)", "met", "—"} {
		if got := ts[i].Verdict(); got != want {
			t.Errorf("%s: verdict %q, want %q", ts[i].Label, got, want)
		}
	}
	var md bytes.Buffer
	if err := build(t).WriteMarkdown(&md, ts, []string{"fleet-attach-max-ms.svg"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| attach | ≤ 10000 ms | 48000 ms | missed by 38000 ms (4.8× the target) |",
		"| figure | agents=100 | agents=10000 |",
		"| attach-max-ms | 457 | 48000 (p99 52000) |",
		"![fleet-attach-max-ms.svg](fleet-attach-max-ms.svg)",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

// TestPlot_ValidSVGWithEveryPoint: the plot is well-formed XML with a
// point and a label per x, and the target line when given.
func TestPlot_ValidSVGWithEveryPoint(t *testing.T) {
	t.Parallel()
	f := build(t).Families[0]
	tg := Target{Family: f.Name, X: 10000, Unit: "attach-max-ms", Max: 10000}
	svg := Plot(f, "attach-max-ms", &tg)
	d := xml.NewDecoder(bytes.NewReader(svg))
	circles, dashed := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "circle":
				circles++
			case "line":
				for _, a := range se.Attr {
					if a.Name.Local == "stroke-dasharray" {
						dashed++
					}
				}
			}
		}
	}
	if circles != 2 || dashed != 1 {
		t.Errorf("plot has %d points and %d dashed lines, want 2 and 1:\n%s", circles, dashed, svg)
	}
	for _, want := range []string{">457<", ">48000<", "target at 10000: ≤ 10000 ms", "agents (log scale)"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
)

// dashboardPath is the Grafana dashboard shipped for operators.
const dashboardPath = "../../packaging/grafana/turbulence.json"

// dashboardPanel is the part of a Grafana panel the test reads; rows may
// nest panels.
type dashboardPanel struct {
	Title   string           `json:"title"`
	Type    string           `json:"type"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs returns every query of the dashboard by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string           `json:"title"`
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	out := map[string][]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promCalls    = regexp.MustCompile(`\b[a-zA-Z_]+\s*\(`)
	promIdents   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without"}
)

// metricNames returns the metric names a PromQL expression reads: what
// is left once strings, label matchers, ranges, grouping clauses and
// function calls are taken out.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	s = promCalls.ReplaceAllString(s, "(")
	var names []string
	for _, id := range promIdents.FindAllString(s, -1) {
		if !slices.Contains(promKeywords, id) {
			names = append(names, id)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	got := metricNames(`histogram_quantile(0.99, sum by (le, kind) (rate(a_bucket{x="y{z}"}[5m]))) / on (i) b - time() and bool c_total`)
	if want := []string{"a_bucket", "b", "c_total"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// TestDashboard_NamesOnlySeriesThatExist parses the Grafana dashboard and
// checks that every metric its queries read is in a real scrape of a
// controller and an agent, once a fault has run through both: a
// dashboard naming a series that does not exist shows "No data" and
// nobody notices until the day it is needed.
func TestDashboard_NamesOnlySeriesThatExist(t *testing.T) {
	exprs := dashboardExprs(t)
	f := startMetricsFleet(t)
	id, _ := f.applyCPU(t, "20", "1s")
	f.waitReverted(t, id)
	have := map[string]bool{}
	controllertest.WaitFor(t, waitLong, "raft_commitTime in the controller's scrape", func() bool {
		for series := range scrapeMetrics(t, f.controllerAddr) {
			have[strings.SplitN(series, "{", 2)[0]] = true
		}
		return have["raft_commitTime"]
	})
	for series := range scrapeMetrics(t, f.agentAddr) {
		have[strings.SplitN(series, "{", 2)[0]] = true
	}
	n := 0
	for title, es := range exprs {
		for _, e := range es {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no metric", title, e)
			}
			for _, name := range names {
				n++
				if !have[name] {
					t.Errorf("panel %q: query %q reads %s, which no scrape has", title, e, name)
				}
			}
		}
	}
	for _, want := range []string{"Leader", "Agents connected", "Faults active by kind", "Faults ended by reason", "Apply latency p99",
		"Revert lateness p99", "Lease expiries", "Refusals by reason", "Certificate expiry (days)", "Raft commit time p99"} {
		if _, ok := exprs[want]; !ok {
			t.Errorf("dashboard lacks the panel %q", want)
		}
	}
	if !t.Failed() {
		t.Logf("%d metric references in %d panels, all in the scrape", n, len(exprs))
	}
}

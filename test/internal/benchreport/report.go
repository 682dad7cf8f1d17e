package benchreport

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/turbulence-sre/turbulence/internal/stats"
)

// Figure is one figure of one point: its median and p99 over the runs.
type Figure struct {
	Median float64   `json:"median"`
	P99    float64   `json:"p99"`
	Values []float64 `json:"values"`
}

// Point is one benchmark of a family.
type Point struct {
	Name    string            `json:"name"`
	X       float64           `json:"x,omitempty"`
	Figures map[string]Figure `json:"figures"`
}

// Family is a package's benchmarks that differ only by their x.
type Family struct {
	Package string  `json:"package"`
	Name    string  `json:"name"`
	XKey    string  `json:"x_key,omitempty"` // "agents"; empty: one point
	Points  []Point `json:"points"`
}

// Report is every family of a bench run, with the machine it ran on.
type Report struct {
	Machine  string   `json:"machine"`
	Command  string   `json:"command"`
	Families []Family `json:"families"`
}

// Build groups runs into families, their points by x, their figures
// with the median and p99 over the runs.
func Build(runs []Run) Report {
	type key struct{ pkg, fam string }
	fams := map[key]*Family{}
	var order []key
	vals := map[string]map[string][]float64{} // by package+name, unit
	for _, r := range runs {
		fam, k, x, ok := split(r.Name)
		id := key{r.Package, fam}
		if !ok {
			id = key{r.Package, r.Name}
		}
		f, seen := fams[id]
		if !seen {
			f = &Family{Package: r.Package, Name: id.fam, XKey: k}
			fams[id] = f
			order = append(order, id)
		}
		pid := r.Package + " " + r.Name
		if vals[pid] == nil {
			vals[pid] = map[string][]float64{}
			f.Points = append(f.Points, Point{Name: r.Name, X: x})
		}
		for u, v := range r.Metrics {
			vals[pid][u] = append(vals[pid][u], v)
		}
	}
	var rep Report
	for _, id := range order {
		f := fams[id]
		for i := range f.Points {
			p := &f.Points[i]
			p.Figures = map[string]Figure{}
			for u, vs := range vals[f.Package+" "+p.Name] {
				p.Figures[u] = Figure{Median: stats.Median(vs), P99: stats.Percentile(vs, 99), Values: vs}
			}
		}
		slices.SortStableFunc(f.Points, func(a, b Point) int { return cmp.Compare(a.X, b.X) })
		rep.Families = append(rep.Families, *f)
	}
	return rep
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// units lists the figures of a family, sorted, without Go's own ns/op
// (zero where one op is a whole scenario).
func (f Family) units() []string {
	seen := map[string]bool{}
	for _, p := range f.Points {
		for u := range p.Figures {
			seen[u] = true
		}
	}
	delete(seen, "ns/op")
	var us []string
	for u := range seen {
		us = append(us, u)
	}
	slices.Sort(us)
	return us
}

// WriteMarkdown writes one table per family: a row per figure, a column
// per point; a cell is the median, with the p99 after it when the point
// ran more than once.
func (r Report) WriteMarkdown(w io.Writer, targets []Target, plots []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\nMachine: %s\n\nCommand: `%s`\n\n", r.Machine, r.Command)
	b.WriteString("A cell is the median over the runs; with more than one run, the p99 over them follows (nearest rank).\n")
	if len(targets) > 0 {
		b.WriteString("\n## Targets (issue 15)\n\n| figure | target | measured | verdict |\n|---|---|---|---|\n")
		for _, t := range targets {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Label, t.TargetText(), t.MeasuredText(), t.Verdict())
		}
	}
	for _, p := range plots {
		fmt.Fprintf(&b, "\n![%s](%s)\n", p, p)
	}
	for _, f := range r.Families {
		fmt.Fprintf(&b, "\n## %s (%s)\n\n| figure |", f.Name, f.Package)
		for _, p := range f.Points {
			if f.XKey != "" {
				fmt.Fprintf(&b, " %s=%s |", f.XKey, num(p.X))
			} else {
				b.WriteString(" value |")
			}
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(f.Points)) + "\n")
		for _, u := range f.units() {
			fmt.Fprintf(&b, "| %s |", u)
			for _, p := range f.Points {
				fig, ok := p.Figures[u]
				switch {
				case !ok:
					b.WriteString(" |")
				case len(fig.Values) > 1:
					fmt.Fprintf(&b, " %s (p99 %s) |", num(fig.Median), num(fig.P99))
				default:
					fmt.Fprintf(&b, " %s |", num(fig.Median))
				}
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num prints a figure with three significant digits at most, and no
// exponent.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100 || a == float64(int64(a)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

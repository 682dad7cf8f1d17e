// Package benchreport turns the output of `go test -bench` into the
// results of make bench: a markdown table, a JSON file and SVG plots
// (docs/benchmarks.md). It draws the plots itself, so that make bench
// needs nothing but Go.
//
// Figures are grouped into families: a benchmark whose last name element
// is key=number (BenchmarkFleet/nodes=3/agents=1000) is one point of the
// family without it (BenchmarkFleet/nodes=3), at x = that number; the
// family's table has one column per point and its plots one point each.
// Several runs of one benchmark (-count) give the median and the p99
// (nearest rank) of each figure over the runs.
package benchreport

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Run is one result line: a benchmark and its figures by unit.
type Run struct {
	Package string
	Name    string // without the GOMAXPROCS suffix
	Metrics map[string]float64
}

// benchLine is "BenchmarkX/sub-2   1   12.5 unit   3 other ..." .
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// Parse reads go test -bench output and returns every result line, in
// order. Lines that are not results (logs, PASS, ok) are skipped.
func Parse(r io.Reader) ([]Run, error) {
	var runs []Run
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			continue // a log line that starts like a result
		}
		run := Run{Package: pkg, Name: m[1], Metrics: map[string]float64{}}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				run.Metrics = nil
				break
			}
			run.Metrics[fields[i+1]] = v
		}
		if len(run.Metrics) > 0 {
			runs = append(runs, run)
		}
	}
	return runs, sc.Err()
}

// split returns a benchmark's family and its x: the number of a last
// name element key=number, with ok; the name itself otherwise.
func split(name string) (family, key string, x float64, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return name, "", 0, false
	}
	k, v, found := strings.Cut(name[i+1:], "=")
	if !found {
		return name, "", 0, false
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return name, "", 0, false
	}
	return name[:i], k, x, true
}

package report

import (
	"bytes"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// large returns a report of an hour-long experiment: two probes of
// probeSamples samples each, agents agents on one target with six host
// metrics each every second, and one spike in the first probe.
func large(probeSamples, agents int) *Report {
	r := Example()
	span := time.Hour
	r.EndedAt = r.StartedAt.Add(span)
	step := span / time.Duration(probeSamples)
	for pi := range r.Probes {
		p := &r.Probes[pi]
		p.Samples = make([]Sample, probeSamples)
		for i := range p.Samples {
			v := 50 + 10*math.Sin(float64(i)/300)
			p.Samples[i] = Sample{At: r.StartedAt.Add(time.Duration(i) * step), Value: Float(v), Pass: true}
		}
	}
	// The spike, inside a pixel column rather than at its edge.
	r.Probes[0].Samples[probeSamples/2+probeSamples/200].Value = 5000
	r.Targets[0].Agents = nil
	r.Hosts = nil
	for a := range agents {
		name := "web-" + strconv.Itoa(a+1)
		r.Targets[0].Agents = append(r.Targets[0].Agents, name)
		m := map[string][]Point{}
		for _, metric := range []string{"cpu_percent", "memory_used_percent", "load1", "disk_used_percent", "disk_io_bytes_per_second", "network_bytes_per_second"} {
			pts := make([]Point, 3600)
			for i := range pts {
				pts[i] = Point{At: r.StartedAt.Add(time.Duration(i) * time.Second), Value: Float(float64(a) + 30 + 20*math.Sin(float64(i)/200))}
			}
			m[metric] = pts
		}
		r.Hosts = append(r.Hosts, HostSeries{Agent: name, Target: "web", Metrics: m})
	}
	return r
}

// TestProbeChart_Decimates draws 100 000 samples: the line keeps at
// most four points per pixel column, and the one spike is still drawn.
func TestProbeChart_Decimates(t *testing.T) {
	t.Parallel()
	r := large(100_000, 0)
	p := &r.Probes[0]
	ax := newTimeAxis(r)
	c := probeChart(r, p, ax, r.windows("", ax.t1))
	n, minY := 0, math.Inf(1)
	for _, path := range c.Lines[0].Paths {
		for _, pt := range strings.Fields(path) {
			n++
			_, y, _ := strings.Cut(pt, ",")
			v, err := strconv.ParseFloat(y, 64)
			if err != nil {
				t.Fatalf("point %q: %v", pt, err)
			}
			minY = math.Min(minY, v)
		}
	}
	if limit := 4 * (int(c.Plot.W) + 2); n > limit {
		t.Errorf("%d points drawn for %d samples, want at most %d (4 per pixel column)", n, len(p.Samples), limit)
	}
	va, _ := newValueAxis([]float64{0, 5000}, false)
	if want := va.y(c.Plot, 5000); math.Abs(minY-want) > 0.1 {
		t.Errorf("highest point drawn at y=%v, want the spike at y=%v", minY, want)
	}
}

// BenchmarkHTML_Example renders the example report (56 s, two probes,
// two agents) and reports the page's size.
func BenchmarkHTML_Example(b *testing.B) {
	r := Example()
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := HTML(&buf, r); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkHTML renders an hour-long experiment (two probes at 1 s, six
// host metrics of 10 agents at 1 s) and reports the page's size.
func BenchmarkHTML_Hour(b *testing.B) {
	r := large(3600, 10)
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := HTML(&buf, r); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkText renders the same report as text.
func BenchmarkText(b *testing.B) {
	r := large(3600, 10)
	for b.Loop() {
		if err := Text(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

package metrics

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("exposition differs from %s (-want +got):\n%s", path, diff)
	}
}

func scrape(t *testing.T, reg *Registry) string {
	t.Helper()
	var b bytes.Buffer
	if err := reg.Write(&b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.String()
}

// TestRegistry_WriteGolden covers the format's rules in one exposition:
// families sorted by name and samples by label set, HELP and label value
// escaping, special float values, a family with no sample, and a
// GaugeFunc whose samples come at scrape time.
func TestRegistry_WriteGolden(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	g := reg.Gauge("zz_gauge", "A gauge with labels.", "kind", "path")
	g.Set(2, "cpu", "/")
	g.Set(0.5, "memory", `C:\new "dir"`+"\nline")
	g.Set(-1, "cpu", "/a") // sorts between cpu,/ and memory
	c := reg.Counter("aa_events_total", "Events, with a \\ backslash\nand a line feed.", "reason")
	c.Inc("deadline")
	c.Add(2.5, "deadline")
	c.Inc("halt")
	reg.Gauge("mm_empty", "Registered, never set.")
	special := reg.Gauge("mm_special", "Special values.", "v")
	special.Set(math.Inf(1), "inf")
	special.Set(math.Inf(-1), "minf")
	special.Set(math.NaN(), "nan")
	special.Set(1.7356896e+09, "timestamp")
	special.Set(42, "int")
	reg.GaugeFunc("bb_func", "Read at scrape time.", []string{"role", "name"}, func(emit Emit) {
		emit(1, "agent", "b")
		emit(3, "agent", "a")
	})
	reg.GaugeFunc("bb_scalar", "A scalar read at scrape time.", nil, func(emit Emit) { emit(7) })
	golden(t, "exposition.txt", []byte(scrape(t, reg)))
}

// TestRegistry_OnScrapeResetDropsStaleSets shows the scrape-time refill
// pattern: a label set not set again after Reset disappears.
func TestRegistry_OnScrapeResetDropsStaleSets(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	g := reg.Gauge("held", "Held.", "kind")
	kinds := []string{"cpu", "disk"}
	reg.OnScrape(func() {
		g.Reset()
		for _, k := range kinds {
			g.Set(1, k)
		}
	})
	if got := scrape(t, reg); !strings.Contains(got, `held{kind="disk"} 1`) {
		t.Fatalf("first scrape lacks disk:\n%s", got)
	}
	kinds = []string{"cpu"}
	if got := scrape(t, reg); strings.Contains(got, "disk") {
		t.Errorf("second scrape still has disk after Reset:\n%s", got)
	}
}

// TestRegistry_Panics lists the programmer errors the registry refuses.
func TestRegistry_Panics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		f    func(r *Registry)
	}{
		{"bad metric name", func(r *Registry) { r.Gauge("1abc", "h") }},
		{"metric name with dash", func(r *Registry) { r.Gauge("a-b", "h") }},
		{"bad label name", func(r *Registry) { r.Gauge("a", "h", "a:b") }},
		{"reserved label name", func(r *Registry) { r.Gauge("a", "h", "__name") }},
		{"repeated label name", func(r *Registry) { r.Gauge("a", "h", "x", "x") }},
		{"registered twice", func(r *Registry) { r.Gauge("a", "h"); r.Counter("a", "h") }},
		{"too few label values", func(r *Registry) { r.Gauge("a", "h", "x").Set(1) }},
		{"too many label values", func(r *Registry) { r.Gauge("a", "h").Set(1, "x") }},
		{"counter decreased", func(r *Registry) { r.Counter("a_total", "h").Add(-1) }},
		{"label set emitted twice", func(r *Registry) {
			r.GaugeFunc("a", "h", []string{"x"}, func(emit Emit) { emit(1, "y"); emit(2, "y") })
			_ = r.Write(&bytes.Buffer{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tt.name)
				}
			}()
			tt.f(NewRegistry())
		})
	}
}

// TestRegistry_ConcurrentScrapesAndSets is for -race: scrapes may run
// while the daemon sets values, and two scrapes may overlap.
func TestRegistry_ConcurrentScrapesAndSets(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	g := reg.Gauge("g", "G.", "k")
	c := reg.Counter("c_total", "C.")
	reg.OnScrape(func() { g.Reset(); g.Set(1, "a") })
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 100 {
				c.Inc()
				g.Set(float64(i), "b")
				if err := reg.Write(&bytes.Buffer{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := scrape(t, reg); !strings.Contains(got, "c_total 400\n") {
		t.Errorf("counter after 400 increments:\n%s", got)
	}
}

// TestRegistry_CounterFunc: a counter whose samples come from counts kept
// elsewhere is written with TYPE counter and the values of the scrape.
func TestRegistry_CounterFunc(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	n := 0.0
	reg.CounterFunc("x_refusals_total", "Refusals.", []string{"reason"}, func(emit Emit) {
		emit(n, "a")
		emit(2*n, "b")
	})
	n = 3
	got := scrape(t, reg)
	want := "# HELP x_refusals_total Refusals.\n# TYPE x_refusals_total counter\nx_refusals_total{reason=\"a\"} 3\nx_refusals_total{reason=\"b\"} 6\n"
	if got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

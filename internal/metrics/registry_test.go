package metrics

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// scrape writes g's exposition as a scrape without negotiation sees it.
func scrape(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, g); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.String()
}

// TestNewRegistry_StandardCollectors: every daemon's registry carries the
// process_* and go_* series operators' dashboards expect.
func TestNewRegistry_StandardCollectors(t *testing.T) {
	t.Parallel()
	got := scrape(t, NewRegistry())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		if !strings.Contains(got, "\n"+name+" ") {
			t.Errorf("registry lacks %s", name)
		}
	}
}

// TestGaugeFunc_ReadAtScrape: the samples are those of the state at the
// moment of the scrape, label sets that are gone disappear, and the
// counter form is typed counter.
func TestGaugeFunc_ReadAtScrape(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	held := map[string]float64{"cpu": 1, "disk": 2}
	reg.MustRegister(GaugeFunc("x_held", "Held.", []string{"kind"}, func(emit Emit) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range held {
			emit(v, k)
		}
	}))
	n := 0.0
	reg.MustRegister(CounterFunc("x_refusals_total", "Refusals.", []string{"reason"}, func(emit Emit) {
		emit(n, "a")
		emit(2*n, "b")
	}))
	n = 3
	got := scrape(t, reg)
	for _, want := range []string{
		"# TYPE x_held gauge\n", `x_held{kind="cpu"} 1` + "\n", `x_held{kind="disk"} 2` + "\n",
		"# TYPE x_refusals_total counter\n", `x_refusals_total{reason="a"} 3` + "\n", `x_refusals_total{reason="b"} 6` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("exposition lacks %q:\n%s", want, got)
		}
	}
	mu.Lock()
	delete(held, "disk")
	mu.Unlock()
	if got := scrape(t, reg); strings.Contains(got, "disk") {
		t.Errorf("second scrape still has disk after it went:\n%s", got)
	}
}

// TestGaugeFunc_BadSampleSkipsOnlyItsFamily: a collector that emits the
// wrong number of label values, or one label set twice, is an error of
// the gathering (the registry drops the bad samples), and the handler
// (ContinueOnError) still serves every other family.
func TestGaugeFunc_BadSampleSkipsOnlyItsFamily(t *testing.T) {
	t.Parallel()
	for name, collect := range map[string]func(Emit){
		"wrong label count": func(emit Emit) { emit(1) },
		"label set twice":   func(emit Emit) { emit(1, "y"); emit(2, "y") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			reg.MustRegister(GaugeFunc("bad", "Bad.", []string{"x"}, collect))
			reg.MustRegister(GaugeFunc("good", "Good.", nil, func(emit Emit) { emit(7) }))
			if _, err := reg.Gather(); err == nil {
				t.Fatal("Gather: no error for a bad collector")
			}
			body := serveOnce(t, reg)
			if !strings.Contains(body, "good 7\n") || strings.Contains(body, "bad{y=") || strings.Count(body, "bad{") > 1 {
				t.Errorf("scrape with one bad family:\n%s", body)
			}
		})
	}
}

// TestEndReason maps sentences to labels; the reasons defined in the
// daemons' packages are checked by those packages' tests.
func TestEndReason(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]string{
		"deadline":                                   EndDeadline,
		"deadline (reverted at attempt 3)":           EndDeadline,
		"deadline passed while the agent was away":   EndDeadlineUnreachable,
		"revert requested by operator/alice":         EndRevertRequested,
		"halt":                                       EndHalt,
		"local halt: maintenance":                    EndLocalHalt,
		"lease expired (taken back by its guardian)": EndLeaseExpired,
		"worker exited: signal: killed":              EndWorkerExited,
		"":                                           EndOther,
		"something new":                              EndOther,
		"Deadline":                                   EndOther, // case matters: reasons are constants
	} {
		if got := EndReason(reason); got != want {
			t.Errorf("EndReason(%q) = %q, want %q", reason, got, want)
		}
	}
}

// BenchmarkScrape is what one scrape of a daemon's standard series costs
// the daemon: gathering the process and Go collectors and the
// certificate expiry, and writing the text format.
func BenchmarkScrape(b *testing.B) {
	reg := NewRegistry()
	RegisterCertExpiry(reg)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, reg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/scrape")
}
